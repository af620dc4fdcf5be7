"""Scripted multi-turn shopper conversations against a running bot: the dialogue success rate.

Usage:
    .venv/bin/python bench/conversations.py --url http://127.0.0.1:5005 [--secret S]
    .venv/bin/python bench/conversations.py --url http://127.0.0.1:8000/api/chat
    .venv/bin/python bench/conversations.py --start [--catalog PATH] [--store DIR]
        [--model PATH] [--web] [--only CATEGORY[,CATEGORY]] [--id ID] [--conversations YAML] [-v]

Each conversation in ``bench/conversations.yml`` is a list of turns (what the shopper types,
or a button they press) with checks on the bot's reply (the check kinds are listed in
:data:`CHECKS` and at the top of that file). A conversation passes when every check of every
turn passes; it stops at its first failing turn. Every conversation talks as a fresh sender
(``--url`` to a web server: a fresh browser session); conversations marked ``shopper: demo``
talk as the demo shopper, who has the seeded demo orders (SB-100101..SB-100109; demo mode),
after ``/restart`` so nothing carries over from an earlier conversation.

Where it talks:
- ``--url`` ending in ``/api/chat``: the web server, as the widget does (cookie session;
  the demo shopper through ``POST /api/session/demo``).
- any other ``--url``: Rasa's internal REST channel (``/webhooks/rest/webhook`` is added to a
  bare base URL) with the ``X-Shopbot-Internal`` secret: ``--secret``, else
  ``$SHOPBOT_INTERNAL_SECRET``, else the key of this installation's var/ (``make run``).
- ``--start``: a stack of its own in demo mode (action server + Rasa, loopback ports, a
  temporary var/) on ``--catalog`` (default: ../shared/data's 44k-product catalog), ingested
  into ``--store`` (default for that catalog: the cache the real-catalog e2e test keeps,
  test-artifacts/cache/catalog-products; a re-run only checks it); ``--web`` also starts the
  web server and talks through its /api/chat. It never trains: it uses
  ``--model``, else var/models/bot-<fingerprint of the current bot data>.tar.gz, else the
  newest var/models/bot-*.tar.gz (with a warning; the JSON says ``"model_current": false``).

Prints ONE JSON line to stdout:
    {"total": N, "passed": n, "success_rate": r, "by_category": {cat: {"passed", "total",
     "rate"}}, "failures": [{"id", "category", "turn", "user", "expected", "got"}], ...}
Progress goes to stderr (``-v``: every turn). Exit status 0 whatever the rate; 2 when the
bot cannot be reached or started.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONVERSATIONS = Path(__file__).resolve().parent / "conversations.yml"
REAL_CATALOG = PROJECT_ROOT.parent / "shared" / "data" / "catalog" / "products.jsonl.gz"
REAL_STORE_CACHE = PROJECT_ROOT / "test-artifacts" / "cache" / "catalog-products"
REST_PATH = "/webhooks/rest/webhook"
INTERNAL_HEADER = "X-Shopbot-Internal"
DEMO_SENDER = "demo-shopper"
SHOPPERS = ("new", "demo")
TRUNCATE = 400

# The demo shopper's seeded orders (shop/demo.py, _DEMO_ORDERS): id -> days before seeding
# that it was placed. tests/test_conversation_scripts.py checks this copy against the source.
DEMO_ORDER_AGE_DAYS = {
    "SB-100101": 0.2, "SB-100102": 1, "SB-100103": 3, "SB-100104": 4, "SB-100105": 9,
    "SB-100106": 50, "SB-100107": 20, "SB-100108": 16, "SB-100109": 40,
}
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")

Messages = list[dict[str, Any]]


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- replies


@dataclass
class Reply:
    """The bot's messages for one turn, read the way a shopper sees them."""

    messages: Messages

    @property
    def text(self) -> str:
        return "\n".join(str(m.get("text") or "") for m in self.messages
                         if isinstance(m, dict)).strip()

    @property
    def prose(self) -> str:
        """The text without the numbered product lines ("1. Name - ₹999 · Red · id 42")."""
        return "\n".join(line for line in self.text.splitlines()
                         if not CARD_LINE.match(line)).strip()

    @property
    def cards(self) -> list[dict[str, Any]]:
        return [c for m in self.messages if isinstance(m, dict)
                for payload in [m.get("custom") or {}]
                if isinstance(payload, dict) and payload.get("type") == "product_cards"
                for c in payload.get("products") or [] if isinstance(c, dict)]

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return [b for m in self.messages if isinstance(m, dict)
                for b in m.get("buttons") or [] if isinstance(b, dict)]

    @property
    def payload_types(self) -> set[str]:
        return {str(m["custom"].get("type")) for m in self.messages
                if isinstance(m, dict) and isinstance(m.get("custom"), dict)}

    def summary(self, limit: int = TRUNCATE) -> str:
        """What came back, short: the prose, the cards' facets, the buttons' titles."""
        parts = []
        if self.prose:
            parts.append(repr(" ".join(self.prose.split())[:200]))
        cards = self.cards
        if cards:
            shown = "; ".join(card_summary(c) for c in cards[:4])
            more = f" +{len(cards) - 4}" if len(cards) > 4 else ""
            parts.append(f"{len(cards)} cards: {shown}{more}")
        if self.buttons:
            parts.append("buttons: " + " | ".join(str(b.get("title", ""))[:30]
                                                   for b in self.buttons[:6]))
        if not parts:
            parts.append("(no reply)")
        text = " / ".join(parts)
        return text if len(text) <= limit else text[:limit - 1] + "…"


