"""Channel linking: one shopper, two chats (say Telegram and the website), one profile and cart.

The shopper sends ``link`` in chat A and gets a 6-digit code valid for ten minutes; sending
``link <code>`` in chat B makes B's sender id an *alias* of A's. Every input channel maps
the sender through :meth:`LinkStore.canonical` before the message reaches Rasa, so the
conversation, profile, cart and orders (all keyed by sender id) are A's from then on.
``unlink`` in either chat undoes it; the alias chat starts from its own old state again.

Aliases always point at a canonical id, never at another alias (linking re-points the
aliases of a chat that becomes an alias), so one lookup resolves any sender. A code is a
one-in-a-million guess, so wrong codes are limited per sender and across all senders
(a sender id costs nothing on some channels); the global limit means an attacker can at
worst block linking for a few minutes, never guess a code.

Tables ``sender_links``, ``sender_link_codes`` and ``sender_link_failures`` live in the
shop database (:mod:`shopcore.db`): the Rasa-side channels map senders with it, the action
server forgets links with it.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from shopcore.db import Database
from shopcore.db import sender_link_codes as codes
from shopcore.db import sender_link_failures as failures
from shopcore.db import sender_link_issued as issued
from shopcore.db import sender_links as links
from shopcore.ids import valid_id

logger = logging.getLogger(__name__)

CODE_TTL_S = 600
FAILURE_WINDOW_S = 3600
MAX_FAILURES_PER_SENDER = 5  # per FAILURE_WINDOW_S
GLOBAL_WINDOW_S = 600
MAX_FAILURES_GLOBAL = 50  # per GLOBAL_WINDOW_S, all senders together
MAX_CODES_PER_SENDER = 5  # per FAILURE_WINDOW_S

COMMAND = re.compile(
    r"^\s*/?(?P<verb>link|unlink)(?:@\w+)?(?:\s+(?P<code>\d{3}[\s-]?\d{3}))?\s*[.!]?\s*$",
    re.IGNORECASE,
)

ISSUED = ("Your link code is {code}. Within 10 minutes, send \"link {code}\" in your other "
          "chat with us (Telegram, WhatsApp, Messenger, Slack or the website): both chats "
          "will then share your cart, profile and orders.")
LINKED = ("Linked! This chat now shares your cart, profile and orders with your other chat. "
          "Send \"unlink\" to undo it.")
WRONG_CODE = "That code is wrong or has expired. Send \"link\" in your other chat to get a new one."
OWN_CODE = "That code is for this chat - send \"link {code}\" in your other chat instead."
ALREADY_LINKED = "These chats are already linked."
TOO_MANY = "Too many wrong codes - please wait a while before trying again."
UNLINKED = "This chat is no longer linked; it has its own cart and profile again."
UNLINKED_OTHERS = "Your other chats are no longer linked to this one."
NOT_LINKED = "This chat isn't linked to another one."
BAD_SENDER = "Sorry, I can't link this chat."
SIGN_IN_FIRST = ("To use a link code here, please sign in to your account on the website "
                 "first (or type the code in your messaging app instead).")
TOO_MANY_CODES = "You've asked for several codes already - please use the last one or wait a while."


@dataclass(frozen=True)
class LinkCommand:
    verb: str  # "link" or "unlink"
    code: str  # six digits when redeeming, '' when asking for a code


def parse_command(text: object) -> LinkCommand | None:
    """``link``, ``/link``, ``link 123456``, ``link 123 456``, ``unlink``; None for anything else
    (so "link to the red dress" still goes to the bot)."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    match = COMMAND.match(text)
    if not match:
        return None
    verb = match.group("verb").lower()
    code = re.sub(r"\D", "", match.group("code") or "")
    if verb == "unlink" and code:
        return None
    return LinkCommand(verb, code)


