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
shop database (``SHOPBOT_SHOP_DB``); standard library only (both virtualenvs import it).
"""

from __future__ import annotations

import logging
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

CODE_TTL_S = 600
FAILURE_WINDOW_S = 3600
MAX_FAILURES_PER_SENDER = 5  # per FAILURE_WINDOW_S
GLOBAL_WINDOW_S = 600
MAX_FAILURES_GLOBAL = 50  # per GLOBAL_WINDOW_S, all senders together
MAX_SENDER_CHARS = 128
BUSY_TIMEOUT_S = 10.0

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

SCHEMA = """
CREATE TABLE IF NOT EXISTS sender_links (
    alias TEXT PRIMARY KEY,
    canonical TEXT NOT NULL,
    linked_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sender_links_canonical ON sender_links (canonical);
CREATE TABLE IF NOT EXISTS sender_link_codes (
    code TEXT PRIMARY KEY,
    sender TEXT NOT NULL UNIQUE,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sender_link_failures (
    sender TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sender_link_failures_at ON sender_link_failures (at);
"""


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


def valid_sender(sender: object) -> bool:
    return isinstance(sender, str) and 0 < len(sender) <= MAX_SENDER_CHARS and sender.isprintable()


class LinkStore:
    """Link codes and sender aliases in SQLite (WAL; each write one IMMEDIATE transaction)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._lock, closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(f"BEGIN IMMEDIATE; {SCHEMA} COMMIT;")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def canonical(self, sender: str) -> str:
        """The id the bot knows this sender by: the linked chat's id, or the sender itself."""
        if not valid_sender(sender):
            return sender
        with closing(self._connect()) as db:
            row = db.execute("SELECT canonical FROM sender_links WHERE alias = ?",
                             (sender,)).fetchone()
        return row[0] if row else sender

    def aliases(self, canonical: str) -> list[str]:
        with closing(self._connect()) as db:
            rows = db.execute("SELECT alias FROM sender_links WHERE canonical = ? ORDER BY alias",
                              (canonical,)).fetchall()
        return [row[0] for row in rows]

    def issue(self, sender: str, now: float | None = None) -> str:
        """A fresh code for ``sender`` (replacing its previous one)."""
        now = time.time() if now is None else now
        with self._write() as db:
            db.execute("DELETE FROM sender_link_codes WHERE expires_at < ? OR sender = ?",
                       (now, sender))
            while True:
                code = f"{secrets.randbelow(1_000_000):06d}"
                taken = db.execute("SELECT 1 FROM sender_link_codes WHERE code = ?",
                                   (code,)).fetchone()
                if not taken:
                    break
            db.execute("INSERT INTO sender_link_codes (code, sender, expires_at) VALUES (?, ?, ?)",
                       (code, sender, now + CODE_TTL_S))
        return code

    def redeem(self, sender: str, code: str, now: float | None = None) -> str:
        """Make ``sender`` an alias of the chat that got ``code``; the reply for the shopper."""
        now = time.time() if now is None else now
        with self._write() as db:
            db.execute("DELETE FROM sender_link_failures WHERE at < ?", (now - FAILURE_WINDOW_S,))
            mine = db.execute("SELECT COUNT(*) FROM sender_link_failures WHERE sender = ? "
                              "AND at >= ?", (sender, now - FAILURE_WINDOW_S)).fetchone()[0]
            everyone = db.execute("SELECT COUNT(*) FROM sender_link_failures WHERE at >= ?",
                                  (now - GLOBAL_WINDOW_S,)).fetchone()[0]
            if mine >= MAX_FAILURES_PER_SENDER or everyone >= MAX_FAILURES_GLOBAL:
                logger.warning("link attempt refused (rate limit) for %r", sender[:40])
                return TOO_MANY
            row = db.execute("SELECT sender FROM sender_link_codes WHERE code = ? AND "
                             "expires_at >= ?", (code, now)).fetchone()
            if row is None:
                db.execute("INSERT INTO sender_link_failures (sender, at) VALUES (?, ?)",
                           (sender, now))
                logger.info("wrong or expired link code from %r", sender[:40])
                return WRONG_CODE
            issuer = row[0]
            if issuer == sender:
                return OWN_CODE.format(code=code)
            target = self._canonical_in(db, issuer)
            if target == self._canonical_in(db, sender):
                return ALREADY_LINKED
            db.execute("DELETE FROM sender_link_codes WHERE code = ?", (code,))
            db.execute("UPDATE sender_links SET canonical = ?, linked_at = ? WHERE canonical = ?",
                       (target, now, sender))
            db.execute("INSERT OR REPLACE INTO sender_links (alias, canonical, linked_at) "
                       "VALUES (?, ?, ?)", (sender, target, now))
        logger.info("linked %r to %r", sender[:40], target[:40])
        return LINKED

    @staticmethod
    def _canonical_in(db: sqlite3.Connection, sender: str) -> str:
        row = db.execute("SELECT canonical FROM sender_links WHERE alias = ?",
                         (sender,)).fetchone()
        return row[0] if row else sender

    def unlink(self, sender: str) -> str:
        """Detach ``sender``: from its canonical chat, or its aliases from it."""
        with self._write() as db:
            removed = db.execute("DELETE FROM sender_links WHERE alias = ?", (sender,)).rowcount
            if removed:
                logger.info("unlinked %r", sender[:40])
                return UNLINKED
            others = db.execute("DELETE FROM sender_links WHERE canonical = ?",
                                (sender,)).rowcount
        if others:
            logger.info("unlinked %d chats from %r", others, sender[:40])
            return UNLINKED_OTHERS
        return NOT_LINKED

    def forget(self, sender: str) -> int:
        """Drop every link, code and failed attempt of ``sender`` ("forget me"); rows removed.

        Links where ``sender`` is the canonical chat go too: the other chats stop sharing the
        forgotten shopper's cart and profile and start afresh under their own ids."""
        with self._write() as db:
            removed = db.execute("DELETE FROM sender_links WHERE alias = ? OR canonical = ?",
                                 (sender, sender)).rowcount
            removed += db.execute("DELETE FROM sender_link_codes WHERE sender = ?",
                                  (sender,)).rowcount
            db.execute("DELETE FROM sender_link_failures WHERE sender = ?", (sender,))
        if removed:
            logger.info("forgot %d link rows of %r", removed, sender[:40])
        return removed

    def handle(self, sender: str, text: object, now: float | None = None) -> str | None:
        """The reply to a link command in ``text`` from ``sender`` (the platform's own id,
        before mapping); None when ``text`` is no link command and should go to the bot."""
        command = parse_command(text)
        if command is None:
            return None
        if not valid_sender(sender):
            return BAD_SENDER
        if command.verb == "unlink":
            return self.unlink(sender)
        if command.code:
            return self.redeem(sender, command.code, now)
        return ISSUED.format(code=self.issue(sender, now))