CARD_LINE = re.compile(r"^\s*\d+\.\s.+\bid\s+\S+")


def card_price(card: dict[str, Any]) -> float | None:
    """What the shopper pays: the final price, else the list price."""
    for name in ("final_price", "price"):
        value = card.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def card_summary(card: dict[str, Any]) -> str:
    price = card_price(card)
    money = f"₹{price:,.0f}" if price is not None else "?"
    return "/".join(str(x) for x in (card.get("article_type") or "?", card.get("colour") or "?",
                                     card.get("brand") or "?", card.get("gender") or "?", money))


# --------------------------------------------------------------------------- facets

# A product facet a check may name -> how to read it off a card.
FACETS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "article_type": lambda c: c.get("article_type"),
    "colour": lambda c: c.get("colour"),
    "brand": lambda c: c.get("brand"),
    "gender": lambda c: c.get("gender"),
    "name": lambda c: c.get("name"),
    "id": lambda c: c.get("id"),
    "price": card_price,
}
# What a facet's condition may say: a value or a list of values (the card's value must be
# one of them, case-insensitive) or a mapping of these operators (all must hold).
OPERATORS = ("in", "not_in", "contains", "not_contains", "max", "min")
NUMERIC_OPERATORS = ("max", "min")


def _strings(value: Any) -> list[str]:
    values = value if isinstance(value, list | tuple) else [value]
    return [str(v).strip().lower() for v in values]


def facet_problem(facet: str, condition: Any) -> str | None:
    """Why a facet condition is malformed, or None."""
    if facet not in FACETS:
        return f"unknown facet {facet!r} (known: {', '.join(FACETS)})"
    if isinstance(condition, dict):
        if not condition:
            return f"empty condition for {facet}"
        for op, value in condition.items():
            if op not in OPERATORS:
                return f"unknown operator {op!r} for {facet} (known: {', '.join(OPERATORS)})"
            if op in NUMERIC_OPERATORS and (not isinstance(value, int | float)
                                            or isinstance(value, bool)):
                return f"{facet}.{op} needs a number"
            if op not in NUMERIC_OPERATORS and not _strings(value):
                return f"{facet}.{op} needs a value or a list"
        return None
    if facet == "price":
        return "price needs {max: N} and/or {min: N}"
    if condition is None or (isinstance(condition, list) and not condition):
        return f"empty condition for {facet}"
    return None


def facet_holds(card: dict[str, Any], facet: str, condition: Any) -> bool:
    value = FACETS[facet](card)
    ops = condition if isinstance(condition, dict) else {"in": condition}
    for op, wanted in ops.items():
        if op in NUMERIC_OPERATORS:
            if value is None:
                return False
            if op == "max" and float(value) > float(wanted):
                return False
            if op == "min" and float(value) < float(wanted):
                return False
            continue
        text = str(value or "").strip().lower()
        options = _strings(wanted)
        if op == "in" and text not in options:
            return False
        if op == "not_in" and text in options:
            return False
        if op == "contains" and not any(o in text for o in options):
            return False
        if op == "not_contains" and any(o in text for o in options):
            return False
    return True


def card_matches(card: dict[str, Any], spec: dict[str, Any]) -> bool:
    """Every facet condition of ``spec`` holds for the card."""
    return all(facet_holds(card, facet, condition) for facet, condition in spec.items())


def describe_spec(spec: dict[str, Any]) -> str:
    return ", ".join(f"{facet} {cond}" for facet, cond in spec.items())


# --------------------------------------------------------------------------- checks


