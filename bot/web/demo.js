/* Shopbot demo shop: product grid + chat panel. Plain ES2017, no dependencies.
 *
 * Untrusted text (product data, bot replies, server errors) is only ever put into
 * the page with textContent / setAttribute, never innerHTML.
 */
'use strict';

(function () {
  const API_PRODUCTS = '/api/products?limit=24';
  const API_CHAT = '/api/chat';
  const SENDER_KEY = 'shopbot.senderId';
  const TRANSCRIPT_KEY = 'shopbot.transcript.v1';
  const OPEN_KEY = 'shopbot.chatOpen';
  const MAX_ENTRIES = 200;
  const CHAT_TIMEOUT_MS = 30000;

  const MSG_NETWORK = "Couldn't reach the shopping assistant. Check your connection and try again.";
  const MSG_TIMEOUT = 'The shopping assistant is taking too long to answer. Please try again.';
  const MSG_BAD_REPLY = "Sorry, the assistant sent a reply this page couldn't read. Please try again.";

  const SVG_NS = 'http://www.w3.org/2000/svg';

  // ---------------------------------------------------------------- helpers

  /** Create an element. attrs: class, text, dataset, on<event>, or plain attributes. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const key of Object.keys(attrs)) {
        const value = attrs[key];
        if (value === null || value === undefined || value === false) continue;
        if (key === 'class') node.className = value;
        else if (key === 'text') node.textContent = String(value);
        else if (key === 'dataset') Object.assign(node.dataset, value);
        else if (key.slice(0, 2) === 'on' && typeof value === 'function') {
          node.addEventListener(key.slice(2), value);
        } else node.setAttribute(key, value === true ? '' : String(value));
      }
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** Build a small static SVG icon from path strings (our own constants only). */
  function icon(paths, viewBox) {
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', viewBox || '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    for (const d of paths) {
      const p = document.createElementNS(SVG_NS, 'path');
      p.setAttribute('d', d);
      p.setAttribute('fill', 'none');
      p.setAttribute('stroke', 'currentColor');
      p.setAttribute('stroke-width', '2');
      p.setAttribute('stroke-linecap', 'round');
      p.setAttribute('stroke-linejoin', 'round');
      svg.append(p);
    }
    return svg;
  }
  const ICON_TAG = ['M3 12.5V4a1 1 0 0 1 1-1h8.5l8.5 8.5-9.5 9.5z', 'M8 8h.01'];
  const ICON_PREV = ['M15 5l-7 7 7 7'];
  const ICON_NEXT = ['M9 5l7 7-7 7'];

  function storageGet(area, key) {
    try { return window[area].getItem(key); } catch (e) { return null; }
  }
  function storageSet(area, key, value) {
    try { window[area].setItem(key, value); return true; } catch (e) { return false; }
  }
  function storageRemove(area, key) {
    try { window[area].removeItem(key); } catch (e) { /* storage unavailable */ }
  }

  function randomId() {
    const c = window.crypto;
    if (c && typeof c.randomUUID === 'function') return c.randomUUID();
    if (c && typeof c.getRandomValues === 'function') {
      const bytes = new Uint8Array(16);
      c.getRandomValues(bytes);
      return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    }
    return 'web-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 12);
  }

  let memorySenderId = null;
  function getSenderId() {
    let id = storageGet('localStorage', SENDER_KEY) || memorySenderId;
    if (!id) {
      id = randomId();
      storageSet('localStorage', SENDER_KEY, id);
    }
    memorySenderId = id;
    return id;
  }
  function newSenderId() {
    const id = randomId();
    storageSet('localStorage', SENDER_KEY, id);
    memorySenderId = id;
    return id;
  }

  function str(value) {
    return value === null || value === undefined ? '' : String(value);
  }
  function num(value) {
    const n = typeof value === 'number' ? value : parseFloat(value);
    return Number.isFinite(n) ? n : 0;
  }

  const inrWhole = new Intl.NumberFormat('en-IN', {
    style: 'currency', currency: 'INR', minimumFractionDigits: 0, maximumFractionDigits: 0,
  });
  const inrExact = new Intl.NumberFormat('en-IN', {
    style: 'currency', currency: 'INR', minimumFractionDigits: 2, maximumFractionDigits: 2,
  });
  function formatInr(amount) {
    return (Number.isInteger(amount) ? inrWhole : inrExact).format(amount);
  }

  /** Normalise a product card from the server: keep known fields, coerce types. */
  function normaliseCard(raw) {
    if (!raw || typeof raw !== 'object') return null;
    return {
      id: str(raw.id),
      name: str(raw.name),
      brand: str(raw.brand),
      price: num(raw.price),
      discounted_price: num(raw.discounted_price),
      final_price: num(raw.final_price),
      colour: str(raw.colour),
      article_type: str(raw.article_type),
      gender: str(raw.gender),
      image_url: typeof raw.image_url === 'string' && raw.image_url ? raw.image_url : null,
    };
  }

  function priceInfo(card) {
    const mrp = card.price;
    let final = card.final_price;
    if (!(final > 0)) final = card.discounted_price > 0 ? card.discounted_price : mrp;
    const discounted = mrp > 0 && final > 0 && final < mrp;
    const pct = discounted ? Math.round((1 - final / mrp) * 100) : 0;
    return { mrp, final, discounted, pct };
  }

  /** Only same-origin paths and http(s) URLs are used as image sources. */
  function safeImageUrl(url) {
    if (!url) return null;
    try {
      const u = new URL(url, window.location.href);
      return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  // Soft background / dark text pairs (all >= 7:1 contrast) for image placeholders.
  const PLACEHOLDER_COLOURS = [
    ['#e8eaf6', '#283070'], ['#e6f4ea', '#1e4d2b'], ['#fdecea', '#7a2318'],
    ['#fff4e0', '#6b3d00'], ['#e3f2fd', '#0d3c61'], ['#f3e8fd', '#4a1d7a'],
    ['#e0f5f3', '#0f4a44'], ['#fbe9f1', '#6e1d43'],
  ];
  function placeholder(card) {
    const label = card.article_type || 'Product';
    let hash = 0;
    for (let i = 0; i < label.length; i++) hash = (hash * 31 + label.charCodeAt(i)) >>> 0;
    const colours = PLACEHOLDER_COLOURS[hash % PLACEHOLDER_COLOURS.length];
    const box = el('div', { class: 'ph', 'aria-hidden': 'true' },
      icon(ICON_TAG), el('span', { class: 'ph__label', text: label }));
    box.style.setProperty('--ph-bg', colours[0]);
    box.style.setProperty('--ph-fg', colours[1]);
    return box;
  }

  function media(card, className) {
    const wrap = el('div', { class: className });
    const src = safeImageUrl(card.image_url);
    if (src) {
      const img = el('img', { alt: card.name || card.article_type || 'Product image', loading: 'lazy', decoding: 'async' });
      img.addEventListener('error', () => {
        if (img.parentNode) img.replaceWith(placeholder(card));
      }, { once: true });
      img.src = src;
      wrap.append(img);
    } else {
      wrap.append(placeholder(card));
    }
    return wrap;
  }

  function priceBlock(info) {
    const p = el('p', { class: 'price' },
      el('span', { class: 'price__final' },
        el('span', { class: 'visually-hidden', text: 'Price: ' }), formatInr(info.final)));
    if (info.discounted) {
      p.append(el('s', { class: 'price__mrp' },
        el('span', { class: 'visually-hidden', text: 'was ' }), formatInr(info.mrp)));
      if (info.pct >= 1) p.append(el('span', { class: 'price__off', text: info.pct + '% off' }));
    }
    return p;
  }

  function metaLine(card) {
    return [card.gender, card.colour].filter(Boolean).join(' · ');
  }

  // ---------------------------------------------------------------- product grid

  const grid = document.getElementById('product-grid');
  const gridStatus = document.getElementById('grid-status');
  const gridError = document.getElementById('grid-error');
  const gridErrorText = document.getElementById('grid-error-text');

  function gridCard(card) {
    const info = priceInfo(card);
    const meta = metaLine(card);
    return el('li', {
      class: 'card', 'data-testid': 'grid-product-card', 'data-product-id': card.id,
    },
    media(card, 'card__media'),
    el('div', { class: 'card__body' },
      card.brand ? el('p', { class: 'card__brand', text: card.brand }) : null,
      el('h3', { class: 'card__name', text: card.name || card.article_type || 'Product' }),
      meta ? el('p', { class: 'card__meta', text: meta }) : null,
      priceBlock(info)));
  }

  function showSkeletons(count) {
    grid.textContent = '';
    for (let i = 0; i < count; i++) {
      grid.append(el('li', { class: 'card card--skeleton', 'aria-hidden': 'true' },
        el('div', { class: 'card__media' }, el('div', { class: 'skel' })),
        el('div', { class: 'card__body' },
          el('div', { class: 'skel skel--line', style: 'width:40%' }),
          el('div', { class: 'skel skel--line', style: 'width:90%' }),
          el('div', { class: 'skel skel--line', style: 'width:55%' }))));
    }
  }

  async function loadProducts() {
    gridError.hidden = true;
    grid.hidden = false;
    grid.setAttribute('aria-busy', 'true');
    gridStatus.textContent = 'Loading products…';
    showSkeletons(8);
    try {
      const res = await fetch(API_PRODUCTS, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
      let data = null;
      try { data = await res.json(); } catch (e) { data = null; }
      if (!res.ok) {
        throw new Error(data && typeof data.error === 'string' && data.error ? data.error
          : "We couldn't load the products (error " + res.status + ').');
      }
      const cards = (data && Array.isArray(data.products) ? data.products : [])
        .map(normaliseCard).filter(Boolean);
      grid.textContent = '';
      const frag = document.createDocumentFragment();
      for (const card of cards) frag.append(gridCard(card));
      grid.append(frag);
      const total = data && Number.isFinite(data.total) ? data.total : cards.length;
      if (!cards.length) gridStatus.textContent = 'No products to show yet.';
      else if (total > cards.length) {
        gridStatus.textContent = 'Showing ' + cards.length + ' of ' + total.toLocaleString('en-IN') + ' products';
      } else gridStatus.textContent = cards.length + (cards.length === 1 ? ' product' : ' products');
    } catch (err) {
      grid.textContent = '';
      grid.hidden = true;
      gridStatus.textContent = '';
      gridErrorText.textContent = err instanceof TypeError
        ? "We couldn't load the products. Check your connection and try again."
        : str(err && err.message) || "We couldn't load the products.";
      gridError.hidden = false;
    } finally {
      grid.setAttribute('aria-busy', 'false');
    }
  }

  document.getElementById('grid-retry').addEventListener('click', loadProducts);

  // ---------------------------------------------------------------- chat

  const toggle = document.getElementById('chat-toggle');
  const toggleLabel = document.getElementById('chat-toggle-label');
  const panel = document.getElementById('chat-panel');
  const scroller = document.getElementById('chat-scroll');
  const log = document.getElementById('chat-log');
  const hint = document.getElementById('chat-hint');
  const typing = document.getElementById('chat-typing');
  const errorBox = document.getElementById('chat-error');
  const errorText = document.getElementById('chat-error-text');
  const retryBtn = document.getElementById('chat-retry');
  const form = document.getElementById('chat-form');
  const input = document.getElementById('chat-input');
  const sendBtn = document.getElementById('chat-send');
  const closeBtn = document.getElementById('chat-close');
  const resetBtn = document.getElementById('chat-reset');

  /*
   * Transcript entries (persisted in sessionStorage):
   *   {t: 'user', text}
   *   {t: 'bot', text, buttons: [{title, payload}]}
   *   {t: 'image', url}
   *   {t: 'products', products: [card]}
   */
  let transcript = loadTranscript();
  let busy = false;
  let pendingRetry = null;   // message payload to resend after a failure
  let generation = 0;        // bumps on "new conversation" so late replies are dropped

  function loadTranscript() {
    const raw = storageGet('sessionStorage', TRANSCRIPT_KEY);
    if (!raw) return [];
    try {
      const parsed = JSON.parse(raw);
      return Array.isArray(parsed) ? parsed.filter((e) => e && typeof e === 'object' && typeof e.t === 'string') : [];
    } catch (e) {
      return [];
    }
  }

  function saveTranscript() {
    if (transcript.length > MAX_ENTRIES) transcript = transcript.slice(-MAX_ENTRIES);
    if (!storageSet('sessionStorage', TRANSCRIPT_KEY, JSON.stringify(transcript))) {
      // Quota exceeded: keep only the most recent half and try once more.
      transcript = transcript.slice(-Math.floor(MAX_ENTRIES / 4));
      storageSet('sessionStorage', TRANSCRIPT_KEY, JSON.stringify(transcript));
    }
  }

  function chatCard(card) {
    const info = priceInfo(card);
    return el('li', {
      class: 'pcard', 'data-testid': 'chat-product-card', 'data-product-id': card.id,
    },
    media(card, 'pcard__media'),
    el('div', { class: 'pcard__body' },
      card.brand ? el('p', { class: 'pcard__brand', text: card.brand }) : null,
      el('p', { class: 'pcard__name', text: card.name || card.article_type || 'Product' }),
      priceBlock(info)));
  }

  function carousel(cards) {
    const count = cards.length;
    const label = count === 1 ? '1 product' : count + ' products';
    const list = el('ul', { class: 'carousel', tabindex: '0', 'aria-label': 'Suggested products, ' + label });
    for (const card of cards) list.append(chatCard(card));
    const wrap = el('div', { class: 'carousel-wrap' }, list);
    if (count > 1) {
      const step = (dir) => () => {
        list.scrollBy({ left: dir * Math.max(150, list.clientWidth * 0.8), behavior: 'smooth' });
      };
      const prev = el('button', {
        type: 'button', class: 'carousel-btn carousel-btn--prev', 'aria-label': 'Scroll products left', onclick: step(-1),
      }, icon(ICON_PREV));
      const next = el('button', {
        type: 'button', class: 'carousel-btn carousel-btn--next', 'aria-label': 'Scroll products right', onclick: step(1),
      }, icon(ICON_NEXT));
      const update = () => {
        const max = list.scrollWidth - list.clientWidth;
        prev.hidden = list.scrollLeft <= 2;
        next.hidden = list.scrollLeft >= max - 2;
      };
      list.addEventListener('scroll', update, { passive: true });
      wrap.append(prev, next);
      // Layout is only known once the panel is visible and the element attached.
      requestAnimationFrame(update);
      wrap.updateCarousel = update;
    }
    return wrap;
  }

  function quickReplies(buttons, active) {
    const group = el('div', { class: 'quick-replies', role: 'group', 'aria-label': 'Suggested replies' });
    for (const b of buttons) {
      group.append(el('button', {
        type: 'button',
        class: 'quick-reply',
        'data-testid': 'quick-reply',
        disabled: !active,
        onclick: () => { send(b.payload, b.title); },
        text: b.title,
      }));
    }
    return group;
  }

  function renderEntry(entry, active) {
    switch (entry.t) {
      case 'user':
        return el('div', { class: 'msg msg--user' },
          el('span', { class: 'visually-hidden', text: 'You said:' }),
          el('p', { class: 'bubble bubble--user', 'data-testid': 'user-message', text: str(entry.text) }));
      case 'bot': {
        const node = el('div', { class: 'msg msg--bot' });
        if (entry.text) {
          node.append(
            el('span', { class: 'visually-hidden', text: 'Assistant said:' }),
            el('p', { class: 'bubble bubble--bot', 'data-testid': 'bot-message', text: str(entry.text) }));
        }
        if (Array.isArray(entry.buttons) && entry.buttons.length) node.append(quickReplies(entry.buttons, active));
        return node;
      }
      case 'image': {
        const src = safeImageUrl(entry.url);
        if (!src) return null;
        return el('div', { class: 'msg msg--bot' },
          el('img', { class: 'bot-image', src, alt: str(entry.alt) || 'Image from the assistant', loading: 'lazy' }));
      }
      case 'products': {
        const cards = (Array.isArray(entry.products) ? entry.products : []).map(normaliseCard).filter(Boolean);
        if (!cards.length) return null;
        return el('div', { class: 'msg msg--bot msg--wide' },
          el('span', { class: 'visually-hidden', text: 'Assistant showed ' + cards.length + (cards.length === 1 ? ' product:' : ' products:') }),
          carousel(cards));
      }
      default:
        return null;
    }
  }

  function updateHint() {
    hint.hidden = transcript.length > 0;
  }

  function scrollToBottom() {
    scroller.scrollTop = scroller.scrollHeight;
  }

  function refreshCarousels() {
    for (const wrap of log.querySelectorAll('.carousel-wrap')) {
      if (typeof wrap.updateCarousel === 'function') wrap.updateCarousel();
    }
  }

  function renderAll() {
    log.textContent = '';
    let lastUser = -1;
    transcript.forEach((e, i) => { if (e.t === 'user') lastUser = i; });
    const frag = document.createDocumentFragment();
    transcript.forEach((entry, i) => {
      const node = renderEntry(entry, i > lastUser);
      if (node) frag.append(node);
    });
    log.append(frag);
    updateHint();
  }

  function addEntry(entry) {
    transcript.push(entry);
    saveTranscript();
    const node = renderEntry(entry, true);
    if (node) log.append(node);
    updateHint();
    scrollToBottom();
  }

  function disableQuickReplies() {
    for (const b of log.querySelectorAll('.quick-reply')) b.disabled = true;
  }

  function setBusy(value) {
    busy = value;
    sendBtn.setAttribute('aria-disabled', value ? 'true' : 'false');
    typing.hidden = !value;
    if (value) scrollToBottom();
  }

  function showError(message) {
    errorText.textContent = message;
    errorBox.hidden = false;
    retryBtn.hidden = pendingRetry === null;
    scrollToBottom();
  }
  function hideError() {
    errorBox.hidden = true;
    errorText.textContent = '';
  }

  function userError(message) {
    const err = new Error(message);
    err.userMessage = message;
    return err;
  }

  async function postChat(message) {
    const controller = typeof AbortController === 'function' ? new AbortController() : null;
    const timer = controller ? setTimeout(() => controller.abort(), CHAT_TIMEOUT_MS) : 0;
    try {
      let res;
      let raw;
      try {
        res = await fetch(API_CHAT, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
          body: JSON.stringify({ sender: getSenderId(), message }),
          credentials: 'same-origin',
          signal: controller ? controller.signal : undefined,
        });
        raw = await res.text();
      } catch (e) {
        throw userError(e && e.name === 'AbortError' ? MSG_TIMEOUT : MSG_NETWORK);
      }
      let data;
      let parsed = true;
      try { data = raw ? JSON.parse(raw) : null; } catch (e) { parsed = false; }
      if (!res.ok) {
        const serverMsg = parsed && data && typeof data.error === 'string' ? data.error.trim() : '';
        throw userError(serverMsg ||
          'Sorry, the assistant ran into a problem (error ' + res.status + '). Please try again.');
      }
      if (!parsed || !Array.isArray(data)) throw userError(MSG_BAD_REPLY);
      return data;
    } finally {
      clearTimeout(timer);
    }
  }

  function handleBotMessage(m) {
    if (!m || typeof m !== 'object') return;
    const text = typeof m.text === 'string' ? m.text : str(m.text);
    const buttons = (Array.isArray(m.buttons) ? m.buttons : [])
      .filter((b) => b && typeof b === 'object' && (b.title || b.payload))
      .map((b) => ({ title: str(b.title || b.payload), payload: str(b.payload || b.title) }));
    if (text || buttons.length) addEntry({ t: 'bot', text, buttons });
    if (typeof m.image === 'string' && m.image) addEntry({ t: 'image', url: m.image });
    let custom = m.custom;
    if (typeof custom === 'string') {
      try { custom = JSON.parse(custom); } catch (e) { custom = null; }
    }
    if (custom && typeof custom === 'object' && custom.type === 'product_cards' && Array.isArray(custom.products)) {
      const products = custom.products.map(normaliseCard).filter(Boolean);
      if (products.length) addEntry({ t: 'products', products });
    }
  }

  async function deliver(payload) {
    const gen = generation;
    setBusy(true);
    let messages;
    try {
      messages = await postChat(payload);
    } catch (err) {
      if (gen !== generation) return;
      pendingRetry = payload;
      showError((err && err.userMessage) || MSG_NETWORK);
      return;
    } finally {
      if (gen === generation) setBusy(false);
    }
    if (gen !== generation) return;
    pendingRetry = null;
    for (const m of messages) handleBotMessage(m);
    refreshCarousels();
    scrollToBottom();
  }

  /** Send `payload` to the bot, showing `display` (defaults to payload) as the user's bubble. */
  async function send(payload, display) {
    const message = str(payload).trim();
    if (!message || busy) return false;
    const shown = str(display).trim() || message;
    hideError();
    pendingRetry = null;
    disableQuickReplies();
    addEntry({ t: 'user', text: shown });
    await deliver(message);
    return true;
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (busy) return;
    const text = input.value.trim();
    if (!text) { input.focus(); return; }
    input.value = '';
    input.focus();
    send(text);
  });

  retryBtn.addEventListener('click', () => {
    if (busy || pendingRetry === null) return;
    const payload = pendingRetry;
    hideError();
    input.focus();
    deliver(payload);
  });

  // ---- open / close

  function isOpen() { return !panel.hidden; }

  function openChat(options) {
    const focus = !options || options.focus !== false;
    panel.hidden = false;
    document.body.classList.add('chat-open');
    toggle.setAttribute('aria-expanded', 'true');
    toggleLabel.textContent = 'Close the shopping assistant';
    storageSet('sessionStorage', OPEN_KEY, '1');
    updateHint();
    scrollToBottom();
    refreshCarousels();
    if (focus) input.focus();
  }

  function closeChat() {
    panel.hidden = true;
    document.body.classList.remove('chat-open');
    toggle.setAttribute('aria-expanded', 'false');
    toggleLabel.textContent = 'Ask the shopping assistant';
    storageRemove('sessionStorage', OPEN_KEY);
    toggle.focus();
  }

  toggle.addEventListener('click', () => { if (isOpen()) closeChat(); else openChat(); });
  closeBtn.addEventListener('click', closeChat);
  panel.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' || event.key === 'Esc') {
      event.preventDefault();
      closeChat();
    }
  });

  resetBtn.addEventListener('click', () => {
    generation += 1;
    transcript = [];
    saveTranscript();
    newSenderId();
    pendingRetry = null;
    setBusy(false);
    hideError();
    renderAll();
    input.value = '';
    input.focus();
  });

  // ---------------------------------------------------------------- start

  getSenderId();
  renderAll();
  if (storageGet('sessionStorage', OPEN_KEY) === '1') openChat({ focus: false });
  loadProducts();
}());
