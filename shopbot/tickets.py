"""Human handoff: a support ticket with the conversation so far, and what happens next.

A ticket is never lost to bad input: odd characters are dropped, long turns and long
conversations are shortened (the newest turns are kept: they say what went wrong), and a
missing reason becomes "(no reason given)". A shopper asking again within the hour gets
their open ticket back (with the fresher transcript) instead of a pile of duplicates.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from shopbot.shopdb import (
    BadInput,
    SQLiteStore,
    as_utc,
    clean_text,
    clip,
    from_db,
    now_utc,
    short,
    to_db,
    valid_id,
)

logger = logging.getLogger(__name__)

MAX_TURNS = 40
MAX_TURN_CHARS = 1000
MAX_REASON_CHARS = 300
REUSE_WITHIN = timedelta(hours=1)
DEFAULT_RESPONSE_TIME = "within a few hours"


class TicketStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Turn(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["user", "bot"]
    text: str
    ts: float | None = None  # seconds since the epoch, as Rasa events carry them


class Ticket(BaseModel):
    model_config = ConfigDict(frozen=True)

    ticket_id: str
    sender_id: str
    reason: str
    intent: str = ""
    transcript: list[Turn]
    turns_dropped: int = 0  # older turns left out to keep the ticket readable
    status: TicketStatus
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TicketOutcome:
    """The ticket and the shopper-facing text saying what happens next."""

    ticket: Ticket | None
    message: str
    reused: bool = False

    @property
    def ok(self) -> bool:
        return self.ticket is not None

    @property
    def ticket_id(self) -> str:
        return self.ticket.ticket_id if self.ticket else ""


def clean_transcript(turns: Iterable[Any] | None) -> tuple[list[Turn], int]:
    """Turns fit to store, newest ``MAX_TURNS`` kept; returns them and how many were dropped."""
    kept: list[Turn] = []
    for turn in list(turns or [])[-10 * MAX_TURNS:]:
        if not isinstance(turn, dict):
            turn = getattr(turn, "__dict__", {})
        role = turn.get("role")
        if role not in ("user", "bot"):
            continue
        try:
            text = clean_text(turn.get("text"), what="message", max_chars=10**9)
        except BadInput:
            continue
        kept.append(Turn(role=role, text=clip(text, MAX_TURN_CHARS), ts=_timestamp(turn.get("ts"))))
    dropped = max(0, len(kept) - MAX_TURNS)
    return kept[dropped:], dropped


def _timestamp(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1e11:
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value[:40]).timestamp()
        except ValueError:
            return None
    return None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    ticket_id TEXT PRIMARY KEY,
    sender_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    intent TEXT NOT NULL DEFAULT '',
    transcript TEXT NOT NULL,
    turns_dropped INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_by_sender ON tickets (sender_id, created_at);
"""