@dataclass
class Context:
    """What a check may look at besides this turn's reply."""

    history: list[Reply] = field(default_factory=list)  # earlier replies, oldest first
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def last_listing(self) -> list[dict[str, Any]]:
        """The cards of the latest earlier reply that showed products."""
        for reply in reversed(self.history):
            if reply.cards:
                return reply.cards
        return []


Check = Callable[[Reply, Any, Context], str | None]  # -> why it failed, or None


def _any_of(values: Any) -> list[str]:
    return [v for v in _strings(values) if v]


def check_says(reply: Reply, arg: Any, ctx: Context) -> str | None:
    if any(v in reply.text.lower() for v in _any_of(arg)):
        return None
    return f"reply says one of {arg}"


def check_not_says(reply: Reply, arg: Any, ctx: Context) -> str | None:
    found = [v for v in _any_of(arg) if v in reply.text.lower()]
    return f"reply does not say {found}" if found else None


def check_intro_says(reply: Reply, arg: Any, ctx: Context) -> str | None:
    if any(v in reply.prose.lower() for v in _any_of(arg)):
        return None
    return f"reply (outside the product list) says one of {arg}"


def check_mentions(reply: Reply, arg: Any, ctx: Context) -> str | None:
    seen = (reply.text + "\n" + "\n".join(str(b.get("title", "")) for b in reply.buttons))
    if any(v in seen.lower() for v in _any_of(arg)):
        return None
    return f"reply text or buttons mention one of {arg}"


def check_matches(reply: Reply, arg: Any, ctx: Context) -> str | None:
    return None if re.search(arg, reply.text) else f"reply matches /{arg}/"


def check_not_matches(reply: Reply, arg: Any, ctx: Context) -> str | None:
    found = re.search(arg, reply.text)
    return f"reply does not match /{arg}/ (found {found.group(0)[:60]!r})" if found else None


def check_min_products(reply: Reply, arg: Any, ctx: Context) -> str | None:
    n = len(reply.cards)
    return None if n >= int(arg) else f"at least {arg} products shown (got {n})"


def check_max_products(reply: Reply, arg: Any, ctx: Context) -> str | None:
    n = len(reply.cards)
    return None if n <= int(arg) else f"at most {arg} products shown (got {n})"


def check_no_products(reply: Reply, arg: Any, ctx: Context) -> str | None:
    n = len(reply.cards)
    return None if n == 0 else f"no products shown (got {n})"


def check_all_products(reply: Reply, arg: Any, ctx: Context) -> str | None:
    cards = reply.cards
    if not cards:
        return f"products shown, all {describe_spec(arg)} (none shown)"
    bad = [c for c in cards if not card_matches(c, arg)]
    if bad:
        return (f"every product {describe_spec(arg)} ({len(bad)}/{len(cards)} not, e.g. "
                f"{card_summary(bad[0])} {str(bad[0].get('name', ''))[:50]!r})")
    return None


def check_no_product(reply: Reply, arg: Any, ctx: Context) -> str | None:
    bad = [c for c in reply.cards if card_matches(c, arg)]
    if bad:
        return (f"no product {describe_spec(arg)} ({len(bad)} are, e.g. {card_summary(bad[0])} "
                f"{str(bad[0].get('name', ''))[:50]!r})")
    return None


def check_any_product(reply: Reply, arg: Any, ctx: Context) -> str | None:
    return None if any(card_matches(c, arg) for c in reply.cards) \
        else f"some product {describe_spec(arg)}"


def check_min_buttons(reply: Reply, arg: Any, ctx: Context) -> str | None:
    n = len(reply.buttons)
    return None if n >= int(arg) else f"at least {arg} buttons (got {n})"


def check_buttons(reply: Reply, arg: Any, ctx: Context) -> str | None:
    titles = [str(b.get("title", "")).lower() for b in reply.buttons]
    if any(v in t for t in titles for v in _any_of(arg)):
        return None
    return f"a button titled like one of {arg}"


def check_payload(reply: Reply, arg: Any, ctx: Context) -> str | None:
    return None if str(arg) in reply.payload_types else f"a {arg} payload"


def check_new_products(reply: Reply, arg: Any, ctx: Context) -> str | None:
    before = {str(c.get("id")) for c in ctx.last_listing()}
    cards = reply.cards
    if not cards:
        return "more products shown (none shown)"
    repeated = [c for c in cards if str(c.get("id")) in before]
    return f"only products not shown before ({len(repeated)} repeated)" if repeated else None


