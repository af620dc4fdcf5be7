/* Shopbot chat widget: one <script> tag embeds a shopping assistant on any page.
 *
 *   <script src="https://bot.example.com/static/widget.js"></script>
 *   <script>ShopbotWidget.init({ title: 'Ask our stylist' });</script>
 *
 * or, with no second script, configured by data- attributes:
 *
 *   <script src="https://bot.example.com/static/widget.js" data-init
 *           data-title="Ask our stylist" data-open="false"></script>
 *
 * Plain ES2017, no dependencies, no build step. It lives in a shadow root so the host
 * page's CSS and ours never meet. Everything the server or the bot sends is untrusted:
 * it reaches the page only through textContent / setAttribute, never innerHTML, and
 * URLs are checked before they become image sources.
 *
 * The server decides who the shopper is: a signed HttpOnly session cookie it sets itself
 * (every fetch goes out with credentials: 'include'), or, for a shop's logged-in customer,
 * the short-lived token the shop's backend signed (the `customerToken` option, sent as
 * `Authorization: Bearer ...`). The widget never chooses or even sees a conversation id.
 */
(function () {
  'use strict';

  if (window.ShopbotWidget) return;

  const SCRIPT = document.currentScript;
  const SCRIPT_ORIGIN = (function () {
    try {
      return SCRIPT && SCRIPT.src ? new URL(SCRIPT.src, window.location.href).origin : window.location.origin;
    } catch (e) {
      return window.location.origin;
    }
  }());

  const DEFAULTS = {
    endpoint: SCRIPT_ORIGIN,      // where /api/chat, /api/upload, /api/config live
    title: 'Shopping assistant',
    subtitle: 'Ask for clothes, shoes and more',
    welcome: 'Hi! I can help you find something to wear. Try "red dresses under 2000", ' +
      'or send a photo of something you like.',
    open: false,                  // start with the panel open
    customerToken: null,          // logged-in customer: a token string, or a function giving one
    storageKey: 'shopbot',        // prefix of the localStorage / sessionStorage keys
    stylesheet: null,             // default: <endpoint>/static/widget.css
    maxTranscript: 50,            // messages kept across page reloads
  };

  const DEFAULT_LIMITS = {
    max_upload_bytes: 10 * 1024 * 1024,
    accepted_types: ['image/jpeg', 'image/png', 'image/webp', 'image/gif'],
    max_message_chars: 2000,
  };
  const CHAT_TIMEOUT_MS = 45000;
  const POLL_MS = 3000;          // how often the widget asks for a person's messages
  const POLL_TIMEOUT_MS = 10000;
  const UPLOAD_TIMEOUT_MS = 60000;
  const SESSION_TIMEOUT_MS = 20000;
  const THUMB_SIDE = 320;
  const PHONE = window.matchMedia('(max-width: 480px)');  // keep in step with widget.css

  const MSG_NETWORK = "Couldn't reach the shopping assistant. Check your connection and try again.";
  const MSG_TIMEOUT = 'The shopping assistant is taking too long to answer. Please try again.';
  const MSG_BAD_REPLY = "Sorry, the assistant sent a reply I couldn't read. Please try again.";
  const MSG_NOT_PICTURE = "That file doesn't look like a picture. Please choose a JPEG, PNG, WebP or GIF photo.";
  const MSG_SIGN_IN = 'Your sign-in has expired. Please sign in again to keep chatting.';
  const MSG_NO_TOKEN = "Couldn't confirm that you are signed in. Please try again.";
  const MSG_NEW_CONVERSATION = "Couldn't start a new conversation. Please try again.";

  const SVG_NS = 'http://www.w3.org/2000/svg';
  const ICONS = {
    chat: ['M4 5.5A2.5 2.5 0 0 1 6.5 3h11A2.5 2.5 0 0 1 20 5.5v8a2.5 2.5 0 0 1-2.5 2.5H10l-4.2 3.6c-.5.4-1.3.1-1.3-.6V16H6.5'],
    close: ['M6 6l12 12M18 6L6 18'],
    reset: ['M4 12a8 8 0 1 0 2.4-5.7M4 4v4.5h4.5'],
    send: ['M4 12l16-8-6 16-2.5-6.5z', 'M11.5 13.5L20 4'],
    clip: ['M20 11.5l-8.1 8.1a5 5 0 0 1-7.1-7.1l8.5-8.5a3.4 3.4 0 0 1 4.8 4.8l-8.5 8.5a1.7 1.7 0 0 1-2.4-2.4l7.8-7.8'],
    prev: ['M15 5l-7 7 7 7'],
    next: ['M9 5l7 7-7 7'],
    tag: ['M3 12.5V4a1 1 0 0 1 1-1h8.5l8.5 8.5-9.5 9.5z', 'M8 8h.01'],
    alert: ['M12 7v6M12 16.5v.5', 'M12 2.5a9.5 9.5 0 1 0 0 19 9.5 9.5 0 0 0 0-19z'],
  };

  // ---------------------------------------------------------------- small helpers

  /** Create an element. attrs: class, text, on<event> handlers, or plain attributes. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = String(value);
      else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function icon(name) {
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    for (const d of ICONS[name]) {
      const path = document.createElementNS(SVG_NS, 'path');
      path.setAttribute('d', d);
      svg.append(path);
    }
    return svg;
  }

  function hiddenText(text) {
    return el('span', { class: 'sbw-vh', text });
  }

  function str(value) {
    return value === null || value === undefined ? '' : String(value);
  }

  function num(value) {
    const n = typeof value === 'number' ? value : parseFloat(value);
    return Number.isFinite(n) ? n : 0;
  }

  function storage(area) {
    try {
      const s = window[area];
      const probe = '__shopbot__';
      s.setItem(probe, '1');
      s.removeItem(probe);
      return s;
    } catch (e) {
      return null;  // private mode, disabled storage: the widget still works, just forgets
    }
  }

  const formatters = {};
  function money(amount, currency) {
    const code = /^[A-Z]{3}$/.test(str(currency)) ? currency : 'INR';
    const whole = Number.isInteger(amount);
    const key = code + (whole ? '0' : '2');
    if (!formatters[key]) {
      try {
        formatters[key] = new Intl.NumberFormat('en-IN', {
          style: 'currency', currency: code,
          minimumFractionDigits: whole ? 0 : 2, maximumFractionDigits: whole ? 0 : 2,
        });
      } catch (e) {
        formatters[key] = { format: (n) => code + ' ' + n.toFixed(whole ? 0 : 2) };
      }
    }
    return formatters[key].format(amount);
  }

  function formatBytes(bytes) {
    if (bytes >= 1024 * 1024) return (bytes / (1024 * 1024)).toFixed(bytes >= 10 * 1024 * 1024 ? 0 : 1) + ' MB';
    if (bytes >= 1024) return Math.round(bytes / 1024) + ' KB';
    return bytes + ' bytes';
  }

  /** Our own thumbnails only: a data: URL of a JPEG or PNG we drew on a canvas. */
  function safeThumb(url) {
    return typeof url === 'string' && /^data:image\/(jpeg|png);base64,[A-Za-z0-9+/=]+$/.test(url) ? url : null;
  }

  function userError(message, retryable, status) {
    const err = new Error(message);
    err.userMessage = message;
    err.retryable = Boolean(retryable);
    err.status = status || 0;  // the HTTP status when the server refused; 0 otherwise
    return err;
  }

  /** What the page may know about its session: {kind, customer}, from /api/session & co. */
  function sessionView(data) {
    if (!data || typeof data !== 'object' || typeof data.kind !== 'string') throw userError(MSG_BAD_REPLY, true);
    return { kind: data.kind, customer: typeof data.customer === 'string' ? data.customer : null };
  }

  /** Whose conversation the stored transcript is: 'anonymous', 'demo' or 'customer:<id>'. */
  function ownerOf(view) {
    return view.kind === 'customer' ? 'customer:' + str(view.customer) : view.kind;
  }

  /** A small JPEG data URL of an image file; rejects when the browser can't decode it. */
  function makeThumbnail(file) {
    return new Promise((resolve, reject) => {
      const url = URL.createObjectURL(file);
      const img = new Image();
      img.onload = () => {
        try {
          const scale = Math.min(1, THUMB_SIDE / Math.max(img.naturalWidth, img.naturalHeight));
          const w = Math.max(1, Math.round(img.naturalWidth * scale));
          const h = Math.max(1, Math.round(img.naturalHeight * scale));
          const canvas = document.createElement('canvas');
          canvas.width = w;
          canvas.height = h;
          const ctx = canvas.getContext('2d');
          ctx.fillStyle = '#fff';  // transparent PNG/GIF: white, like catalog photos
          ctx.fillRect(0, 0, w, h);
          ctx.drawImage(img, 0, 0, w, h);
          resolve(canvas.toDataURL('image/jpeg', 0.82));
        } catch (e) {
          reject(e);
        } finally {
          URL.revokeObjectURL(url);
        }
      };
      img.onerror = () => { URL.revokeObjectURL(url); reject(new Error('undecodable')); };
      img.src = url;
    });
  }

  // ---------------------------------------------------------------- the widget

  class Widget {
    constructor(config) {
      this.config = config;
      this.endpoint = str(config.endpoint || SCRIPT_ORIGIN).replace(/\/+$/, '');
      this.local = storage('localStorage');
      this.session = storage('sessionStorage');
      this.keys = {
        transcript: config.storageKey + '.transcript.v2',
        owner: config.storageKey + '.owner',
        open: config.storageKey + '.open',
        outbox: config.storageKey + '.outbox',  // id of the last message from a person seen
      };
      this.localRemove(config.storageKey + '.sender');  // the old widget's own sender id
      this.limits = Object.assign({}, DEFAULT_LIMITS);
      this.busy = false;
      this.generation = 0;       // bumps on a new conversation, so late replies are dropped
      this.attachment = null;    // {file, thumb} waiting for Send
      this.dragDepth = 0;
      // A customer's transcript is shown only once the server confirms it is still theirs.
      const stored = this.loadTranscript();
      const personal = Boolean(config.customerToken) || /^customer:/.test(str(this.localGet(this.keys.owner)));
      this.transcript = personal ? [] : stored;
      this.build();
      this.renderAll();
      this.ready = this.checkOwner(stored, personal);  // every request waits for this first
      this.loadLimits();
      if (config.open || this.sessionGet(this.keys.open) === '1') this.open({ focus: false });
      this.ready.then(() => this.startPolling());
    }

    // ---- a person from the shop (human handoff)

    /** Messages from the shop's staff come outside any turn. The widget asks once when the
     *  page opens and after every answer; only while a ticket waits for a person, or a
     *  person has the chat, does it keep asking every few seconds. */
    startPolling() {
      this.pollUpdates();
    }

    keepPolling(on) {
      if (on && !this.pollTimer) this.pollTimer = setInterval(() => this.pollUpdates(), POLL_MS);
      if (!on && this.pollTimer) {
        clearInterval(this.pollTimer);
        this.pollTimer = null;
      }
    }

    async pollUpdates() {
      if (this.polling || document.hidden) return;
      this.polling = true;
      const generation = this.generation;
      try {
        const after = this.localGet(this.keys.outbox);
        const query = after && /^\d+$/.test(after) ? '?after=' + after : '';
        const { res, data, parsed } = await this.fetchOnce('/api/chat/updates' + query, { method: 'GET' }, POLL_TIMEOUT_MS, false);
        if (!res.ok || !parsed || !data || generation !== this.generation) return;
        for (const m of Array.isArray(data.messages) ? data.messages : []) {
          if (!m || typeof m !== 'object' || !str(m.text)) continue;
          if (m.notice) this.addEntry({ t: 'notice', text: str(m.text) });
          else this.addEntry({ t: 'staff', text: str(m.text), from: str(m.staff) });
        }
        if (Number.isFinite(data.last)) this.localSet(this.keys.outbox, String(data.last));
        const person = typeof data.with_person === 'string' ? data.with_person : '';
        this.showPerson(person);
        this.keepPolling(Boolean(person || data.waiting));
      } catch (e) {
        /* offline or refused: the next poll tries again */
      } finally {
        this.polling = false;
      }
    }

    showPerson(name) {
      this.personBanner.hidden = !name;
      this.personBanner.textContent = name ? "You're chatting with " + name + ' from our team' : '';
    }

    // ---- storage

    localGet(key) { try { return this.local ? this.local.getItem(key) : null; } catch (e) { return null; } }
    localSet(key, value) { try { if (this.local) this.local.setItem(key, value); return true; } catch (e) { return false; } }
    localRemove(key) { try { if (this.local) this.local.removeItem(key); } catch (e) { /* ignore */ } }
    sessionGet(key) { try { return this.session ? this.session.getItem(key) : null; } catch (e) { return null; } }
    sessionSet(key, value) {
      try { if (!this.session) return; if (value === null) this.session.removeItem(key); else this.session.setItem(key, value); } catch (e) { /* ignore */ }
    }

    loadTranscript() {
      try {
        const parsed = JSON.parse(this.localGet(this.keys.transcript) || '[]');
        return Array.isArray(parsed) ? parsed.filter((e) => e && typeof e === 'object' && typeof e.t === 'string') : [];
      } catch (e) {
        return [];
      }
    }

    saveTranscript() {
      const max = Math.max(1, num(this.config.maxTranscript) || DEFAULTS.maxTranscript);
      if (this.transcript.length > max) this.transcript = this.transcript.slice(-max);
      let kept = this.transcript;
      while (!this.localSet(this.keys.transcript, JSON.stringify(kept)) && kept.length > 1) {
        kept = kept.slice(Math.ceil(kept.length / 2));  // over quota: keep the newer half
      }
    }

    async loadLimits() {
      try {
        const res = await fetch(this.endpoint + '/api/config', { credentials: 'omit', headers: { Accept: 'application/json' } });
        if (!res.ok) return;
        const data = await res.json();
        if (data && Number.isFinite(data.max_upload_bytes)) this.limits.max_upload_bytes = data.max_upload_bytes;
        if (data && Array.isArray(data.accepted_types)) this.limits.accepted_types = data.accepted_types.map(str);
        if (data && Number.isFinite(data.max_message_chars)) {
          this.limits.max_message_chars = data.max_message_chars;
          this.input.maxLength = data.max_message_chars;
        }
        this.fileInput.accept = this.limits.accepted_types.join(',');
      } catch (e) {
        /* the defaults match the server's defaults */
      }
    }

    // ---- building the DOM

    build() {
      const cfg = this.config;
      this.host = el('div', { id: 'shopbot-widget', 'data-testid': 'shopbot-widget' });
      const root = this.host.attachShadow({ mode: 'open' });
      this.root = root;
      const css = el('link', { rel: 'stylesheet', href: cfg.stylesheet || this.endpoint + '/static/widget.css' });
      const frame = el('div', { class: 'sbw' });
      frame.style.visibility = 'hidden';  // no flash of unstyled widget
      const reveal = () => { frame.style.visibility = ''; };
      css.addEventListener('load', reveal);
      css.addEventListener('error', reveal);

      this.toggleLabel = el('span', { class: 'sbw-toggle__label', text: 'Chat with the ' + cfg.title.toLowerCase() });
      this.toggleBtn = el('button', {
        type: 'button', class: 'sbw-toggle', 'data-testid': 'chat-toggle',
        'aria-controls': 'sbw-panel', 'aria-expanded': 'false', onclick: () => this.toggle(),
      }, icon('chat'), icon('close'), this.toggleLabel);

      this.log = el('div', {
        class: 'sbw-log', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions',
        'aria-label': 'Conversation', 'data-testid': 'chat-log',
      });
      this.welcome = el('p', { class: 'sbw-welcome', 'data-testid': 'chat-welcome', text: cfg.welcome });
      this.typing = el('div', { class: 'sbw-typing', role: 'status', 'data-testid': 'chat-typing', hidden: true },
        el('span', { class: 'sbw-typing__dots', 'aria-hidden': 'true' }, el('span'), el('span'), el('span')),
        hiddenText('The assistant is typing…'));
      this.scroller = el('div', { class: 'sbw-scroll' }, this.welcome, this.log, this.typing);

      this.chipImg = el('img', { class: 'sbw-chip__img', alt: '' });
      this.chipText = el('span', { class: 'sbw-chip__text' });
      this.chip = el('div', { class: 'sbw-chip', 'data-testid': 'chat-attachment', hidden: true },
        this.chipImg, this.chipText,
        el('button', {
          type: 'button', class: 'sbw-chip__remove', 'aria-label': 'Remove the photo',
          'data-testid': 'chat-attachment-remove', onclick: () => { this.clearAttachment(); this.input.focus(); },
        }, icon('close')));

      this.fileInput = el('input', {
        type: 'file', class: 'sbw-file', accept: this.limits.accepted_types.join(','), tabindex: '-1',
        'aria-hidden': 'true', 'data-testid': 'chat-file',
        onchange: () => {
          const file = this.fileInput.files && this.fileInput.files[0];
          this.fileInput.value = '';
          if (file) this.attach(file);
        },
      });
      this.input = el('input', {
        type: 'text', id: 'sbw-input', class: 'sbw-input', 'data-testid': 'chat-input',
        placeholder: 'Type a message…', maxlength: String(this.limits.max_message_chars),
        autocomplete: 'off', enterkeyhint: 'send', spellcheck: 'true',
      });
      this.sendBtn = el('button', {
        type: 'submit', class: 'sbw-send', 'data-testid': 'chat-send', 'aria-label': 'Send message',
      }, icon('send'));
      this.form = el('form', { class: 'sbw-form', novalidate: true, onsubmit: (e) => { e.preventDefault(); this.submit(); } },
        this.fileInput,
        el('button', {
          type: 'button', class: 'sbw-attach', 'data-testid': 'chat-attach',
          'aria-label': 'Attach a photo', title: 'Attach a photo (or drop or paste one)',
          onclick: () => this.fileInput.click(),
        }, icon('clip')),
        el('label', { for: 'sbw-input', class: 'sbw-vh', text: 'Message the ' + cfg.title.toLowerCase() }),
        this.input, this.sendBtn);

      this.dropZone = el('div', { class: 'sbw-drop', hidden: true, 'aria-hidden': 'true' },
        el('p', { text: 'Drop a photo to send it' }));

      this.panel = el('section', {
        id: 'sbw-panel', class: 'sbw-panel', role: 'dialog', 'aria-modal': 'false',
        'aria-labelledby': 'sbw-title', 'data-testid': 'chat-panel', hidden: true,
      },
      el('header', { class: 'sbw-header' },
        el('span', { class: 'sbw-avatar', 'aria-hidden': 'true', text: (cfg.title.trim()[0] || 'S').toUpperCase() }),
        el('div', { class: 'sbw-header__text' },
          el('h2', { id: 'sbw-title', class: 'sbw-title', text: cfg.title }),
          cfg.subtitle ? el('p', { class: 'sbw-subtitle', text: cfg.subtitle }) : null,
          this.personBanner = el('p', { class: 'sbw-person', 'data-testid': 'chat-with-person', role: 'status', hidden: true })),
        el('button', {
          type: 'button', class: 'sbw-icon-btn', 'data-testid': 'chat-reset',
          'aria-label': 'Start a new conversation', title: 'Start a new conversation', onclick: () => this.onResetClick(),
        }, icon('reset')),
        el('button', {
          type: 'button', class: 'sbw-icon-btn', 'data-testid': 'chat-close',
          'aria-label': 'Close chat', title: 'Close chat', onclick: () => this.close(),
        }, icon('close'))),
      this.scroller, this.chip, this.form, this.dropZone);

      this.panel.addEventListener('keydown', (event) => {
        if (event.key === 'Escape' || event.key === 'Esc') {
          event.preventDefault();
          this.close();
        }
      });
      this.panel.addEventListener('paste', (event) => this.onPaste(event));
      this.panel.addEventListener('dragenter', (event) => this.onDrag(event, 1));
      this.panel.addEventListener('dragover', (event) => this.onDrag(event, 0));
      this.panel.addEventListener('dragleave', (event) => this.onDrag(event, -1));
      this.panel.addEventListener('drop', (event) => this.onDrop(event));

      frame.append(this.toggleBtn, this.panel);
      root.append(css, frame);
      document.body.append(this.host);
    }

    // ---- open / close

    isOpen() { return !this.panel.hidden; }

    open(options) {
      this.panel.hidden = false;
      this.host.classList.add('sbw-is-open');
      this.toggleBtn.setAttribute('aria-expanded', 'true');
      this.toggleLabel.textContent = 'Close the ' + this.config.title.toLowerCase();
      this.sessionSet(this.keys.open, '1');
      this.lockPageScroll(true);
      this.scrollToBottom();
      this.refreshCarousels();
      if (!options || options.focus !== false) this.input.focus();
    }

    close() {
      if (!this.isOpen()) return;
      this.panel.hidden = true;
      this.host.classList.remove('sbw-is-open');
      this.toggleBtn.setAttribute('aria-expanded', 'false');
      this.toggleLabel.textContent = 'Chat with the ' + this.config.title.toLowerCase();
      this.sessionSet(this.keys.open, null);
      this.lockPageScroll(false);
      this.toggleBtn.focus();
    }

    /** On a phone the panel covers the page: the page behind it must not scroll. */
    lockPageScroll(lock) {
      const page = document.documentElement;
      if (lock && PHONE.matches && this.pageOverflow === undefined) {
        this.pageOverflow = page.style.overflow;
        page.style.overflow = 'hidden';
      } else if (!lock && this.pageOverflow !== undefined) {
        page.style.overflow = this.pageOverflow;
        this.pageOverflow = undefined;
      }
    }

    toggle() { if (this.isOpen()) this.close(); else this.open(); }

    // ---- conversation state

    clearConversation() {
      this.generation += 1;
      this.transcript = [];
      this.saveTranscript();
      this.clearAttachment();
      this.setBusy(false);
      if (this.log) this.renderAll();
    }

    /** "Start a new conversation": the server gives this browser a new anonymous session. */
    async reset() {
      const view = await this.switchSession('/api/session/new');
      if (this.input) {
        this.input.value = '';
        if (this.isOpen()) this.input.focus();
      }
      return view;
    }

    onResetClick() {
      if (this.switching) return;
      this.switching = true;
      this.reset().catch((err) => {
        this.showError((err && err.userMessage) || MSG_NEW_CONVERSATION,
          err && err.retryable ? () => this.onResetClick() : null);
      }).then(() => { this.switching = false; });
    }

    /** POST `path` (/api/session/new, or /api/session/demo in demo mode): a new session
     *  cookie from the server. The transcript is cleared and `shopbot:sessionchange` fired
     *  with who the shopper now is ({kind, customer}). Rejects (err.status) when refused. */
    async switchSession(path) {
      await this.ready;
      let view = sessionView(await this.call(path, { method: 'POST' }, SESSION_TIMEOUT_MS));
      if (this.config.customerToken) view = await this.fetchSession();  // the token still says who
      this.clearConversation();
      this.localSet(this.keys.owner, ownerOf(view));
      window.dispatchEvent(new CustomEvent('shopbot:sessionchange', { detail: view }));
      return view;
    }

    /** Who the server thinks this shopper is: {kind: 'anonymous'|'demo'|'customer', customer}. */
    async fetchSession() {
      await this.ready;
      return sessionView(await this.call('/api/session', { method: 'GET' }, SESSION_TIMEOUT_MS));
    }

    /** On load: the stored transcript stays only while it is still the same shopper's
     *  (anonymous, demo, or the same customer); a customer's is shown only after this
     *  check. Never rejects: every request waits for it, so the first one sets the cookie. */
    async checkOwner(stored, personal) {
      const generation = this.generation;
      let view;
      try {
        view = sessionView(await this.call('/api/session', { method: 'GET' }, SESSION_TIMEOUT_MS));
      } catch (err) {
        if (err && err.status === 401) this.showError(err.userMessage, null);
        return;  // unknown: a customer's transcript stays hidden, anyone else's stays
      }
      const owner = ownerOf(view);
      const before = this.localGet(this.keys.owner);
      this.localSet(this.keys.owner, owner);
      if (generation !== this.generation || !stored.length) return;  // a new conversation began
      const dropped = before !== owner;
      if (!dropped && !personal) return;
      const added = personal ? this.transcript : this.transcript.slice(stored.length);
      this.transcript = (dropped ? [] : stored).concat(added);
      this.saveTranscript();
      this.renderAll();
      this.refreshCarousels();
      this.scrollToBottom();
    }

    // ---- rendering

    addEntry(entry) {
      this.transcript.push(entry);
      this.saveTranscript();
      this.removeErrors();
      const node = this.renderEntry(entry, true);
      if (node) this.log.append(node);
      this.welcome.hidden = true;
      this.refreshCarousels();
      this.scrollToBottom();
    }

    renderAll() {
      this.log.textContent = '';
      let lastUser = -1;
      this.transcript.forEach((e, i) => { if (e.t === 'user') lastUser = i; });
      const frag = document.createDocumentFragment();
      this.transcript.forEach((entry, i) => {
        const node = this.renderEntry(entry, i > lastUser);
        if (node) frag.append(node);
      });
      this.log.append(frag);
      this.welcome.hidden = this.transcript.length > 0;
    }

    renderEntry(entry, active) {
      switch (entry.t) {
        case 'user': return this.renderUser(entry);
        case 'bot': return this.renderBot(entry, active);
        case 'staff': return el('div', { class: 'sbw-msg sbw-msg--bot sbw-msg--staff' },
          el('span', { class: 'sbw-from', text: (str(entry.from) || 'Our team') + ' (shop team)' }),
          el('p', { class: 'sbw-bubble sbw-bubble--staff', 'data-testid': 'staff-message', text: str(entry.text) }));
        case 'notice': return el('p', { class: 'sbw-notice', 'data-testid': 'chat-notice', text: str(entry.text) });
        case 'image': {
          const src = this.safeUrl(entry.url);
          return src ? el('div', { class: 'sbw-msg sbw-msg--bot' },
            el('img', { class: 'sbw-bot-image', src, alt: str(entry.alt) || 'Picture from the assistant' })) : null;
        }
        case 'products': return this.renderProducts(entry.products);
        case 'cart': return this.renderCart(entry.cart);
        default: return null;
      }
    }

    renderUser(entry) {
      const thumb = safeThumb(entry.thumb);
      const bubble = el('div', { class: 'sbw-bubble sbw-bubble--user', 'data-testid': 'user-message' });
      if (thumb) {
        bubble.classList.add('sbw-bubble--photo');
        bubble.append(el('img', { class: 'sbw-user-photo', src: thumb, alt: 'Your photo', 'data-testid': 'user-photo' }));
      }
      if (entry.text) bubble.append(el('p', { class: 'sbw-bubble__text', text: str(entry.text) }));
      return el('div', { class: 'sbw-msg sbw-msg--user' }, hiddenText('You said:'), bubble);
    }

    renderBot(entry, active) {
      const node = el('div', { class: 'sbw-msg sbw-msg--bot' });
      if (entry.text) {
        node.append(hiddenText('Assistant said:'),
          el('p', { class: 'sbw-bubble sbw-bubble--bot', 'data-testid': 'bot-message', text: str(entry.text) }));
      }
      const buttons = Array.isArray(entry.buttons) ? entry.buttons : [];
      if (buttons.length) {
        const group = el('div', { class: 'sbw-quick-replies', role: 'group', 'aria-label': 'Suggested replies' });
        for (const b of buttons) {
          group.append(el('button', {
            type: 'button', class: 'sbw-quick-reply', 'data-testid': 'quick-reply', disabled: !active,
            text: str(b.title), onclick: () => this.sendText(str(b.payload), str(b.title)),
          }));
        }
        node.append(group);
      }
      return node.childNodes.length ? node : null;
    }

    renderProducts(products) {
      const cards = (Array.isArray(products) ? products : []).filter((p) => p && typeof p === 'object');
      if (!cards.length) return null;
      const label = cards.length === 1 ? '1 product' : cards.length + ' products';
      const list = el('ul', { class: 'sbw-carousel', tabindex: '0', 'aria-label': 'Suggested products, ' + label });
      for (const card of cards) list.append(this.renderCard(card));
      const wrap = el('div', { class: 'sbw-carousel-wrap' }, list);
      if (cards.length > 1) {
        const step = (dir) => () => list.scrollBy({ left: dir * Math.max(170, list.clientWidth * 0.8), behavior: 'smooth' });
        const prev = el('button', { type: 'button', class: 'sbw-carousel-btn sbw-carousel-btn--prev', 'aria-label': 'Scroll products left', tabindex: '-1', onclick: step(-1) }, icon('prev'));
        const next = el('button', { type: 'button', class: 'sbw-carousel-btn sbw-carousel-btn--next', 'aria-label': 'Scroll products right', tabindex: '-1', onclick: step(1) }, icon('next'));
        const update = () => {
          const max = list.scrollWidth - list.clientWidth;
          prev.hidden = list.scrollLeft <= 2;
          next.hidden = list.scrollLeft >= max - 2;
        };
        list.addEventListener('scroll', update, { passive: true });
        wrap.append(prev, next);
        wrap.sbwUpdate = update;
      }
      return el('div', { class: 'sbw-msg sbw-msg--bot sbw-msg--wide' },
        hiddenText('Assistant showed ' + label + ':'), wrap);
    }

    renderCard(raw) {
      const id = str(raw.id);
      const name = str(raw.name) || str(raw.article_type) || 'Product';
      const price = num(raw.price);
      let final = num(raw.final_price) || num(raw.discounted_price) || price;
      if (!(final > 0)) final = price;
      const discounted = price > 0 && final > 0 && final < price;
      const pct = discounted ? (Math.round(num(raw.discount_percent)) || Math.round((1 - final / price) * 100)) : 0;

      const media = el('div', { class: 'sbw-card__media' });
      const src = this.safeUrl(raw.image_url);
      const placeholder = () => el('div', { class: 'sbw-ph', 'aria-hidden': 'true' }, icon('tag'),
        el('span', { text: str(raw.article_type) || 'Product' }));
      if (src) {
        const img = el('img', { alt: name, decoding: 'async', 'data-testid': 'product-image' });
        img.addEventListener('error', () => { if (img.parentNode) img.replaceWith(placeholder()); }, { once: true });
        img.src = src;
        media.append(img);
      } else {
        media.append(placeholder());
      }

      const priceLine = el('p', { class: 'sbw-price' },
        el('span', { class: 'sbw-price__final' }, hiddenText('Price: '), final > 0 ? money(final) : ''));
      if (discounted) {
        priceLine.append(el('s', { class: 'sbw-price__mrp' }, hiddenText('was '), money(price)));
        if (pct >= 1) priceLine.append(el('span', { class: 'sbw-price__off', text: pct + '% off' }));
      }

      const action = (label, intent, testid, shown, extraClass) => el('button', {
        type: 'button', class: 'sbw-card__btn' + (extraClass ? ' ' + extraClass : ''), 'data-testid': testid,
        'aria-label': shown, text: label,
        onclick: () => this.sendText('/' + intent + JSON.stringify({ product_id: id }), shown),
      });
      return el('li', { class: 'sbw-card', 'data-testid': 'chat-product-card', 'data-product-id': id },
        media,
        el('div', { class: 'sbw-card__body' },
          raw.brand ? el('p', { class: 'sbw-card__brand', text: str(raw.brand) }) : null,
          el('p', { class: 'sbw-card__name', title: name, text: name }),
          priceLine,
          el('div', { class: 'sbw-card__actions' },
            action('Add to cart', 'add_to_cart', 'card-add-to-cart', 'Add to cart: ' + name, 'sbw-card__btn--primary'),
            action('Details', 'product_details', 'card-details', 'Details: ' + name),
            action('Similar', 'recommend_products', 'card-similar', 'Similar to ' + name))));
    }

    renderCart(cart) {
      if (!cart || typeof cart !== 'object') return null;
      const currency = str(cart.currency) || 'INR';
      const lines = (Array.isArray(cart.lines) ? cart.lines : []).filter((l) => l && typeof l === 'object');
      const items = lines.reduce((n, l) => n + (num(l.qty) || 1), 0);
      const box = el('div', { class: 'sbw-cart', 'data-testid': 'chat-cart' },
        el('p', { class: 'sbw-cart__title', text: lines.length ? 'Your cart (' + items + (items === 1 ? ' item)' : ' items)') : 'Your cart is empty' }));
      if (lines.length) {
        const list = el('ul', { class: 'sbw-cart__lines' });
        for (const line of lines) {
          const src = this.safeUrl(line.image_url);
          const details = [line.size ? 'Size ' + str(line.size) : '', (num(line.qty) || 1) + ' × ' + money(num(line.unit_price), currency)]
            .filter(Boolean).join(' · ');
          const blank = () => el('span', { class: 'sbw-cart__thumb', 'aria-hidden': 'true' });
          let thumb = blank();
          if (src) {
            thumb = el('img', { class: 'sbw-cart__thumb', src, alt: '' });
            thumb.addEventListener('error', () => { if (thumb.parentNode) thumb.replaceWith(blank()); }, { once: true });
          }
          list.append(el('li', { class: 'sbw-cart__line', 'data-testid': 'cart-line', 'data-product-id': str(line.id) },
            thumb,
            el('span', { class: 'sbw-cart__text' },
              el('span', { class: 'sbw-cart__name', text: str(line.name) || 'Product' }),
              el('span', { class: 'sbw-cart__details', text: details })),
            el('span', { class: 'sbw-cart__amount', text: money(num(line.line_total), currency) })));
        }
        const totals = el('dl', { class: 'sbw-cart__totals' });
        if (num(cart.savings) > 0) {
          totals.append(el('div', { class: 'sbw-cart__savings' }, el('dt', { text: 'You save' }), el('dd', { text: money(num(cart.savings), currency) })));
        }
        totals.append(el('div', { class: 'sbw-cart__total' }, el('dt', { text: 'Total' }),
          el('dd', { 'data-testid': 'cart-total', text: money(num(cart.total), currency) })));
        box.append(list, totals, el('button', {
          type: 'button', class: 'sbw-cart__checkout', 'data-testid': 'cart-checkout',
          text: 'Checkout', onclick: () => this.sendText('/checkout', 'Checkout'),
        }));
      }
      return el('div', { class: 'sbw-msg sbw-msg--bot sbw-msg--wide' }, hiddenText('Assistant showed your cart:'), box);
    }

    /** Image URLs from the bot: relative ones are the bot server's; only http(s). */
    safeUrl(url) {
      if (typeof url !== 'string' || !url) return null;
      try {
        const u = new URL(url, this.endpoint + '/');
        return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
      } catch (e) {
        return null;
      }
    }

    showError(message, retry) {
      this.removeErrors();
      const bubble = el('div', { class: 'sbw-msg sbw-msg--bot' },
        el('div', { class: 'sbw-error', role: 'alert', 'data-testid': 'chat-error' },
          icon('alert'), el('p', { class: 'sbw-error__text', text: message }),
          retry ? el('button', {
            type: 'button', class: 'sbw-error__retry', 'data-testid': 'chat-retry', text: 'Try again',
            onclick: () => { this.removeErrors(); retry(); },
          }) : null));
      this.log.append(bubble);
      this.scrollToBottom();
    }

    removeErrors() {
      for (const node of this.log.querySelectorAll('.sbw-error')) node.parentNode.remove();
    }

    scrollToBottom() {
      this.scroller.scrollTop = this.scroller.scrollHeight;
    }

    refreshCarousels() {
      requestAnimationFrame(() => {
        for (const wrap of this.log.querySelectorAll('.sbw-carousel-wrap')) if (wrap.sbwUpdate) wrap.sbwUpdate();
      });
    }

    setBusy(value) {
      this.busy = value;
      if (!this.sendBtn) return;
      this.sendBtn.setAttribute('aria-disabled', value ? 'true' : 'false');
      this.typing.hidden = !value;
      if (value) this.scrollToBottom();
    }

    // ---- talking to the server

    /** The customer's Authorization header ({} for anyone else). A function option is asked
     *  each time, and with {refresh: true} after the server refused its token. */
    async authHeaders(refresh) {
      const option = this.config.customerToken;
      if (!option) return {};
      let token = option;
      if (typeof option === 'function') {
        try {
          token = await option({ refresh: Boolean(refresh) });
        } catch (e) {
          console.warn('ShopbotWidget: customerToken() failed: %o', e);
          throw userError(MSG_NO_TOKEN, true);
        }
      }
      token = str(token).trim();
      return token ? { Authorization: 'Bearer ' + token } : {};
    }

    /** One round trip, with the session cookie (and the customer token): {res, data, parsed}. */
    async fetchOnce(path, init, timeoutMs, refresh) {
      const headers = Object.assign({ Accept: 'application/json' }, init.headers, await this.authHeaders(refresh));
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), timeoutMs);
      let res;
      let raw;
      try {
        res = await fetch(this.endpoint + path, Object.assign({}, init,
          { headers, credentials: 'include', signal: controller.signal }));
        raw = await res.text();
      } catch (e) {
        throw userError(e && e.name === 'AbortError' ? MSG_TIMEOUT : MSG_NETWORK, true);
      } finally {
        clearTimeout(timer);
      }
      let data = null;
      let parsed = true;
      try { data = raw ? JSON.parse(raw) : null; } catch (e) { parsed = false; }
      return { res, data, parsed };
    }

    /** A request's JSON answer; refusals become userErrors with the server's words. A refused
     *  customer token (401) is asked for afresh once when the option is a function. */
    async call(path, init, timeoutMs) {
      const refreshable = typeof this.config.customerToken === 'function';
      let answer = await this.fetchOnce(path, init, timeoutMs, false);
      if (answer.res.status === 401 && refreshable) answer = await this.fetchOnce(path, init, timeoutMs, true);
      const { res, data, parsed } = answer;
      if (res.status === 401) {
        window.dispatchEvent(new CustomEvent('shopbot:signinrequired'));
        throw userError(MSG_SIGN_IN, refreshable, 401);
      }
      if (!res.ok) {
        const said = parsed && data && typeof data.error === 'string' ? data.error.trim() : '';
        throw userError(said || 'Sorry, the assistant ran into a problem (error ' + res.status + '). Please try again.',
          res.status >= 500 || res.status === 429, res.status);
      }
      if (!parsed) throw userError(MSG_BAD_REPLY, true);
      return data;
    }

    /** call(), once the session check on load is done. */
    async request(path, init, timeoutMs) {
      await this.ready;
      return this.call(path, init, timeoutMs);
    }

    async postChat(body) {
      const data = await this.request('/api/chat', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      }, CHAT_TIMEOUT_MS);
      return data && !Array.isArray(data) && Array.isArray(data.messages) ? data.messages : data;
    }

    /** Run one exchange: `task` resolves to the bot's messages; errors become a bubble. */
    async deliver(task) {
      const generation = this.generation;
      this.setBusy(true);
      let messages;
      try {
        messages = await task();
        if (!Array.isArray(messages)) throw userError(MSG_BAD_REPLY, true);
      } catch (err) {
        if (generation !== this.generation) return;
        this.setBusy(false);
        this.showError((err && err.userMessage) || MSG_NETWORK,
          err && err.retryable ? () => this.deliver(task) : null);
        return;
      }
      if (generation !== this.generation) return;
      this.setBusy(false);
      for (const m of messages) this.handleBotMessage(m);
      this.scrollToBottom();
      this.pollUpdates();  // this turn may have asked for a person
    }

    handleBotMessage(m) {
      if (!m || typeof m !== 'object') return;
      let custom = m.custom;
      if (typeof custom === 'string') {
        try { custom = JSON.parse(custom); } catch (e) { custom = null; }
      }
      const cards = custom && typeof custom === 'object' && custom.type === 'product_cards' &&
        Array.isArray(custom.products) && custom.products.length ? custom : null;
      // With cards the intro sentence is enough: the text's numbered list (for text-only
      // channels) would repeat the cards below it.
      const text = cards && typeof cards.intro === 'string' ? cards.intro : str(m.text);
      const buttons = (Array.isArray(m.buttons) ? m.buttons : [])
        .filter((b) => b && typeof b === 'object' && (b.title || b.payload))
        .map((b) => ({ title: str(b.title || b.payload), payload: str(b.payload || b.title) }));
      if (text || buttons.length) this.addEntry({ t: 'bot', text, buttons });
      if (typeof m.image === 'string' && m.image) this.addEntry({ t: 'image', url: m.image });
      if (cards) {
        this.addEntry({ t: 'products', products: cards.products });
      } else if (custom && typeof custom === 'object' && custom.type === 'cart') {
        this.addEntry({ t: 'cart', cart: custom });
      }
    }

    disableQuickReplies() {
      for (const b of this.log.querySelectorAll('.sbw-quick-reply')) b.disabled = true;
    }

    /** Send `payload` (text or a Rasa intent like /add_to_cart{...}), showing `shown`. */
    sendText(payload, shown) {
      const message = str(payload).trim();
      if (!message || this.busy) return false;
      this.disableQuickReplies();
      this.addEntry({ t: 'user', text: str(shown).trim() || message });
      this.deliver(() => this.postChat({ message }));
      return true;
    }

    sendPhoto(file, thumb, text) {
      if (this.busy) return false;
      this.disableQuickReplies();
      this.addEntry({ t: 'user', text, thumb });
      this.deliver(async () => {
        const body = new FormData();
        body.append('file', file, file.name || 'photo');
        const stored = await this.request('/api/upload', { method: 'POST', body }, UPLOAD_TIMEOUT_MS);
        if (!stored || typeof stored.ref !== 'string') throw userError(MSG_BAD_REPLY, true);
        return this.postChat({ message: text, upload: stored.ref });
      });
      return true;
    }

    submit() {
      if (this.busy) return;
      const text = this.input.value.trim();
      if (this.attachment) {
        const { file, thumb } = this.attachment;
        this.clearAttachment();
        this.input.value = '';
        this.sendPhoto(file, thumb, text);
      } else if (text) {
        this.input.value = '';
        this.sendText(text);
      }
      this.input.focus();
    }

    // ---- photos: picker, drag and drop, paste

    /** Why a file can't be sent, in words for the shopper; '' when it can. */
    checkFile(file) {
      const types = this.limits.accepted_types;
      if (!file) return MSG_NOT_PICTURE;
      if (!types.includes(str(file.type).toLowerCase())) {
        return (file.name ? '"' + file.name + '" isn\'t' : "That file isn't") +
          ' a photo I can use. Please choose a JPEG, PNG, WebP or GIF picture.';
      }
      if (file.size === 0) return 'That file is empty. Please choose another photo.';
      if (file.size > this.limits.max_upload_bytes) {
        return 'That photo is too large (' + formatBytes(file.size) + '; the limit is ' +
          formatBytes(this.limits.max_upload_bytes) + '). Please choose a smaller one.';
      }
      return '';
    }

    async attach(file) {
      const problem = this.checkFile(file);
      if (problem) {
        this.showError(problem, null);
        return;
      }
      let thumb;
      try {
        thumb = await makeThumbnail(file);
      } catch (e) {
        this.showError(MSG_NOT_PICTURE, null);
        return;
      }
      this.removeErrors();
      this.attachment = { file, thumb };
      this.chipImg.src = thumb;
      this.chipText.textContent = 'Photo ready to send (' + formatBytes(file.size) + '). Add a note or press Send.';
      this.chip.hidden = false;
      if (!this.isOpen()) this.open({ focus: false });
      this.input.placeholder = 'Add a note, e.g. "like this but in black"';
      this.input.focus();
    }

    clearAttachment() {
      this.attachment = null;
      if (!this.chip) return;
      this.chip.hidden = true;
      this.chipImg.removeAttribute('src');
      this.input.placeholder = 'Type a message…';
    }

    onPaste(event) {
      const items = event.clipboardData ? Array.from(event.clipboardData.items || []) : [];
      const item = items.find((i) => i.kind === 'file');
      if (!item) return;  // ordinary text paste
      event.preventDefault();
      this.attach(item.getAsFile());
    }

    onDrag(event, delta) {
      const types = event.dataTransfer ? Array.from(event.dataTransfer.types || []) : [];
      if (!types.includes('Files')) return;
      event.preventDefault();
      if (event.dataTransfer) event.dataTransfer.dropEffect = 'copy';
      this.dragDepth = Math.max(0, this.dragDepth + delta);
      this.dropZone.hidden = this.dragDepth === 0;
    }

    onDrop(event) {
      const files = event.dataTransfer ? Array.from(event.dataTransfer.files || []) : [];
      this.dragDepth = 0;
      this.dropZone.hidden = true;
      if (!files.length) return;
      event.preventDefault();
      this.attach(files[0]);
    }

    destroy() {
      this.generation += 1;
      this.host.remove();
    }
  }

  // ---------------------------------------------------------------- public API

  let widget = null;
  let initialised = false;
  let mounted = null;         // a Promise of the widget once init() was called
  let resolveMounted = null;

  function whenMounted() {
    return mounted || Promise.reject(new Error('ShopbotWidget.init() has not been called'));
  }

  function configFromScript(script) {
    const data = (script && script.dataset) || {};
    const config = {};
    for (const key of ['endpoint', 'title', 'subtitle', 'welcome', 'customerToken', 'storageKey', 'stylesheet']) {
      if (data[key]) config[key] = data[key];
    }
    if (data.open) config.open = data.open !== 'false';
    return config;
  }

  function mount(config) {
    widget = new Widget(config);
    resolveMounted(widget);
    return widget;
  }

  const ShopbotWidget = {
    /** Embed the widget once per page; later calls return the same widget's API. */
    init(options) {
      if (initialised) return ShopbotWidget;
      initialised = true;
      mounted = new Promise((resolve) => { resolveMounted = resolve; });
      if (options && options.senderId) {
        console.warn('ShopbotWidget: senderId is ignored; the server decides who the shopper is (see customerToken)');
      }
      const config = Object.assign({}, DEFAULTS, options || {});
      for (const key of ['title', 'subtitle', 'welcome']) config[key] = str(config[key]);
      if (!config.title.trim()) config.title = DEFAULTS.title;
      if (document.body) mount(config);
      else document.addEventListener('DOMContentLoaded', () => mount(config), { once: true });
      return ShopbotWidget;
    },
    open() { if (widget) widget.open(); },
    close() { if (widget) widget.close(); },
    /** Send a message as if the shopper typed it. */
    send(text) { return widget ? widget.sendText(text) : false; },
    /** Start a new conversation (a new anonymous session): a Promise of session(). */
    reset() { return whenMounted().then((w) => w.reset()); },
    /** Demo mode only: chat as the demo shopper; rejects with err.status 404 elsewhere. */
    demo() { return whenMounted().then((w) => w.switchSession('/api/session/demo')); },
    /** Who the server thinks the shopper is: a Promise of {kind, customer}. */
    session() { return whenMounted().then((w) => w.fetchSession()); },
    destroy() {
      if (widget) widget.destroy();
      widget = null;
      initialised = false;
      mounted = null;
    },
  };
  window.ShopbotWidget = ShopbotWidget;

  if (SCRIPT && SCRIPT.hasAttribute('data-init')) ShopbotWidget.init(configFromScript(SCRIPT));
}());
