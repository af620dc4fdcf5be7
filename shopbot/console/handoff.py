"""Taking a conversation over from the bot, replying in person, handing it back.

The ticket row says who holds the conversation (:meth:`shop.tickets.TicketStore.take`: one
person at a time); Rasa's conversation says the bot is quiet (a ``pause`` event, appended
by the REST channel's staff route, :mod:`bot.channels.staff`). Every message goes to the
shopper through the channel they last wrote from: the platform's API, or the widget's
outbox. What the shopper reads when a person joins and leaves is said here, once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from shop.staff import display_name
from shop.tickets import Ticket
from shopbot.console.state import Console
from shopcore.keys import INTERNAL_HEADER, SENDER_HEADER, internal_secret
from shopcore.text import BadInput, clean_text

logger = logging.getLogger("shopbot.console")

MAX_REPLY_CHARS = 2000
RASA_TIMEOUT_S = 30


class HandoffFailed(Exception):
    """The conversation could not be changed (Rasa unreachable, its store down)."""


@dataclass(frozen=True)
class Relayed:
    """What Rasa did with the staff events."""

    channel: str  # the channel the shopper last wrote from
    delivered: bool  # False: that channel can't be written to outside a turn


def joined_text(email: str) -> str:
    return (f"You're now chatting with {display_name(email)} from our team. The assistant "
            "will wait until they hand you back.")


def handed_back_text(email: str) -> str:
    return (f"{display_name(email)} has handed you back to the shop assistant. Ask me anything "
            "- I'm here again.")


def reply_text(raw: object) -> str:
    """A staff reply as it may be sent; raises BadInput with the reason."""
    text = clean_text(raw, what="reply", max_chars=MAX_REPLY_CHARS)
    if not text.strip():
        raise BadInput("Write a reply first.")
    return text


async def relay(console: Console, sender_id: str, events: list[dict[str, Any]]) -> Relayed:
    """Append ``events`` to the shopper's conversation through Rasa's REST channel."""
    settings = console.settings
    url = f"http://{settings.host}:{settings.rasa_port}/webhooks/rest/staff"
    headers = {INTERNAL_HEADER: internal_secret(settings), SENDER_HEADER: sender_id}
    session = console.http
    if session is None:
        raise HandoffFailed("the console is not running")
    try:
        async with session.post(url, json={"sender": sender_id, "events": events},
                                headers=headers) as answer:
            data = await answer.json(content_type=None) if answer.status == 200 else None
            if not isinstance(data, dict):
                logger.error("console: rasa answered HTTP %d to staff events", answer.status)
                raise HandoffFailed(f"the assistant answered HTTP {answer.status}")
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        logger.error("console: rasa unreachable for staff events: %r", exc)
        raise HandoffFailed("the assistant is unreachable") from exc
    return Relayed(str(data.get("channel") or ""), data.get("delivered") is True)


def staff_message(text: str, email: str, *, notice: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"staff": display_name(email)}
    if notice:
        metadata["notice"] = True
    return {"event": "bot", "text": text, "metadata": metadata}


async def take(console: Console, ticket: Ticket, email: str) -> Relayed:
    """Pause the bot and tell the shopper who they are talking with."""
    return await relay(console, ticket.sender_id,
                       [{"event": "pause"}, staff_message(joined_text(email), email,
                                                          notice=True)])


async def reply(console: Console, ticket: Ticket, email: str, text: str) -> Relayed:
    return await relay(console, ticket.sender_id, [staff_message(text, email)])


async def hand_back(console: Console, ticket: Ticket, email: str) -> Relayed:
    """Tell the shopper the assistant is back, then let the bot answer again."""
    return await relay(console, ticket.sender_id,
                       [staff_message(handed_back_text(email), email, notice=True),
                        {"event": "resume"}])
