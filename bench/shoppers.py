"""Simulated shoppers for load: closed-loop conversations over the web server's /api/chat.

Each shopper is one browser (its own cookie jar, or a customer token when a key is given,
so its Rasa sender id is known: ``customer:<name>``) that sends a turn, waits for the
reply, and sends the next, for as long as the run lasts. The mix is what shoppers do:
search, refine, open a product, add to the cart, look at the cart, ask a shop question,
small talk. Every turn is recorded (kind, latency, status, reply), so a run can say turns/s,
latency percentiles per kind, errors and lost turns (no reply at all).

Used by bench/load.py (numbers) and tests/test_scaled_e2e.py (faults under load).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt

COLOURS = ("red", "black", "blue", "white", "green", "pink", "brown", "grey")
ARTICLES = ("dresses", "tshirts", "jeans", "shirts", "heels", "watches", "handbags",
            "sports shoes", "kurtas", "sunglasses")
PLAIN = ("hi", "thanks!", "what is your return policy?", "how long does shipping take?",
         "do you accept cash on delivery?")


@dataclass
class Turn:
    """One message and what came back."""

    shopper: str
    index: int  # the turn's place in this shopper's conversation (0, 1, ...)
    kind: str  # plain / search / refine / details / cart
    text: str
    started: float
    latency_s: float
    status: int  # HTTP status; 0 when no reply came at all
    texts: list[str] = field(default_factory=list)
    buttons: list[str] = field(default_factory=list)  # payloads of the buttons offered

    @property
    def answered(self) -> bool:
        """A reply the shopper can read (anything else is an error or a lost turn)."""
        return self.status == 200 and bool(self.texts)

    @property
    def lost(self) -> bool:
        return self.status == 0


def conversation(rng: random.Random) -> list[tuple[str, str]]:
    """One visit: (kind, text) turns in an order a shopper would send them."""
    colour, other = rng.sample(COLOURS, 2)
    article = rng.choice(ARTICLES)
    turns = [("plain", "hi"), ("search", f"show me {colour} {article}"),
             ("refine", f"in {other}"), ("refine", "under 2000"),
             ("details", "tell me about the first one"),
             ("cart", "add the first one to my cart"), ("cart", "what's in my cart?"),
             ("plain", rng.choice(PLAIN[2:])), ("plain", "thanks!")]
    if rng.random() < 0.5:
        turns.insert(2, ("search", f"show me {rng.choice(ARTICLES)}"))
    return turns


def customer_token(name: str, secret: str) -> str:
    return jwt.encode({"sub": name, "exp": int(time.time()) + 3600}, secret, "HS256")


async def shopper(web_url: str, name: str, until: float, turns: list[Turn],
                  secret: str | None = None, seed: int = 0, timeout_s: float = 60.0,
                  think_s: float = 0.0, script: Callable[[random.Random], list[tuple[str, str]]]
                  = conversation) -> None:
    """One closed-loop shopper: conversations back to back until ``until`` (monotonic)."""
    rng = random.Random(f"{seed}-{name}")
    headers = {"Authorization": f"Bearer {customer_token(name, secret)}"} if secret else {}
    index = 0
    async with aiohttp.ClientSession(headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=timeout_s)) as http:
        while time.monotonic() < until:
            for kind, text in script(rng):
                if time.monotonic() >= until:
                    return
                turn = await one_turn(http, web_url, name, index, kind, text)
                turns.append(turn)
                index += 1
                if turn.buttons and any(t.startswith("Which size") for t in turn.texts):
                    # Pick a size, as a shopper does (the first one offered).
                    turns.append(await one_turn(http, web_url, name, index, "cart",
                                                turn.buttons[0]))
                    index += 1
                if think_s:
                    await asyncio.sleep(think_s)


async def one_turn(http: aiohttp.ClientSession, web_url: str, name: str, index: int,
                   kind: str, text: str) -> Turn:
    started = time.monotonic()
    status, texts, buttons = 0, [], []
    try:
        async with http.post(f"{web_url}/api/chat", json={"message": text}) as answer:
            status = answer.status
            body: Any = await answer.json(content_type=None)
            if status == 200 and isinstance(body, list):
                messages = [m for m in body if isinstance(m, dict)]
                texts = [str(m.get("text") or m.get("custom") or "") for m in messages]
                buttons = [str(b.get("payload") or b.get("title")) for m in messages
                           for b in m.get("buttons") or [] if isinstance(b, dict)]
            elif isinstance(body, dict):
                texts = [str(body.get("error") or "")]
    except (aiohttp.ClientError, TimeoutError, ValueError):
        status = 0
    return Turn(name, index, kind, text, started, time.monotonic() - started, status, texts,
                buttons)


async def run_shoppers(web_url: str, shoppers: int, duration_s: float, *,
                       secret: str | None = None, prefix: str = "load",
                       seed: int = 0, timeout_s: float = 60.0) -> list[Turn]:
    """``shoppers`` at once for ``duration_s``; every turn they made."""
    turns: list[Turn] = []
    until = time.monotonic() + duration_s
    await asyncio.gather(*(shopper(web_url, f"{prefix}-{i}", until, turns, secret, seed,
                                   timeout_s) for i in range(shoppers)))
    return turns


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summary(turns: list[Turn], duration_s: float) -> dict[str, Any]:
    """Turns/s, latency (ms) overall and per kind, errors, lost turns."""
    ok = [t for t in turns if t.answered]
    ms = [t.latency_s * 1000 for t in ok]
    by_kind = {}
    for kind in sorted({t.kind for t in ok}):
        values = [t.latency_s * 1000 for t in ok if t.kind == kind]
        by_kind[kind] = {"p50_ms": round(percentile(values, 50)),
                         "p95_ms": round(percentile(values, 95)), "turns": len(values)}
    return {
        "turns": len(turns), "turns_per_s": round(len(ok) / duration_s, 2),
        "p50_ms": round(percentile(ms, 50)) if ms else None,
        "p95_ms": round(percentile(ms, 95)) if ms else None,
        "max_ms": round(max(ms)) if ms else None,
        "errors": sum(1 for t in turns if not t.answered and not t.lost),
        "lost": sum(1 for t in turns if t.lost),
        "by_kind": by_kind,
    }
