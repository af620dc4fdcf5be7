"""The console's first page: the open handoff tickets, as HTML and as JSON (which
``console.js`` polls, so new tickets appear without reloading).

Shoppers are shown by a shortened sender id: enough to tell them apart, while the rest of a
web shopper's session id (half of what their cookie proves) stays out of staff screens.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from shop.tickets import Ticket
from shopbot.console.render import h, page
from shopbot.console.state import CONSOLE, SESSION, STAFF
from shopbot.identity import csrf_token
from shopcore.text import clip

LAST_TURNS = 3  # transcript lines shown per ticket
TURN_CHARS = 300
SHOWN_ID_CHARS = 6
MAX_TICKETS = 200


def shopper_label(sender_id: str) -> str:
    """``web:Zx81Qa…`` for ``web:Zx81Qa<18 more>``: the channel and the id's first chars."""
    channel, colon, rest = sender_id.partition(":")
    if not colon:
        channel, rest = "", sender_id
    shown = rest if len(rest) <= SHOWN_ID_CHARS + 2 else rest[:SHOWN_ID_CHARS] + "…"
    return f"{channel}{colon}{shown}"


def ticket_view(ticket: Ticket) -> dict[str, Any]:
    """What the console shows of a ticket (the API's JSON, the page's rows)."""
    return {
        "ticket_id": ticket.ticket_id,
        "shopper": shopper_label(ticket.sender_id),
        "reason": ticket.reason,
        "intent": ticket.intent,
        "created_at": ticket.created_at.isoformat(),
        "updated_at": ticket.updated_at.isoformat(),
        "last_turns": [{"role": t.role, "text": clip(t.text, TURN_CHARS)}
                       for t in ticket.transcript[-LAST_TURNS:]],
        "turns": len(ticket.transcript) + ticket.turns_dropped,
        "held_by": ticket.held_by,
    }


async def _open_tickets(request: web.Request) -> list[dict[str, Any]]:
    tickets = await request.app[CONSOLE].tickets()
    found = await asyncio.to_thread(tickets.open_tickets, MAX_TICKETS)
    return [ticket_view(t) for t in found]


async def tickets_api(request: web.Request) -> web.Response:
    """GET /console/api/tickets: the open tickets, newest first."""
    return web.json_response({"tickets": await _open_tickets(request)})


def _ticket_html(view: dict[str, Any]) -> str:
    turns = "".join(f'<li class="{h(t["role"])}"><b>{"Shopper" if t["role"] == "user" else "Bot"}'
                    f':</b> {h(t["text"])}</li>' for t in view["last_turns"])
    created = view["created_at"].replace("T", " ").removesuffix("+00:00") + " UTC"
    holder = h(view["held_by"]) if view["held_by"] else "waiting"
    return f"""<tr data-ticket="{h(view["ticket_id"])}">
<td><a href="/console/tickets/{h(view["ticket_id"])}"><code>{h(view["ticket_id"])}</code></a></td>
<td><code>{h(view["shopper"])}</code></td>
<td>{h(view["reason"])}</td>
<td><time datetime="{h(view["created_at"])}">{h(created)}</time></td>
<td><ol class="turns">{turns}</ol></td>
<td class="holder">{holder}</td>
</tr>"""


async def index(request: web.Request) -> web.Response:
    """GET /console: the open handoff tickets."""
    views = await _open_tickets(request)
    rows = "\n".join(_ticket_html(v) for v in views)
    body = f"""<h1>Open handoff tickets <small id="ticket-count">({len(views)})</small></h1>
<p class="empty" id="no-tickets"{" hidden" if views else ""}>No open tickets: nobody is
waiting for a person.</p>
<table class="tickets" id="tickets"{"" if views else " hidden"}>
<thead><tr><th>Ticket</th><th>Shopper</th><th>Reason</th><th>Opened</th>
<th>Last messages</th><th>With</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
<script src="/console/static/console.js"></script>"""
    session = request[SESSION]
    return page("Tickets", body, staff_email=request[STAFF].email, section="Inbox",
                csrf=csrf_token(request.app[CONSOLE].key, session.session))


async def home(request: web.Request) -> web.Response:
    """GET /console/: the console's one address is /console."""
    return web.Response(status=302, headers={"Location": "/console"})
