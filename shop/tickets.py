"""Human handoff: a support ticket with the conversation so far, and what happens next.

A ticket is never lost to bad input: odd characters are dropped, long turns and long
conversations are shortened (the newest turns are kept: they say what went wrong), and a
missing reason becomes "(no reason given)". A shopper asking again within the hour gets
their open ticket back (with the fresher transcript) instead of a pile of duplicates.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from shopcore.db import Database, as_utc, now_utc, tickets, widget_outbox
from shopcore.ids import short, valid_id
from shopcore.text import BadInput, clean_text, clip

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
    held_by: str | None = None  # the staff member talking with the shopper (their email)
    held_at: datetime | None = None


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


class TicketStore:
    """Handoff tickets per shopper, for the support team to pick up."""

    def __init__(
        self, database: Database, *, contact_hours: str = "",
        response_time: str = DEFAULT_RESPONSE_TIME,
    ) -> None:
        """``contact_hours``: the policy's ``contact.hours``, quoted in "what happens next"."""
        self.db = database
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
        body = [t.model_dump() for t in turns]
        with self.db.write(sender_id) as conn:
            recent = conn.execute(
                select(tickets.c.ticket_id)
                .where(tickets.c.sender_id == sender_id,
                       tickets.c.status == TicketStatus.OPEN.value,
                       tickets.c.created_at >= now - REUSE_WITHIN)
                .order_by(tickets.c.created_at.desc()).limit(1)).first()
            if recent:
                ticket_id = recent.ticket_id
                conn.execute(update(tickets).where(tickets.c.ticket_id == ticket_id).values(
                    reason=why, intent=intent, transcript=body, turns_dropped=dropped,
                    updated_at=now))
            else:
                ticket_id = _insert(conn, sender_id, why, intent, body, dropped, now)
            ticket = _get(conn, tickets.c.ticket_id == ticket_id)[0]
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
        with self.db.read() as conn:
            return _get(conn, tickets.c.sender_id == sender_id)

    def get(self, ticket_id: str) -> Ticket | None:
        """A ticket by id, for the support team (shoppers go through :meth:`for_sender`)."""
        if not valid_id(ticket_id):
            return None
        with self.db.read() as conn:
            found = _get(conn, tickets.c.ticket_id == ticket_id)
        return found[0] if found else None

    def open_tickets(self, limit: int = 200) -> list[Ticket]:
        """The open tickets, newest first: the support team's inbox (the staff console)."""
        with self.db.read() as conn:
            return _get(conn, tickets.c.status == TicketStatus.OPEN.value, limit)

    def take(self, ticket_id: str, staff_email: str, *, now: datetime | None = None
             ) -> Ticket | None:
        """``staff_email`` takes the open ticket's conversation over from the bot; None when
        the ticket is closed, unknown or already held by somebody else (one person at a time:
        a conditional update, so two staff clicking at once cannot both win)."""
        if not valid_id(ticket_id):
            return None
        now = as_utc(now) or now_utc()
        with self.db.write(f"ticket {ticket_id}") as conn:
            taken = conn.execute(update(tickets).where(
                tickets.c.ticket_id == ticket_id,
                tickets.c.status == TicketStatus.OPEN.value,
                (tickets.c.held_by.is_(None)) | (tickets.c.held_by == staff_email),
            ).values(held_by=staff_email, held_at=now, updated_at=now)).rowcount == 1
            found = _get(conn, tickets.c.ticket_id == ticket_id) if taken else []
        if taken:
            logger.info("ticket %s taken by staff", ticket_id)
        return found[0] if found else None

    def untake(self, ticket_id: str, staff_email: str) -> bool:
        """Undo :meth:`take` (the bot could not be paused): nobody holds the ticket again."""
        with self.db.write(f"ticket {ticket_id}") as conn:
            return conn.execute(update(tickets).where(
                tickets.c.ticket_id == ticket_id, tickets.c.held_by == staff_email,
            ).values(held_by=None, held_at=None)).rowcount == 1

    def hand_back(self, ticket_id: str, staff_email: str, *, now: datetime | None = None
                  ) -> Ticket | None:
        """The holder hands the conversation back to the bot: the ticket is closed. None when
        ``staff_email`` does not hold it."""
        if not valid_id(ticket_id):
            return None
        now = as_utc(now) or now_utc()
        with self.db.write(f"ticket {ticket_id}") as conn:
            done = conn.execute(update(tickets).where(
                tickets.c.ticket_id == ticket_id, tickets.c.held_by == staff_email,
                tickets.c.status == TicketStatus.OPEN.value,
            ).values(status=TicketStatus.CLOSED.value, held_by=None, held_at=None,
                     updated_at=now)).rowcount == 1
            found = _get(conn, tickets.c.ticket_id == ticket_id) if done else []
        if done:
            logger.info("ticket %s handed back to the bot", ticket_id)
        return found[0] if found else None

    def handoff_state(self, sender_id: str) -> tuple[bool, str | None]:
        """Whether the shopper has an open ticket, and the staff member (email) holding
        their conversation if anyone does."""
        if not valid_id(sender_id):
            return False, None
        with self.db.read() as conn:
            rows = conn.execute(
                select(tickets.c.held_by).where(tickets.c.sender_id == sender_id,
                                                tickets.c.status == TicketStatus.OPEN.value)
                .order_by(tickets.c.held_by.is_(None))).all()  # a held one first
        return bool(rows), rows[0].held_by if rows else None

    def holder(self, sender_id: str) -> str | None:
        """The staff member (email) holding the shopper's conversation, if anyone does."""
        return self.handoff_state(sender_id)[1]

    def close(self, ticket_id: str, *, now: datetime | None = None) -> bool:
        with self.db.write(f"ticket {ticket_id}") as conn:
            return conn.execute(update(tickets).where(tickets.c.ticket_id == ticket_id).values(
                status=TicketStatus.CLOSED.value, held_by=None, held_at=None,
            updated_at=as_utc(now) or now_utc())
            ).rowcount == 1

    def delete_for(self, sender_id: str) -> int:
        """Delete the shopper's tickets and what staff wrote them ("forget me"); returns how
        many tickets."""
        if not valid_id(sender_id):
            return 0
        with self.db.write(sender_id) as conn:
            conn.execute(delete(widget_outbox).where(widget_outbox.c.sender_id == sender_id))
            return conn.execute(delete(tickets).where(tickets.c.sender_id == sender_id)).rowcount


