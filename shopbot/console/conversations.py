"""Conversations in the console: list and search every conversation (by shopper, channel,
date, intent, words and outcome), open one turn by turn, download the list as CSV.

Conversations come from Rasa's tracker store (:func:`shopcore.conversations.list_conversations`);
outcomes join what the shop database knows: searches that showed products or none (the
search log), orders placed. A conversation is linked by one of its event ids, never by the
sender id (for a web shopper, half of what their cookie proves).
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from shopbot.console.inbox import shopper_things, turn_html
from shopbot.console.pages import shopper_label
from shopbot.console.render import h, page
from shopbot.console.state import CONSOLE, SESSION, STAFF, Console
from shopbot.identity import csrf_token
from shopcore.conversations import list_conversations, read_turns, sender_of

DEFAULT_DAYS = 30
MAX_LISTED = 200
SCANNED = 2000  # conversations read before filtering by outcome
OUTCOMES = {
    "found": "found products",
    "nothing": "nothing found",
    "fallback": "fell back",
    "handoff": "handed off",
    "bought": "bought",
}
CHANNELS = ("widget", "telegram", "messenger", "slack", "twilio", "signed", "other")
FIELDS = ("shopper", "channel", "intent", "text", "outcome")


class BadFilter(ValueError):
    """A filter the console cannot use (a malformed date): the page says which."""


def period(query: Any, today: date | None = None) -> tuple[date, date]:
    """The ``from``/``to`` days asked for (YYYY-MM-DD, both included); the last 30 days by
    default. Raises BadFilter for dates that are not dates or run backwards."""
    today = today or datetime.now(UTC).date()
    try:
        end = date.fromisoformat(query.get("to") or today.isoformat())
        start = date.fromisoformat(query.get("from") or
                                   (end - timedelta(days=DEFAULT_DAYS - 1)).isoformat())
    except ValueError as exc:
        raise BadFilter("Dates must look like 2026-12-06.") from exc
    if start > end:
        raise BadFilter("The start date is after the end date.")
    return start, end


def epoch_range(start: date, end: date) -> tuple[float, float]:
    """Seconds since the epoch from the start of ``start`` to the end of ``end`` (UTC)."""
    first = datetime(start.year, start.month, start.day, tzinfo=UTC)
    return first.timestamp(), (datetime(end.year, end.month, end.day, tzinfo=UTC)
                               + timedelta(days=1)).timestamp()


def outcomes_of(row: dict[str, Any], searched: tuple[int, int] | None, orders: int) -> list[str]:
    found, empty = searched or (0, 0)
    named = []
    if found:
        named.append("found")
    if empty:
        named.append("nothing")
    if row["fell_back"]:
        named.append("fallback")
    if row["handed_off"]:
        named.append("handoff")
    if orders:
        named.append("bought")
    return named


def _listed(console: Console, filters: dict[str, str], start: date, end: date
            ) -> list[dict[str, Any]]:
    since, until = epoch_range(start, end)
    rows = list_conversations(
        console.settings.tracker_store_url, since=since, until=until,
        shopper=filters["shopper"], channel=filters["channel"], intent=filters["intent"],
        text=filters["text"], limit=SCANNED)
    stores = console.open_stores()
    senders = [r["sender_id"] for r in rows]
    searched = stores.searches.outcomes(senders)
    bought = stores.orders.placed_by(senders, datetime.fromtimestamp(since, UTC))
    listed = []
    for row in rows:
        row["outcomes"] = outcomes_of(row, searched.get(row["sender_id"]),
                                      bought.get(row["sender_id"], 0))
        if filters["outcome"] and filters["outcome"] not in row["outcomes"]:
            continue
        row["shopper"] = shopper_label(row["sender_id"])
        listed.append(row)
        if len(listed) == MAX_LISTED:
            break
    return listed


def _filters(request: web.Request) -> dict[str, str]:
    query = request.query
    found = {name: (query.get(name) or "").strip()[:100] for name in FIELDS}
    if found["channel"] not in CHANNELS:
        found["channel"] = ""
    if found["outcome"] not in OUTCOMES:
        found["outcome"] = ""
    return found


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _top_intents(intents: dict[str, int], n: int = 3) -> str:
    return ", ".join(f"{name} ({count})" for name, count in
                     sorted(intents.items(), key=lambda kv: (-kv[1], kv[0]))[:n])


def _select(name: str, options: dict[str, str], chosen: str, label: str) -> str:
    shown = "".join(f'<option value="{h(v)}"{" selected" if v == chosen else ""}>{h(t)}</option>'
                    for v, t in {"": "any", **options}.items())
    return f'<label>{h(label)} <select name="{h(name)}">{shown}</select></label>'


def _form(filters: dict[str, str], start: date, end: date) -> str:
    return f"""<form class="filters" method="get" action="/console/conversations">
<label>From <input type="date" name="from" value="{start.isoformat()}"></label>
<label>To <input type="date" name="to" value="{end.isoformat()}"></label>
<label>Shopper <input name="shopper" value="{h(filters["shopper"])}"
 placeholder="web:i93ef"></label>
{_select("channel", {c: c for c in CHANNELS}, filters["channel"], "Channel")}
<label>Intent <input name="intent" value="{h(filters["intent"])}"
 placeholder="search_product"></label>
