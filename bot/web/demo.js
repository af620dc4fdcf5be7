/* Shopbot demo shop: the product grid and the "Demo shopper" switch. Plain ES2017, no
 * dependencies. The chat itself is the embeddable widget (widget.js), set up in index.html.
 *
 * Untrusted text (product data, server errors) is only ever put into the page with
 * textContent / setAttribute, never innerHTML.
 */
'use strict';

(function () {
  const API_PRODUCTS = '/api/products?limit=24';

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

  // ---------------------------------------------------------------- demo shopper

  /** The header switch: chat as the demo shopper (who has the seeded orders) or as a new
   *  visitor. The server keeps the choice in its session cookie, so the switch asks it
   *  (ShopbotWidget.session()) on load; without demo mode (a 404) the switch goes away. */
  function setUpDemoShopper() {
    const box = document.getElementById('demo-shopper');
    const widget = window.ShopbotWidget;
    if (!box || !widget) return;
    const label = box.closest('label') || box;
    const hint = label.querySelector('.demo-shopper__hint');
    const hintText = hint ? hint.textContent : '';
    const say = (text) => { if (hint) hint.textContent = text || hintText; };
    const show = (view) => { box.checked = Boolean(view) && view.kind === 'demo'; };

    let pending = false;  // (not `disabled`: that would take the keyboard focus away)
    let touched = false;  // the shopper switched before the first answer came
    box.addEventListener('click', (event) => { if (pending) event.preventDefault(); });
    box.addEventListener('change', () => {
      const wanted = box.checked;
      pending = true;
      touched = true;
      box.setAttribute('aria-busy', 'true');
      say('');
      (wanted ? widget.demo() : widget.reset()).then(show, (err) => {
        box.checked = !wanted;
        if (err && err.status === 404) label.hidden = true;  // demo mode is off on this server
        else say("(couldn't switch - please try again)");
      }).then(() => {
        pending = false;
        box.removeAttribute('aria-busy');
      });
    });
    window.addEventListener('shopbot:sessionchange', (event) => show(event.detail));
    widget.session().then((view) => { if (!touched) show(view); }, () => { /* unknown: leave it off */ });
    // The server says up front whether it runs in demo mode (a real shop does not).
    fetch('/api/config', { credentials: 'omit' })
      .then((r) => (r.ok ? r.json() : null))
      .then((config) => { if (config && config.demo === false) label.hidden = true; },
        () => { /* unknown: the 404 on first use still hides it */ });
  }

  // ---------------------------------------------------------------- start

  loadProducts();
  setUpDemoShopper();
}());
