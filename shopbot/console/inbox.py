"""One handoff ticket in the console: the conversation turn by turn (live), the shopper's
cart and orders, and the buttons to take the conversation, reply and hand it back.

The conversation is read from Rasa's tracker store (:func:`shopcore.conversations.read_turns`),
so what the shopper writes while a person holds it shows up here (``console.js`` polls
``/console/api/tickets/<id>``). Changes are plain forms (CSRF-checked by the guard) that
redirect back to the ticket; a refused or failed one re-renders it with the reason.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from shop.tickets import Ticket, TicketStatus
from shopbot.console import handoff
from shopbot.console.pages import shopper_label, ticket_view
from shopbot.console.render import h, page
from shopbot.console.state import CONSOLE, SESSION, STAFF, Console
from shopbot.identity import csrf_token
from shopcore.conversations import read_turns
from shopcore.ids import valid_id
from shopcore.text import BadInput

MAX_ORDERS = 10
ROLE_LABELS = {"user": "Shopper", "bot": "Bot"}


async def _ticket(request: web.Request) -> Ticket:
    ticket_id = request.match_info["ticket_id"]
    tickets = await request.app[CONSOLE].tickets()
    ticket = await asyncio.to_thread(tickets.get, ticket_id) if valid_id(ticket_id) else None
    if ticket is None:
        raise web.HTTPNotFound(text="No such ticket.")
    return ticket


def _turns(console: Console, ticket: Ticket, after: int) -> list[dict[str, Any]]:
    """The conversation from Rasa's store; the ticket's copy if the store has none of it."""
    turns = read_turns(console.settings.tracker_store_url, ticket.sender_id, after)
    if turns or after:
        return turns
    return [{"id": 0, "role": t.role, "text": t.text, "ts": t.ts} for t in ticket.transcript]


def shopper_things(console: Console, sender_id: str) -> dict[str, Any]:
    """The shopper's cart (with product names) and latest orders."""
    stores = console.open_stores()
    lines = stores.carts.lines(sender_id)
    names = {}
    if console.products is not None and lines:
        names = {p.id: p.name for p in console.products.get([ln.product_id for ln in lines])}
    return {
        "cart": [{"product_id": ln.product_id, "name": names.get(ln.product_id, ""),
                  "size": ln.size, "qty": ln.qty} for ln in lines],
        "orders": [{"order_id": o.order_id, "headline": o.headline(), "status": o.status.value}
                   for o in stores.orders.orders_of(sender_id, MAX_ORDERS)],
    }


async def ticket_data(request: web.Request, ticket: Ticket, after: int = 0) -> dict[str, Any]:
    console = request.app[CONSOLE]
    turns = await asyncio.to_thread(_turns, console, ticket, after)
    things = await asyncio.to_thread(shopper_things, console, ticket.sender_id)
    return {**ticket_view(ticket), "status": ticket.status.value,
            "held_by": ticket.held_by, "mine": ticket.held_by == request[STAFF].email,
            "turns": turns, **things}


async def ticket_api(request: web.Request) -> web.Response:
    """GET /console/api/tickets/<id>?after=<event id>: the ticket and the newer turns."""
    try:
        after = max(0, int(request.query.get("after", "0")))
    except ValueError:
        return web.json_response({"error": "after must be a number"}, status=400)
    ticket = await _ticket(request)
    return web.json_response(await ticket_data(request, ticket, after))


def turn_html(turn: dict[str, Any]) -> str:
    role = turn["role"]
    if role in ("paused", "resumed"):
        what = "A person took over" if role == "paused" else "Handed back to the bot"
        return f'<li class="event" data-id="{h(turn["id"])}">{what}</li>'
    who = f'{turn.get("staff") or "Staff"} (staff)' if role == "staff" else ROLE_LABELS[role]
    detail = ""
    if role == "user" and turn.get("intent"):
        confidence = turn.get("confidence")
        shown = f" {confidence:.2f}" if isinstance(confidence, int | float) else ""
        detail = f' <span class="intent">{h(turn["intent"])}{h(shown)}</span>'
    products = "".join(f"<li>{h(p)}</li>" for p in turn.get("products") or [])
    shown_products = f'<ul class="products">{products}</ul>' if products else ""
    return (f'<li class="{h(role)}" data-id="{h(turn["id"])}"><b>{h(who)}:</b> '
            f'{h(turn["text"])}{detail}{shown_products}</li>')


def _form(action: str, label: str, csrf: str, extra: str = "", cls: str = "") -> str:
    return (f'<form method="post" action="{h(action)}" class="{h(cls)}">'
            f'<input type="hidden" name="csrf" value="{h(csrf)}">{extra}'
            f'<button type="submit">{h(label)}</button></form>')