def check_cheaper(reply: Reply, arg: Any, ctx: Context) -> str | None:
    before = [p for p in (card_price(c) for c in ctx.last_listing()) if p is not None]
    now = [p for p in (card_price(c) for c in reply.cards) if p is not None]
    if not before:
        return "cheaper products than the last list (no earlier list)"
    if not now:
        return "cheaper products than the last list (none shown)"
    if statistics.median(now) < statistics.median(before):
        return None
    return (f"median price below the last list's ₹{statistics.median(before):,.0f} "
            f"(got ₹{statistics.median(now):,.0f})")


def check_from_last_list(reply: Reply, arg: Any, ctx: Context) -> str | None:
    """The reply shows a product of the last list: position N (1-based), or ``any``."""
    listing = ctx.last_listing()
    shown = [str(c.get("id")) for c in reply.cards]
    if not listing:
        return "a product of the last list (no earlier list)"
    if not shown:
        return "a product of the last list (no product shown)"
    if arg == "any":
        ids = {str(c.get("id")) for c in listing}
        return None if shown[0] in ids else "a product of the last list (shows another)"
    position = int(arg)
    if position > len(listing):
        return f"product #{position} of the last list (it had {len(listing)})"
    wanted = str(listing[position - 1].get("id"))
    return None if shown[0] == wanted else \
        f"product #{position} of the last list (id {wanted}; got id {shown[0]})"


def order_month(order_id: str, now: datetime) -> str:
    return MONTHS[(now - timedelta(days=DEMO_ORDER_AGE_DAYS[order_id])).month - 1]


def check_order_same_month(reply: Reply, arg: Any, ctx: Context) -> str | None:
    """Mentions a demo order placed in the same month as order ``arg``."""
    month = order_month(str(arg), ctx.now)
    candidates = [o for o in DEMO_ORDER_AGE_DAYS if order_month(o, ctx.now) == month]
    if any(o in reply.text for o in candidates):
        return None
    return f"reply names a {month} order ({', '.join(candidates)})"


CHECKS: dict[str, Check] = {
    "says": check_says,  # reply text contains one of (case-insensitive)
    "not_says": check_not_says,  # reply text contains none of
    "intro_says": check_intro_says,  # the text outside the numbered product list says one of
    "mentions": check_mentions,  # text or a button title contains one of
    "matches": check_matches,  # regular expression found in the text
    "not_matches": check_not_matches,
    "min_products": check_min_products,  # at least N product cards
    "max_products": check_max_products,
    "no_products": check_no_products,  # (true) no product cards
    "all_products": check_all_products,  # cards shown and every one matches {facet: cond}
    "no_product": check_no_product,  # no card matches {facet: cond} (all conditions)
    "any_product": check_any_product,  # some card matches {facet: cond}
    "min_buttons": check_min_buttons,
    "buttons": check_buttons,  # a button title contains one of
    "payload": check_payload,  # a custom payload of this type (product_cards, cart, order)
    "new_products": check_new_products,  # (true) cards, none of them in the last list
    "cheaper": check_cheaper,  # (true) median card price below the last list's
    "from_last_list": check_from_last_list,  # first card is #N of the last list (or any)
    "order_same_month_as": check_order_same_month,  # names a demo order of that one's month
}
FACET_CHECKS = ("all_products", "no_product", "any_product")
INT_CHECKS = ("min_products", "max_products", "min_buttons")
TRUE_CHECKS = ("no_products", "new_products", "cheaper")
TEXT_CHECKS = ("says", "not_says", "intro_says", "mentions", "buttons")


def check_problem(check: Any) -> str | None:
    """Why one check entry is malformed, or None."""
    if not isinstance(check, dict) or len(check) != 1:
        return f"a check is a one-key mapping {{kind: argument}}, got {check!r}"
    ((kind, arg),) = check.items()
    if kind not in CHECKS:
        return f"unknown check kind {kind!r}"
    if kind in FACET_CHECKS:
        if not isinstance(arg, dict) or not arg:
            return f"{kind} needs a mapping of facet conditions"
        for facet, condition in arg.items():
            problem = facet_problem(facet, condition)
            if problem:
                return f"{kind}: {problem}"
    elif kind in INT_CHECKS:
        if not isinstance(arg, int) or isinstance(arg, bool) or arg < 0:
            return f"{kind} needs a whole number"
    elif kind in TRUE_CHECKS:
        if arg is not True:
            return f"{kind} takes `true`"
    elif kind in TEXT_CHECKS:
        if not _any_of(arg):
            return f"{kind} needs a string or a list of strings"
    elif kind in ("matches", "not_matches"):
        try:
            re.compile(str(arg))
        except re.error as exc:
            return f"{kind}: bad regular expression: {exc}"
    elif kind == "payload":
        if arg not in ("product_cards", "cart", "order"):
            return "payload is one of product_cards, cart, order"
    elif kind == "from_last_list":
        if arg != "any" and (not isinstance(arg, int) or isinstance(arg, bool) or arg < 1):
            return "from_last_list is a position (1, 2, ...) or `any`"
    elif kind == "order_same_month_as" and arg not in DEMO_ORDER_AGE_DAYS:
        return f"order_same_month_as names a demo order ({', '.join(DEMO_ORDER_AGE_DAYS)})"
    return None