<label>Words <input name="text" value="{h(filters["text"])}" placeholder="red dress"></label>
{_select("outcome", OUTCOMES, filters["outcome"], "Outcome")}
<button type="submit">Search</button>
</form>"""


async def conversations_page(request: web.Request) -> web.Response:
    """GET /console/conversations: the list with its filters."""
    filters = _filters(request)
    try:
        start, end = period(request.query)
    except BadFilter as bad:
        start, end = period({})
        rows: list[dict[str, Any]] = []
        problem = f'<p class="error" role="alert">{h(bad)}</p>'
    else:
        rows = await asyncio.to_thread(_listed, request.app[CONSOLE], filters, start, end)
        problem = ""
    body_rows = "".join(f"""<tr>
<td><a href="/console/conversations/{r["key"]}"><code>{h(r["shopper"])}</code></a></td>
<td>{h(r["channel"])}</td><td>{h(_when(r["started"]))}</td><td>{h(_when(r["last"]))}</td>
<td>{r["turns"]}</td><td>{h(_top_intents(r["intents"]))}</td>
<td>{"".join(f'<span class="badge {h(o)}">{h(OUTCOMES[o])}</span>' for o in r["outcomes"])}</td>
</tr>""" for r in rows)
    csv_link = "/console/conversations.csv?" + request.query_string if request.query_string \
        else "/console/conversations.csv"
    listing = (f"""<table class="conversations" id="conversations">
<thead><tr><th>Shopper</th><th>Channel</th><th>Started</th><th>Last message</th><th>Messages</th>
<th>Top intents</th><th>Outcome</th></tr></thead>
<tbody>{body_rows}</tbody></table>""" if rows else
               '<p class="empty">No conversation matches.</p>')
    more = "+" if len(rows) == MAX_LISTED else ""
    body = f"""<h1>Conversations <small>({len(rows)}{more})</small></h1>
{_form(filters, start, end)}
{problem}
<p><a href="{h(csv_link)}">Download as CSV</a></p>
{listing}"""
    return page("Conversations", body, staff_email=request[STAFF].email, section="Conversations",
                csrf=csrf_token(request.app[CONSOLE].key, request[SESSION].session),
                status=400 if problem else 200)


async def conversations_csv(request: web.Request) -> web.Response:
    """GET /console/conversations.csv: the same list, as a spreadsheet."""
    try:
        start, end = period(request.query)
    except BadFilter as bad:
        return web.Response(status=400, text=str(bad))
    rows = await asyncio.to_thread(_listed, request.app[CONSOLE], _filters(request), start, end)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["shopper", "channel", "started_utc", "last_utc", "messages", "intents",
                     "outcomes"])
    for r in rows:
        writer.writerow([csv_cell(r["shopper"]), r["channel"], _when(r["started"]),
                         _when(r["last"]), r["turns"], csv_cell(_top_intents(r["intents"], 10)),
                         " ".join(r["outcomes"])])
    return csv_response(out.getvalue(), f"conversations-{start}-{end}.csv")


def csv_cell(value: str) -> str:
    """A cell a spreadsheet will not run as a formula (shoppers' words reach these files)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_response(text: str, filename: str) -> web.Response:
    return web.Response(text=text, content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


async def conversation_page(request: web.Request) -> web.Response:
    """GET /console/conversations/<key>: one conversation, turn by turn."""
    console = request.app[CONSOLE]
    key = request.match_info["key"]
    if not (key.isascii() and key.isdigit() and len(key) < 19):
        raise web.HTTPNotFound(text="No such conversation.")
    sender = await asyncio.to_thread(sender_of, console.settings.tracker_store_url, int(key))
    if sender is None:
        raise web.HTTPNotFound(text="No such conversation.")
    turns = await asyncio.to_thread(read_turns, console.settings.tracker_store_url, sender)
    things = await asyncio.to_thread(shopper_things, console, sender)
    cart = "".join(f'<li>{h(c["name"] or c["product_id"])} × {h(c["qty"])}</li>'
                   for c in things["cart"]) or "<li>Empty</li>"
    orders = "".join(f'<li>{h(o["headline"])}: {h(o["status"])}</li>'
                     for o in things["orders"]) or "<li>None</li>"
    body = f"""<p><a href="/console/conversations">← Conversations</a></p>
<h1>Conversation with <code>{h(shopper_label(sender))}</code></h1>
<div class="ticket">
<section class="conversation"><h2>Messages ({sum(t["role"] == "user" for t in turns)} from the
shopper)</h2><ol class="turns">{"".join(turn_html(t) for t in turns)}</ol></section>
<section class="shopper"><h2>Cart</h2><ul class="cart">{cart}</ul>
<h2>Orders</h2><ul class="orders">{orders}</ul></section>
</div>"""
    return page("Conversation", body, staff_email=request[STAFF].email, section="Conversations",
                csrf=csrf_token(console.key, request[SESSION].session))
