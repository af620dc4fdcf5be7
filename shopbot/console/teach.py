"""Teach the bot: the messages NLU fell back on or was unsure of, grouped by meaning; staff
pick the right intent (or out of scope) for a group and save. ``shopbot nlu export`` then
writes every label as training data (see :mod:`shop.teaching`); nothing trains by itself.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import date
from typing import Any

import yaml
from aiohttp import web

from shop.teaching import OUT_OF_SCOPE, group_by_meaning
from shopbot.console.conversations import BadFilter, epoch_range, period
from shopbot.console.render import h, page
from shopbot.console.state import CONSOLE, SESSION, STAFF, Console
from shopbot.identity import csrf_token
from shopcore.conversations import text_key, uncertain_messages
from shopcore.settings import PROJECT_ROOT
from shopcore.text import BadInput

LOW_CONFIDENCE = 0.6
MAX_GROUPS = 40
MAX_MESSAGES = 400
NOT_OFFERED = {"nlu_fallback"}


@functools.cache
def domain_intents() -> tuple[str, ...]:
    """The bot's intents, from domain.yml (what a message may be labelled with)."""
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8")) or {}
    names = [i if isinstance(i, str) else next(iter(i)) for i in domain.get("intents") or []]
    return tuple(sorted(n for n in names if n not in NOT_OFFERED))


def _encode(texts: list[str]) -> Any:
    from retrieval.embeddings import encode  # MiniLM: loaded on the first visit only

    return encode(texts)


def groups(console: Console, start: date, end: date) -> list[list[dict[str, Any]]]:
    """The unreviewed uncertain messages of the period, grouped by meaning."""
    since, until = epoch_range(start, end)
    found = uncertain_messages(console.settings.tracker_store_url, since, until,
                               LOW_CONFIDENCE)
    reviewed = console.open_stores().reviews.reviewed_keys()
    fresh = [m for m in found if text_key(m["text"]) not in reviewed][:MAX_MESSAGES]
    grouped = group_by_meaning([m["text"] for m in fresh], _encode)
    ordered = sorted(([fresh[i] for i in group] for group in grouped),
                     key=lambda g: -sum(m["count"] for m in g))
    return ordered[:MAX_GROUPS]


def _times(count: int) -> str:
    return f" ×{count}" if count > 1 else ""


def _group_html(index: int, group: list[dict[str, Any]], intents: tuple[str, ...],
                csrf: str, query: str) -> str:
    messages = "".join(
        f'<li><label><input type="checkbox" name="text" value="{h(m["text"])}" checked> '
        f'{h(m["text"])}</label> <span class="intent">{h(m["intent"] or "?")} '
        f'{m["confidence"]:.2f}</span>{_times(m["count"])}</li>' for m in group)
    options = "".join(f'<option value="{h(i)}">{h(i)}</option>' for i in intents
                      if i != OUT_OF_SCOPE)
    return f"""<form class="group" method="post" action="/console/teach?{h(query)}"
 id="group-{index}">
<input type="hidden" name="csrf" value="{h(csrf)}">
<ul class="messages">{messages}</ul>
<label>These mean <select name="intent">
<option value="" selected disabled>choose an intent</option>
<option value="{OUT_OF_SCOPE}">out of scope (not something the shop answers)</option>
{options}</select></label>
<button type="submit">Save</button>
</form>"""


async def teach_page(request: web.Request, notice: str = "", status: int = 200
                     ) -> web.Response:
    """GET /console/teach?from=&to=: the groups still to label."""
    console = request.app[CONSOLE]
    problem = ""
    try:
        start, end = period(request.query)
    except BadFilter as bad:
        start, end = period({})
        problem = str(bad)
        status = 400
    found = await asyncio.to_thread(groups, console, start, end)
    reviews = await asyncio.to_thread(lambda: console.open_stores().reviews.all())
    waiting = sum(r.exported_at is None for r in reviews)
    csrf = csrf_token(console.key, request[SESSION].session)
    query = f"from={start.isoformat()}&to={end.isoformat()}"
    listing = "".join(_group_html(i, g, domain_intents(), csrf, query)
                      for i, g in enumerate(found)) or \
        '<p class="empty">Nothing to review: every unsure message of this period is labelled.</p>'
    shown = f'<p class="notice" role="status">{h(notice)}</p>' if notice else ""
    error = f'<p class="error" role="alert">{h(problem)}</p>' if problem else ""
    body = f"""<h1>Teach the bot</h1>
<p class="meta">Messages the bot fell back on or scored below {LOW_CONFIDENCE}, grouped by
meaning. Label a group with what the shopper wanted; labels become training data only when
someone runs <code>shopbot nlu export</code> and retrains (<code>shopbot train</code>).
<b id="waiting">{waiting}</b> labelled, not yet exported; {len(reviews)} in all.</p>
<form class="filters" method="get" action="/console/teach">
<label>From <input type="date" name="from" value="{start.isoformat()}"></label>
<label>To <input type="date" name="to" value="{end.isoformat()}"></label>
<button type="submit">Show</button>
</form>
{error}{shown}
<div class="teach">{listing}</div>"""
    return page("Teach the bot", body, staff_email=request[STAFF].email, section="Teach the bot",
                csrf=csrf, status=status)


async def label(request: web.Request) -> web.Response:
    """POST /console/teach (form: text ×n, intent): label the checked messages."""
    console = request.app[CONSOLE]
    form = await request.post()
    texts = [t for t in form.getall("text", []) if isinstance(t, str)]
    intent = form.get("intent")
    if not texts or not isinstance(intent, str) or not intent:
        return await teach_page(request, "Tick at least one message and choose an intent.",
                                status=400)
    store = (await console.stores()).reviews
    try:
        saved = await asyncio.to_thread(store.label, texts, intent, request[STAFF].email,
                                        domain_intents())
    except BadInput as bad:
        return await teach_page(request, str(bad), status=400)
    return await teach_page(request, f"Saved {saved} as {intent}.")