def run_checks(reply: Reply, checks: list[dict[str, Any]], ctx: Context) -> list[str]:
    """The failed checks' expectations (empty when the turn passes)."""
    failed = []
    for check in checks:
        ((kind, arg),) = check.items()
        why = CHECKS[kind](reply, arg, ctx)
        if why:
            failed.append(f"{kind}: {why}")
    return failed


# --------------------------------------------------------------------------- scripts

TURN_KEYS = ("user", "payload", "button")
TEMPLATE = re.compile(r"\{month_of:(SB-\d{6})\}")


def expand(text: str, now: datetime) -> str:
    """``{month_of:SB-100106}`` -> the month that demo order was placed in ("October")."""
    return TEMPLATE.sub(lambda m: order_month(m.group(1), now), text)


def conversation_problems(conversation: Any) -> list[str]:
    """Everything malformed about one conversation (empty when it is well-formed)."""
    if not isinstance(conversation, dict):
        return [f"a conversation is a mapping, got {conversation!r}"]
    name = conversation.get("id", "<no id>")
    problems = []
    if not isinstance(conversation.get("id"), str) or not conversation["id"].strip():
        problems.append("missing id")
    if not isinstance(conversation.get("category"), str) or not conversation["category"]:
        problems.append("missing category")
    shopper = conversation.get("shopper", "new")
    if shopper not in SHOPPERS:
        problems.append(f"shopper is one of {SHOPPERS}")
    unknown = set(conversation) - {"id", "category", "shopper", "turns", "note"}
    if unknown:
        problems.append(f"unknown keys {sorted(unknown)}")
    turns = conversation.get("turns")
    if not isinstance(turns, list) or not turns:
        return [f"{name}: {p}" for p in problems + ["no turns"]]
    for number, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict):
            problems.append(f"turn {number} is not a mapping")
            continue
        said = [k for k in TURN_KEYS if k in turn]
        if len(said) != 1:
            problems.append(f"turn {number} needs exactly one of {TURN_KEYS}")
        elif not isinstance(turn[said[0]], str) or not turn[said[0]].strip():
            problems.append(f"turn {number}: {said[0]} must be non-empty text")
        else:
            for order_id in TEMPLATE.findall(turn[said[0]]):
                if order_id not in DEMO_ORDER_AGE_DAYS:
                    problems.append(f"turn {number}: unknown demo order {order_id}")
        if "button" in turn and number == 1:
            problems.append("turn 1 cannot press a button (no reply yet)")
        unknown = set(turn) - {*TURN_KEYS, "expect"}
        if unknown:
            problems.append(f"turn {number}: unknown keys {sorted(unknown)}")
        checks = turn.get("expect", [])
        if not isinstance(checks, list):
            problems.append(f"turn {number}: expect is a list of checks")
            continue
        for check in checks:
            problem = check_problem(check)
            if problem:
                problems.append(f"turn {number}: {problem}")
    if not any(isinstance(t, dict) and t.get("expect") for t in turns):
        problems.append("no turn checks anything")
    return [f"{name}: {p}" for p in problems]


def load_conversations(path: Path = DEFAULT_CONVERSATIONS) -> list[dict[str, Any]]:
    """The conversations of a script file; ValueError listing every malformed one."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    conversations = data.get("conversations") if isinstance(data, dict) else data
    if not isinstance(conversations, list) or not conversations:
        raise ValueError(f"{path}: no `conversations:` list")
    problems = [p for c in conversations for p in conversation_problems(c)]
    ids = [c.get("id") for c in conversations if isinstance(c, dict)]
    problems += [f"duplicate id {i}" for i in sorted({i for i in ids if ids.count(i) > 1})]
    if problems:
        raise ValueError(f"{path}:\n  " + "\n  ".join(problems))
    return conversations


# --------------------------------------------------------------------------- transports


class BotUnreachable(RuntimeError):
    """The bot did not answer (connection refused, timeout, a server error)."""


def post_json(url: str, payload: Any, headers: dict[str, str] | None = None,
              opener: urllib.request.OpenerDirector | None = None,
              timeout: float = 120.0) -> Any:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
    for attempt in range(6):
        try:
            with (opener or urllib.request.build_opener()).open(request,
                                                                timeout=timeout) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as error:
            if error.code == 429 and attempt < 5:  # the web server's rate limit
                time.sleep(5 * (attempt + 1))
                continue
            body = error.read()[:300].decode(errors="replace")
            raise BotUnreachable(f"HTTP {error.code} from {url}: {body}") from error
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise BotUnreachable(f"{url}: {error}") from error
    raise BotUnreachable(f"{url}: still rate limited")


class Session:
    """One conversation's connection to the bot."""

    def send(self, text: str) -> Messages:
        raise NotImplementedError