def _controls(data: dict[str, Any], base: str, csrf: str) -> str:
    if data["status"] != TicketStatus.OPEN.value:
        return '<p class="state">Closed: the bot has the conversation.</p>'
    if data["held_by"] is None:
        return ('<p class="state">Waiting for a person; the bot still answers.</p>'
                + _form(f"{base}/take", "Take this conversation", csrf, cls="take"))
    if not data["mine"]:
        return f'<p class="state">{h(data["held_by"])} is talking with this shopper.</p>'
    box = ('<label for="reply">Reply to the shopper</label>'
           '<textarea id="reply" name="text" rows="3" maxlength="2000" required></textarea>')
    return ('<p class="state">You are talking with this shopper; the bot is quiet.</p>'
            + _form(f"{base}/reply", "Send", csrf, box, cls="reply")
            + _form(f"{base}/hand-back", "Hand back to the bot", csrf, cls="hand-back"))


def _things_html(data: dict[str, Any]) -> str:
    cart = "".join(f'<li>{h(c["name"] or c["product_id"])}'
                   f'{h(", size " + c["size"]) if c["size"] else ""} × {h(c["qty"])}</li>'
                   for c in data["cart"]) or "<li>Empty</li>"
    orders = "".join(f'<li>{h(o["headline"])}: {h(o["status"])}</li>'
                     for o in data["orders"]) or "<li>None</li>"
    return (f'<section class="shopper"><h2>Cart</h2><ul class="cart">{cart}</ul>'
            f'<h2>Orders</h2><ul class="orders">{orders}</ul></section>')


async def ticket_page(request: web.Request, error: str = "", status: int = 200
                      ) -> web.Response:
    """GET /console/tickets/<id>."""
    ticket = await _ticket(request)
    data = await ticket_data(request, ticket)
    csrf = csrf_token(request.app[CONSOLE].key, request[SESSION].session)
    base = f"/console/tickets/{ticket.ticket_id}"
    turns = "".join(turn_html(t) for t in data["turns"])
    last = max((t["id"] for t in data["turns"]), default=0)
    problem = f'<p class="error" role="alert">{h(error)}</p>' if error else ""
    body = f"""<p><a href="/console">← Open tickets</a></p>
<h1>Ticket <code>{h(ticket.ticket_id)}</code></h1>
<p class="meta">Shopper <code>{h(shopper_label(ticket.sender_id))}</code> ·
Reason: {h(ticket.reason)}</p>
{problem}
<div class="ticket">
<section class="conversation"><h2>Conversation</h2>
<ol id="turns" class="turns" data-ticket="{h(ticket.ticket_id)}" data-after="{last}">{turns}</ol>
</section>
{_things_html(data)}
</div>
<div class="controls">{_controls(data, base, csrf)}</div>
<script src="/console/static/console.js"></script>"""
    return page(f"Ticket {ticket.ticket_id}", body, status=status,
                staff_email=request[STAFF].email, csrf=csrf)


def _back(ticket: Ticket) -> web.Response:
    return web.Response(status=303, headers={"Location": f"/console/tickets/{ticket.ticket_id}"})


async def take(request: web.Request) -> web.Response:
    """POST /console/tickets/<id>/take: this member takes the conversation over."""
    console, email = request.app[CONSOLE], request[STAFF].email
    ticket = await _ticket(request)
    tickets = await console.tickets()
    taken = await asyncio.to_thread(tickets.take, ticket.ticket_id, email)
    if taken is None:
        return await ticket_page(request, "Somebody else has taken this conversation, or it "
                                 "is closed.", status=409)
    try:
        await handoff.take(console, taken, email)
    except handoff.HandoffFailed as failed:
        await asyncio.to_thread(tickets.untake, ticket.ticket_id, email)
        return await ticket_page(request, f"Could not pause the bot ({failed}); the "
                                 "conversation stays with the bot. Try again.", status=502)
    return _back(ticket)


async def _held(request: web.Request) -> Ticket | web.Response:
    ticket = await _ticket(request)
    if ticket.status != TicketStatus.OPEN or ticket.held_by != request[STAFF].email:
        return await ticket_page(request, "Take the conversation before replying: it is not "
                                 "yours right now.", status=409)
    return ticket


async def send_reply(request: web.Request) -> web.Response:
    """POST /console/tickets/<id>/reply (form: text): a message to the shopper."""
    ticket = await _held(request)
    if isinstance(ticket, web.Response):
        return ticket
    form = await request.post()
    try:
        text = handoff.reply_text(form.get("text"))
    except BadInput as bad:
        return await ticket_page(request, str(bad), status=400)
    try:
        await handoff.reply(request.app[CONSOLE], ticket, request[STAFF].email, text)
    except handoff.HandoffFailed as failed:
        return await ticket_page(request, f"Not sent ({failed}). Try again.", status=502)
    return _back(ticket)


async def hand_back(request: web.Request) -> web.Response:
    """POST /console/tickets/<id>/hand-back: the bot answers again; the ticket closes."""
    ticket = await _held(request)
    if isinstance(ticket, web.Response):
        return ticket
    console, email = request.app[CONSOLE], request[STAFF].email
    try:
        await handoff.hand_back(console, ticket, email)
    except handoff.HandoffFailed as failed:
        return await ticket_page(request, f"Could not hand back ({failed}); you still have "
                                 "the conversation. Try again.", status=502)
    tickets = await console.tickets()
    await asyncio.to_thread(tickets.hand_back, ticket.ticket_id, email)
    return _back(ticket)
