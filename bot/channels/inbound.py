"""What every platform's webhook turns into before it reaches the bot (no Rasa here).

A platform request becomes zero or more :class:`Incoming` messages: who sent it (a sender
id namespaced by platform, so a Telegram user can never be impersonated from another
channel), where replies go, the text or the photo to fetch. :func:`typed_text` makes typed
text safe for Rasa; :class:`Deduplicator` drops the re-deliveries platforms make when an
answer is slow.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

SLASH_WORDS = {"start": "hello", "help": "help"}  # Telegram's built-in bot commands


def too_long(max_chars: int) -> str:
    return f"That message is too long; please keep it under {max_chars} characters."


@dataclass
class Incoming:
    """One shopper message from a platform, before sender mapping."""

    sender: str  # e.g. "telegram:42" - the platform's user id, namespaced
    address: Any  # where replies go: chat id, channel id, (shopper, our number)...
    text: str = ""
    from_button: bool = False  # the payload of a button we sent: passed on as is
    photo: Callable[[], Awaitable[bytes]] | None = None  # fetches the photo's bytes
    message_id: str = ""  # the platform's id, to drop re-deliveries
    metadata: dict[str, Any] = field(default_factory=dict)


def typed_text(text: str) -> str:
    """Typed text as the bot should read it.

    A leading ``/`` would make Rasa take the text as an intent (``/checkout``) and skip
    NLU, so it is dropped: ``/start`` -> ``hello``, ``/show red dresses`` -> ``show red
    dresses``. Button payloads are ours and skip this."""
    text = " ".join(text.split())
    if text.startswith("/"):
        word, _, rest = text.lstrip("/").partition(" ")
        word = word.split("@", 1)[0]  # Telegram groups: /start@ShopBot
        text = SLASH_WORDS.get(word.lower(), word) if not rest else f"{word} {rest}"
    return text.strip()


class Deduplicator:
    """Remembers recent message ids (bounded, in memory) to drop platform re-deliveries."""

    def __init__(self, size: int = 4096, ttl_s: float = 3600.0) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self._seen: OrderedDict[str, float] = OrderedDict()

    def seen(self, key: str, now: float | None = None) -> bool:
        """True when ``key`` came before (recently); records it otherwise. '' is never seen."""
        if not key:
            return False
        now = time.monotonic() if now is None else now
        while self._seen and (len(self._seen) > self.size
                              or now - next(iter(self._seen.values())) > self.ttl_s):
            self._seen.popitem(last=False)
        if key in self._seen:
            return True
        self._seen[key] = now
        return False