class RestSession(Session):
    """Rasa's internal REST channel, as the web server (and the e2e tests' ``say``) use it."""

    def __init__(self, url: str, secret: str, sender: str, timeout: float) -> None:
        self.url, self.secret, self.sender, self.timeout = url, secret, sender, timeout

    def send(self, text: str) -> Messages:
        answer = post_json(self.url, {"sender": self.sender, "message": text},
                           headers={INTERNAL_HEADER: self.secret}, timeout=self.timeout)
        return answer if isinstance(answer, list) else []


class WebSession(Session):
    """The web server's /api/chat with a browser's cookie jar (a session of its own)."""

    def __init__(self, url: str, demo: bool, timeout: float) -> None:
        self.url, self.timeout = url, timeout
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        base = url.rsplit("/api/chat", 1)[0]
        post_json(f"{base}/api/session/{'demo' if demo else 'new'}", {},
                  opener=self.opener, timeout=timeout)

    def send(self, text: str) -> Messages:
        answer = post_json(self.url, {"message": text}, opener=self.opener,
                           timeout=self.timeout)
        if isinstance(answer, dict):
            answer = answer.get("messages", [])
        return answer if isinstance(answer, list) else []


@dataclass
class Target:
    """Where the conversations go: makes a fresh session per conversation."""

    url: str
    secret: str = ""
    timeout: float = 120.0
    run_tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def web(self) -> bool:
        return self.url.rstrip("/").endswith("/api/chat")

    def session(self, conversation: dict[str, Any], index: int) -> Session:
        demo = conversation.get("shopper") == "demo"
        if self.web:
            session: Session = WebSession(self.url.rstrip("/"), demo, self.timeout)
        else:
            sender = DEMO_SENDER if demo else f"bench-{self.run_tag}-{index:03d}"
            session = RestSession(self.url, self.secret, sender, self.timeout)
        if demo:  # the demo shopper's tracker is shared by every run: start it afresh
            session.send("/restart")
        return session