class LinkStore:
    """Link codes and sender aliases in the shop database."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def canonical(self, sender: str) -> str:
        """The id the bot knows this sender by: the linked chat's id, or the sender itself."""
        if not valid_id(sender):
            return sender
        with self.db.read() as conn:
            return _canonical_in(conn, sender)

    def aliases(self, canonical: str) -> list[str]:
        with self.db.read() as conn:
            rows = conn.execute(select(links.c.alias).where(links.c.canonical == canonical)
                                .order_by(links.c.alias))
            return [row[0] for row in rows]

    def issue(self, sender: str, now: float | None = None) -> str | None:
        """A fresh code for ``sender`` (replacing its previous one); None past the limit."""
        now = time.time() if now is None else now
        with self.db.write(sender) as conn:
            conn.execute(delete(issued).where(issued.c.at < now - FAILURE_WINDOW_S))
            recent = conn.execute(select(func.count()).select_from(issued).where(
                issued.c.sender == sender)).scalar()
            if recent >= MAX_CODES_PER_SENDER:
                logger.warning("link code refused (issuing limit) for %r", sender[:40])
                return None
            conn.execute(insert(issued).values(sender=sender, at=now))
            conn.execute(delete(codes).where(or_(codes.c.expires_at < now,
                                                 codes.c.sender == sender)))
            while True:
                code = f"{secrets.randbelow(1_000_000):06d}"
                taken = conn.execute(select(codes.c.code).where(codes.c.code == code)).first()
                if not taken:
                    break
            conn.execute(insert(codes).values(code=code, sender=sender,
                                              expires_at=now + CODE_TTL_S))
        return code

    def redeem(self, sender: str, code: str, now: float | None = None) -> str:
        """Make ``sender`` an alias of the chat that got ``code``; the reply for the shopper."""
        now = time.time() if now is None else now
        with self.db.write("link codes") as conn:
            conn.execute(delete(failures).where(failures.c.at < now - FAILURE_WINDOW_S))
            mine = conn.execute(select(func.count()).select_from(failures).where(
                failures.c.sender == sender, failures.c.at >= now - FAILURE_WINDOW_S)).scalar()
            everyone = conn.execute(select(func.count()).select_from(failures).where(
                failures.c.at >= now - GLOBAL_WINDOW_S)).scalar()
            if mine >= MAX_FAILURES_PER_SENDER or everyone >= MAX_FAILURES_GLOBAL:
                logger.warning("link attempt refused (rate limit) for %r", sender[:40])
                return TOO_MANY
            row = conn.execute(select(codes.c.sender).where(
                codes.c.code == code, codes.c.expires_at >= now)).first()
            if row is None:
                conn.execute(insert(failures).values(sender=sender, at=now))
                logger.info("wrong or expired link code from %r", sender[:40])
                return WRONG_CODE
            issuer = row[0]
            if issuer == sender:
                return OWN_CODE.format(code=code)
            target = _canonical_in(conn, issuer)
            if target == _canonical_in(conn, sender):
                return ALREADY_LINKED
            conn.execute(delete(codes).where(codes.c.code == code))
            conn.execute(update(links).where(links.c.canonical == sender)
                         .values(canonical=target, linked_at=now))
            conn.execute(delete(links).where(links.c.alias == sender))
            conn.execute(insert(links).values(alias=sender, canonical=target, linked_at=now))
        logger.info("linked %r to %r", sender[:40], target[:40])
        return LINKED

    def unlink(self, sender: str) -> str:
        """Detach ``sender``: from its canonical chat, or its aliases from it."""
        with self.db.write(sender) as conn:
            removed = conn.execute(delete(links).where(links.c.alias == sender)).rowcount
            if removed:
                logger.info("unlinked %r", sender[:40])
                return UNLINKED
            others = conn.execute(delete(links).where(links.c.canonical == sender)).rowcount
        if others:
            logger.info("unlinked %d chats from %r", others, sender[:40])
            return UNLINKED_OTHERS
        return NOT_LINKED

    def forget(self, sender: str) -> int:
        """Drop every link, code and failed attempt of ``sender`` ("forget me"); rows removed.

        Links where ``sender`` is the canonical chat go too: the other chats stop sharing the
        forgotten shopper's cart and profile and start afresh under their own ids."""
        with self.db.write(sender) as conn:
            removed = conn.execute(delete(links).where(
                or_(links.c.alias == sender, links.c.canonical == sender))).rowcount
            removed += conn.execute(delete(codes).where(codes.c.sender == sender)).rowcount
            conn.execute(delete(failures).where(failures.c.sender == sender))
            conn.execute(delete(issued).where(issued.c.sender == sender))
        if removed:
            logger.info("forgot %d link rows of %r", removed, sender[:40])
        return removed

    def handle(self, sender: str, text: object, now: float | None = None, *,
               may_redeem: bool = True) -> str | None:
        """The reply to a link command in ``text`` from ``sender`` (the platform's own id,
        before mapping); None when ``text`` is no link command and should go to the bot.

        ``may_redeem``: whether this sender is proven (a messaging platform's signed id, a
        signed-in customer). An anonymous web session may show a code, never redeem one:
        redeeming makes the chat act as the other account."""
        command = parse_command(text)
        if command is None:
            return None
        if not valid_id(sender):
            return BAD_SENDER
        if command.verb == "unlink":
            return self.unlink(sender)
        if command.code:
            if not may_redeem:
                logger.info("link code refused for unauthenticated %r", sender[:40])
                return SIGN_IN_FIRST
            return self.redeem(sender, command.code, now)
        code = self.issue(sender, now)
        return TOO_MANY_CODES if code is None else ISSUED.format(code=code)


def _canonical_in(conn: Connection, sender: str) -> str:
    row = conn.execute(select(links.c.canonical).where(links.c.alias == sender)).first()
    return row[0] if row else sender