def _insert(
    conn: Connection, sender_id: str, reason: str, intent: str, body: list[dict[str, Any]],
    dropped: int, now: datetime,
) -> str:
    for _attempt in range(20):
        ticket_id = f"T-{secrets.token_hex(3).upper()}"
        if conn.execute(select(tickets.c.ticket_id)
                        .where(tickets.c.ticket_id == ticket_id)).first():
            continue
        conn.execute(insert(tickets).values(
            ticket_id=ticket_id, sender_id=sender_id, reason=reason, intent=intent,
            transcript=body, turns_dropped=dropped, status=TicketStatus.OPEN.value,
            created_at=now, updated_at=now))
        return ticket_id
    raise RuntimeError("could not draw a free ticket id")


def _get(conn: Connection, where: ColumnElement[bool], limit: int | None = None) -> list[Ticket]:
    rows = conn.execute(select(tickets).where(where)
                        .order_by(tickets.c.created_at.desc(), tickets.c.ticket_id.desc())
                        .limit(limit))
    return [
        Ticket(ticket_id=r.ticket_id, sender_id=r.sender_id, reason=r.reason, intent=r.intent,
               transcript=r.transcript, turns_dropped=r.turns_dropped, status=r.status,
               created_at=r.created_at, updated_at=r.updated_at, held_by=r.held_by,
               held_at=r.held_at)
        for r in rows
    ]
