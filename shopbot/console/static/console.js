// The staff console's only script (the CSP allows no inline code): keeps the open-tickets
// list and a ticket's conversation up to date by polling the console API. Shopper text is
// only ever set as textContent, never parsed as HTML.
(function () {
  'use strict';
  const POLL_MS = 2000;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function getJSON(url) {
    const res = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (res.status === 401) { window.location.assign('/console/login'); return null; }
    return res.ok ? res.json() : null;
  }

  function every(ms, task) {
    let running = false;
    setInterval(async () => {
      if (running || document.hidden) return;
      running = true;
      try { await task(); } catch (e) { /* the next poll tries again */ } finally { running = false; }
    }, ms);
  }

  // ---- the open tickets (/console)
  function ticketRow(t) {
    const row = el('tr', { 'data-ticket': t.ticket_id });
    const link = el('a', { href: '/console/tickets/' + encodeURIComponent(t.ticket_id) });
    link.appendChild(el('code', {}, t.ticket_id));
    const first = el('td'); first.appendChild(link); row.appendChild(first);
    const shopper = el('td'); shopper.appendChild(el('code', {}, t.shopper)); row.appendChild(shopper);
    row.appendChild(el('td', {}, t.reason));
    const opened = el('td'); opened.appendChild(el('time', { datetime: t.created_at },
      t.created_at.replace('T', ' ').replace(/\.\d+/, '').replace('+00:00', '') + ' UTC'));
    row.appendChild(opened);
    const list = el('ol', { class: 'turns' });
    for (const turn of t.last_turns) {
      const item = el('li', { class: turn.role });
      item.appendChild(el('b', {}, (turn.role === 'user' ? 'Shopper' : 'Bot') + ':'));
      item.appendChild(document.createTextNode(' ' + turn.text));
      list.appendChild(item);
    }
    const turns = el('td'); turns.appendChild(list); row.appendChild(turns);
    row.appendChild(el('td', { class: 'holder' }, t.held_by || 'waiting'));
    return row;
  }

  function watchTickets(table) {
    const body = table.tBodies[0];
    let known = new Set(Array.from(body.rows, (r) => r.dataset.ticket));
    every(POLL_MS, async () => {
      const data = await getJSON('/console/api/tickets');
      if (!data) return;
      const rows = data.tickets.map((t) => {
        const row = ticketRow(t);
        if (!known.has(t.ticket_id)) row.classList.add('new');
        return row;
      });
      body.replaceChildren(...rows);
      known = new Set(data.tickets.map((t) => t.ticket_id));
      table.hidden = rows.length === 0;
      document.getElementById('no-tickets').hidden = rows.length !== 0;
      document.getElementById('ticket-count').textContent = '(' + rows.length + ')';
      if (rows.length) document.title = '(' + rows.length + ') Tickets - shopbot console';
    });
  }

  // ---- one ticket's conversation (/console/tickets/<id>)
  function turnItem(t) {
    if (t.role === 'paused' || t.role === 'resumed') {
      return el('li', { class: 'event', 'data-id': String(t.id) },
        t.role === 'paused' ? 'A person took over' : 'Handed back to the bot');
    }
    const who = t.role === 'staff' ? (t.staff || 'Staff') + ' (staff)' : t.role === 'user' ? 'Shopper' : 'Bot';
    const item = el('li', { class: t.role, 'data-id': String(t.id) });
    item.appendChild(el('b', {}, who + ':'));
    item.appendChild(document.createTextNode(' ' + t.text));
    if (t.role === 'user' && t.intent) {
      const confidence = typeof t.confidence === 'number' ? ' ' + t.confidence.toFixed(2) : '';
      item.appendChild(document.createTextNode(' '));
      item.appendChild(el('span', { class: 'intent' }, t.intent + confidence));
    }
    if (t.products && t.products.length) {
      const list = el('ul', { class: 'products' });
      for (const name of t.products) list.appendChild(el('li', {}, name));
      item.appendChild(list);
    }
    return item;
  }

  function watchConversation(list) {
    const ticket = list.dataset.ticket;
    const state = { after: Number(list.dataset.after) || 0, holder: undefined };
    every(POLL_MS, async () => {
      const data = await getJSON('/console/api/tickets/' + encodeURIComponent(ticket) + '?after=' + state.after);
      if (!data) return;
      for (const t of data.turns) {
        if (t.id <= state.after) continue;
        list.appendChild(turnItem(t));
        state.after = t.id;
      }
      if (data.turns.length) list.scrollTop = list.scrollHeight;
      const holder = data.status === 'open' ? data.held_by : 'closed';
      if (state.holder !== undefined && holder !== state.holder) window.location.reload();
      state.holder = holder;
    });
    list.scrollTop = list.scrollHeight;
  }

  const table = document.getElementById('tickets');
  if (table) watchTickets(table);
  const turns = document.getElementById('turns');
  if (turns) watchConversation(turns);
})();