def rest_url(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith(REST_PATH) else url + REST_PATH


def local_internal_secret() -> str:
    """The internal secret of this installation (var/secrets), as `make run` uses it."""
    sys.path.insert(0, str(PROJECT_ROOT))
    from shopcore.keys import internal_secret
    from shopcore.settings import get_settings

    return internal_secret(get_settings())


# --------------------------------------------------------------------------- running


@dataclass
class Outcome:
    conversation: dict[str, Any]
    passed: bool
    failure: dict[str, Any] | None = None
    seconds: float = 0.0


def truncate(text: str, limit: int = TRUNCATE) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def run_conversation(target: Target, conversation: dict[str, Any], index: int,
                     verbose: bool = False) -> Outcome:
    started = time.perf_counter()
    ctx = Context()
    base = {"id": conversation["id"], "category": conversation["category"]}
    try:
        session = target.session(conversation, index)
    except BotUnreachable as exc:
        return Outcome(conversation, False, {**base, "turn": 0, "user": "",
                                             "expected": "a session", "got": truncate(exc)})
    last: Reply | None = None
    for number, turn in enumerate(conversation["turns"], start=1):
        if "button" in turn:
            wanted = turn["button"].lower()
            pressed = next((b for b in (last.buttons if last else [])
                            if wanted in str(b.get("title", "")).lower()), None)
            if pressed is None:
                got = last.summary() if last else "(no reply)"
                return Outcome(conversation, False, {
                    **base, "turn": number, "user": f"[button {turn['button']}]",
                    "expected": f"a button titled like {turn['button']!r} to press",
                    "got": got}, time.perf_counter() - started)
            text, shown = str(pressed.get("payload") or pressed.get("title")), \
                f"[button {pressed.get('title')}]"
        else:
            text = expand(turn.get("user") or turn.get("payload"), ctx.now)
            shown = text
        try:
            reply = Reply(session.send(text))
        except BotUnreachable as exc:
            return Outcome(conversation, False, {**base, "turn": number, "user": shown,
                                                 "expected": "an answer",
                                                 "got": truncate(exc)},
                           time.perf_counter() - started)
        failed = run_checks(reply, turn.get("expect", []), ctx)
        if verbose:
            log(f"    {number}. {shown!r} -> {reply.summary(200)}"
                + (f"  FAILED {failed}" if failed else ""))
        if failed:
            return Outcome(conversation, False, {
                **base, "turn": number, "user": shown, "expected": truncate("; ".join(failed)),
                "got": reply.summary()}, time.perf_counter() - started)
        ctx.history.append(reply)
        last = reply
    return Outcome(conversation, True, None, time.perf_counter() - started)


def run_all(target: Target, conversations: list[dict[str, Any]],
            verbose: bool = False) -> list[Outcome]:
    outcomes = []
    for index, conversation in enumerate(conversations, start=1):
        outcome = run_conversation(target, conversation, index, verbose)
        outcomes.append(outcome)
        status = "ok  " if outcome.passed else "FAIL"
        why = "" if outcome.passed else \
            f"  turn {outcome.failure['turn']}: {outcome.failure['expected'][:120]}"  # type: ignore[index]
        log(f"[{index}/{len(conversations)}] {status} {conversation['category']}/"
            f"{conversation['id']} ({outcome.seconds:.1f}s){why}")
    return outcomes


def report(outcomes: list[Outcome], extra: dict[str, Any]) -> dict[str, Any]:
    by_category: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        entry = by_category.setdefault(outcome.conversation["category"],
                                       {"passed": 0, "total": 0})
        entry["total"] += 1
        entry["passed"] += outcome.passed
    for entry in by_category.values():
        entry["rate"] = round(entry["passed"] / entry["total"], 3)
    passed = sum(o.passed for o in outcomes)
    return {
        "total": len(outcomes), "passed": passed,
        "success_rate": round(passed / len(outcomes), 3) if outcomes else 0.0,
        "by_category": by_category,
        "failures": [o.failure for o in outcomes if o.failure],
        **extra,
    }


def select(conversations: list[dict[str, Any]], only: list[str] | None,
           ids: list[str] | None) -> list[dict[str, Any]]:
    chosen = conversations
    if only:
        wanted = {c.strip() for item in only for c in item.split(",") if c.strip()}
        unknown = wanted - {c["category"] for c in conversations}
        if unknown:
            raise SystemExit(f"unknown categories: {sorted(unknown)} (known: "
                             f"{sorted({c['category'] for c in conversations})})")
        chosen = [c for c in chosen if c["category"] in wanted]
    if ids:
        wanted = {i.strip() for item in ids for i in item.split(",") if i.strip()}
        chosen = [c for c in chosen if c["id"] in wanted]
    return chosen


# --------------------------------------------------------------------------- --start


def models_dir() -> Path:
    return Path(os.environ.get("SHOPBOT_MODELS_DIR") or PROJECT_ROOT / "var" / "models")


def pick_model(explicit: Path | None) -> tuple[Path, bool]:
    """(the trained Rasa model to run, whether it is the current bot data's) - never trains."""
    from shopbot.stack import bot_fingerprint

    current = models_dir() / f"bot-{bot_fingerprint()}.tar.gz"
    if explicit:
        return explicit, explicit.resolve() == current.resolve()
    if current.is_file():
        return current, True
    found = sorted(models_dir().glob("bot-*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit(f"no trained Rasa model in {models_dir()}: train one first "
                         "(`shopbot train` / `make train`), or pass --model")
    log(f"WARNING: no model for the current bot data ({current.name}); using the newest, "
        f"{found[-1].name}, trained on older data")
    return found[-1], False


def ensure_store(catalog: Path | None, store_dir: Path, images: Path | None) -> int:
    """Ingest the catalog into the store (incremental: unchanged products are kept)."""
    from retrieval.ingest import ingest_catalog
    from retrieval.store import ProductStore

    store = ProductStore(store_dir)
    log(f"store {store_dir}: ingesting {catalog or 'the sample catalog'}"
        f"{' with photos from ' + str(images) if images else ''} (first time: minutes)...")
    started = time.perf_counter()
    report_ = ingest_catalog(store, catalog, images_dir=images)
    log(f"store ready: {store.count()} products ({report_.loaded} in the catalog) in "
        f"{time.perf_counter() - started:.0f}s")
    return store.count()


@contextmanager
def started_stack(args: argparse.Namespace) -> Iterator[tuple[Target, dict[str, Any]]]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    os.environ.setdefault("SHOPBOT_MODELS_DIR", str(models_dir()))
    sys.path.insert(0, str(PROJECT_ROOT))
    from shopbot.stack import Stack, StackError, free_port
    from shopcore.settings import Settings

    catalog = args.catalog if args.catalog else (REAL_CATALOG if REAL_CATALOG.is_file()
                                                 else None)
    if catalog is not None and not catalog.is_file():
        raise SystemExit(f"catalog not found: {catalog}")
    images = args.images
    if images is None and catalog is not None and not args.no_images:
        beside = catalog.resolve().parent / "images"
        images = beside if beside.is_dir() else None
    if args.store:
        store_dir = args.store
    elif catalog is not None and catalog.resolve() == REAL_CATALOG.resolve():
        store_dir = REAL_STORE_CACHE  # shared with tests/test_real_catalog_e2e.py
    else:
        tag = re.sub(r"[^A-Za-z0-9]+", "-", catalog.name if catalog else "sample")
        store_dir = PROJECT_ROOT / "test-artifacts" / "cache" / f"conversations-{tag}"
    model, current = pick_model(args.model)
    products = ensure_store(catalog, store_dir, images)
    with tempfile.TemporaryDirectory(prefix="shopbot-bench-conv-") as run_dir:
        settings = Settings(store_dir=store_dir, var_dir=Path(run_dir), demo=True,
                            models_dir=models_dir(), rasa_port=free_port(),
                            action_port=free_port(), web_port=free_port())
        stack = Stack(settings, model, with_web=args.web)
        log(f"starting the stack with {model.name} (a minute or two)...")
        began = time.perf_counter()
        try:
            stack.start()
        except StackError as exc:
            log(str(exc))
            raise SystemExit(2) from exc
        log(f"stack up in {time.perf_counter() - began:.0f}s: {stack.rasa_url}")
        url = f"{stack.web_url}/api/chat" if args.web else rest_url(stack.rasa_url)
        try:
            yield (Target(url, stack.settings.internal_secret or "", timeout=args.timeout),
                   {"model": model.name, "model_current": current,
                    "catalog": str(catalog or "sample"), "products": products})
        finally:
            stack.stop()


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run scripted shopper conversations against the bot; one JSON line out.")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running bot: Rasa's base URL (REST channel) or the "
                       "web server's .../api/chat")
    where.add_argument("--start", action="store_true",
                       help="start a stack of its own (demo mode) on --catalog")
    parser.add_argument("--secret", help="the internal secret for Rasa's REST channel "
                        "(default $SHOPBOT_INTERNAL_SECRET, else this installation's)")
    parser.add_argument("--catalog", type=Path, help="--start: catalog file (default: the "
                        "real 44k catalog in ../shared/data when present, else the sample)")
    parser.add_argument("--images", type=Path, help="--start: photo folder (default: "
                        "images/ beside the catalog)")
    parser.add_argument("--no-images", action="store_true",
                        help="--start: ingest without photos")
    parser.add_argument("--store", type=Path, help="--start: product store folder")
    parser.add_argument("--web", action="store_true", help="--start: also start the web "
                        "server and talk through its /api/chat, as the widget does")
    parser.add_argument("--model", type=Path, help="--start: trained Rasa model (.tar.gz)")
    parser.add_argument("--conversations", type=Path, default=DEFAULT_CONVERSATIONS)
    parser.add_argument("--only", action="append",
                        help="only these categories (comma-separated or repeated)")
    parser.add_argument("--id", action="append", dest="ids",
                        help="only these conversation ids (comma-separated or repeated)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per turn")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every turn")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    conversations = select(load_conversations(args.conversations), args.only, args.ids)
    if not conversations:
        raise SystemExit("no conversations selected")
    log(f"{len(conversations)} conversations")
    began = time.perf_counter()
    if args.start:
        with started_stack(args) as (target, extra):
            outcomes = run_all(target, conversations, args.verbose)
    else:
        target = Target(args.url if args.url.rstrip("/").endswith("/api/chat")
                        else rest_url(args.url), timeout=args.timeout)
        if not target.web:
            target.secret = (args.secret or os.environ.get("SHOPBOT_INTERNAL_SECRET")
                             or local_internal_secret())
        extra = {}
        outcomes = run_all(target, conversations, args.verbose)
    extra = {**extra, "target": "start" if args.start else args.url,
             "seconds": round(time.perf_counter() - began, 1)}
    if outcomes and all(o.failure and o.failure["turn"] <= 1 and
                        o.failure["expected"] in ("a session", "an answer")
                        for o in outcomes):
        print(json.dumps(report(outcomes, extra), ensure_ascii=False))
        log("the bot never answered")
        return 2
    print(json.dumps(report(outcomes, extra), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