class TicketStore(SQLiteStore):
    """Handoff tickets per shopper, for the support team to pick up."""

    SCHEMA = _SCHEMA

    def __init__(
        self, path: Path | str, *, contact_hours: str = "",
        response_time: str = DEFAULT_RESPONSE_TIME,
    ) -> None:
        """``contact_hours``: the policy's ``contact.hours``, quoted in "what happens next"."""
        super().__init__(path)
        self.contact_hours = contact_hours
        self.response_time = response_time

    def create(
        self, sender_id: str, reason: str, transcript: Iterable[Any] | None = None,
        intent: str = "", *, now: datetime | None = None,
    ) -> TicketOutcome:
        """Record a handoff; an open ticket of the last hour is refreshed instead of duplicated."""
        if not valid_id(sender_id):
            logger.warning("ticket not created: bad sender id %s", short(sender_id))
            return TicketOutcome(None, "Sorry, I couldn't pass this on to our team. Please "
                                 "contact support directly.")
        now = as_utc(now) or now_utc()
        try:
            why = clean_text(reason, what="reason", max_chars=10**9)
        except BadInput:
            why = "(no reason given)"
        why = clip(why, MAX_REASON_CHARS)
        intent = clip(intent, 80) if isinstance(intent, str) and intent.isprintable() else ""
        turns, dropped = clean_transcript(transcript)
        body = json.dumps([t.model_dump() for t in turns], ensure_ascii=False)
        with self._write() as db:
            recent = db.execute(
                "SELECT ticket_id FROM tickets WHERE sender_id = ? AND status = ? "
                "AND created_at >= ? ORDER BY created_at DESC LIMIT 1",
                (sender_id, TicketStatus.OPEN.value, to_db(now - REUSE_WITHIN))).fetchone()
            if recent:
                ticket_id = recent["ticket_id"]
                db.execute("UPDATE tickets SET reason = ?, intent = ?, transcript = ?, "
                           "turns_dropped = ?, updated_at = ? WHERE ticket_id = ?",
                           (why, intent, body, dropped, to_db(now), ticket_id))
            else:
                ticket_id = self._insert(db, sender_id, why, intent, body, dropped, now)
            ticket = self._get(db, "ticket_id = ?", (ticket_id,))[0]
        logger.info("handoff ticket %s for %s (%s)", ticket_id, short(sender_id),
                    "refreshed" if recent else "new")
        return TicketOutcome(ticket, self.next_steps(ticket, reused=bool(recent)), bool(recent))

    def next_steps(self, ticket: Ticket, reused: bool = False) -> str:
        """What the shopper is told after a handoff."""
        first = (f"Your request is already with our support team (ticket {ticket.ticket_id}); "
                 "I've added our latest messages to it." if reused else
                 f"I've passed this to our support team (ticket {ticket.ticket_id}).")
        hours = f" Our team works {self.contact_hours}." if self.contact_hours else ""
        return (f"{first} A person will read our conversation and get back to you "
                f"{self.response_time}, so you won't need to explain it again.{hours} "
                "You can keep chatting with me meanwhile.")

    def for_sender(self, sender_id: str) -> list[Ticket]:
        """The shopper's tickets, newest first."""
        if not valid_id(sender_id):
            return []
        with self._read() as db:
            return self._get(db, "sender_id = ?", (sender_id,))

    def get(self, ticket_id: str) -> Ticket | None:
        """A ticket by id, for the support team (shoppers go through :meth:`for_sender`)."""
        if not valid_id(ticket_id):
            return None
        with self._read() as db:
            found = self._get(db, "ticket_id = ?", (ticket_id,))
        return found[0] if found else None

    def close(self, ticket_id: str, *, now: datetime | None = None) -> bool:
        with self._write() as db:
            return db.execute("UPDATE tickets SET status = ?, updated_at = ? WHERE ticket_id = ?",
                              (TicketStatus.CLOSED.value, to_db(as_utc(now) or now_utc()),
                               ticket_id)).rowcount == 1

    def delete_for(self, sender_id: str) -> int:
        """Delete the shopper's tickets ("forget me"); returns how many."""
        if not valid_id(sender_id):
            return 0
        with self._write() as db:
            return db.execute("DELETE FROM tickets WHERE sender_id = ?", (sender_id,)).rowcount

    @staticmethod
    def _insert(
        db: sqlite3.Connection, sender_id: str, reason: str, intent: str, body: str,
        dropped: int, now: datetime,
    ) -> str:
        for _attempt in range(20):
            ticket_id = f"T-{secrets.token_hex(3).upper()}"
            try:
                db.execute(
                    "INSERT INTO tickets (ticket_id, sender_id, reason, intent, transcript, "
                    "turns_dropped, status, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (ticket_id, sender_id, reason, intent, body, dropped,
                     TicketStatus.OPEN.value, to_db(now), to_db(now)))
            except sqlite3.IntegrityError:
                continue
            return ticket_id
        raise RuntimeError("could not draw a free ticket id")

    @staticmethod
    def _get(db: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> list[Ticket]:
        rows = db.execute(f"SELECT * FROM tickets WHERE {where} "
                          "ORDER BY created_at DESC, rowid DESC", params).fetchall()
        return [
            Ticket(ticket_id=r["ticket_id"], sender_id=r["sender_id"], reason=r["reason"],
                   intent=r["intent"], transcript=json.loads(r["transcript"]),
                   turns_dropped=r["turns_dropped"], status=r["status"],
                   created_at=from_db(r["created_at"]), updated_at=from_db(r["updated_at"]))
            for r in rows
        ]
