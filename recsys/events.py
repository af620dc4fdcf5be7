"""The shop's interaction log: what each shopper saw, opened, carted and bought.

Every product shown or handled in a conversation is appended here (SQLite by default, one
file, safe for the action server's concurrent requests); the same log trains the shop's
recommender (`shopbot recsys train --events var/events.db`) and feeds the shopper's recent
history at serving time.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

logger = logging.getLogger(__name__)

MAX_ID_CHARS = 128  # sender and product ids longer than this are not ids
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sender_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_sender ON events (sender_id, ts);
"""


class EventType(StrEnum):
    """How strongly a shopper engaged with a product."""

    SHOWN = "shown"  # in a results page or a recommendation
    OPENED = "opened"  # asked for details, compared, or "similar to this one"
    ADDED_TO_CART = "added_to_cart"
    PURCHASED = "purchased"


# Being shown a product says little about taste; the model learns from the rest.
INTERACTION_TYPES: tuple[EventType, ...] = (
    EventType.OPENED,
    EventType.ADDED_TO_CART,
    EventType.PURCHASED,
)


@dataclass(frozen=True)
class Event:
    sender_id: str
    product_id: str
    event_type: str
    ts: float


class EventLog:
    """Append-only SQLite event log with per-shopper reads and a right to be forgotten."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with closing(self._connect()) as db, db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        return db

    def log(
        self,
        sender_id: str,
        product_ids: Iterable[str],
        event_type: EventType | str,
        ts: float | None = None,
    ) -> int:
        """Record one event per product; bad ids are skipped with a log line, never raised."""
        kind = EventType(event_type)
        when = time.time() if ts is None else ts
        if not _valid_id(sender_id):
            logger.warning("event not logged: bad sender id %r", str(sender_id)[:40])
            return 0
        rows = [(sender_id, pid, kind.value, when) for pid in product_ids if _valid_id(pid)]
        if not rows:
            return 0
        with self._lock, closing(self._connect()) as db, db:
            db.executemany(
                "INSERT INTO events (sender_id, product_id, event_type, ts) VALUES (?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def log_many(self, events: Iterable[Event]) -> int:
        """Bulk insert (the simulator writes hundreds of thousands of events at once)."""
        rows = [
            (e.sender_id, e.product_id, EventType(e.event_type).value, e.ts)
            for e in events
            if _valid_id(e.sender_id) and _valid_id(e.product_id)
        ]
        with self._lock, closing(self._connect()) as db, db:
            db.executemany(
                "INSERT INTO events (sender_id, product_id, event_type, ts) VALUES (?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def recent_items(
        self,
        sender_id: str,
        limit: int = 50,
        event_types: Sequence[EventType] = INTERACTION_TYPES,
    ) -> list[str]:
        """The shopper's last ``limit`` distinct products, oldest first (a model's history)."""
        placeholders = ",".join("?" for _ in event_types)
        with closing(self._connect()) as db:
            rows = db.execute(
                f"SELECT product_id FROM events WHERE sender_id = ? "
                f"AND event_type IN ({placeholders}) ORDER BY ts DESC, id DESC LIMIT ?",
                (sender_id, *[t.value for t in event_types], limit * 4),
            ).fetchall()
        newest_first = list(dict.fromkeys(pid for (pid,) in rows))[:limit]
        return newest_first[::-1]

    def items_of(self, sender_id: str, event_types: Sequence[EventType]) -> set[str]:
        """Every product of these kinds for this shopper (e.g. bought: don't recommend again)."""
        placeholders = ",".join("?" for _ in event_types)
        with closing(self._connect()) as db:
            rows = db.execute(
                f"SELECT DISTINCT product_id FROM events WHERE sender_id = ? "
                f"AND event_type IN ({placeholders})",
                (sender_id, *[t.value for t in event_types]),
            ).fetchall()
        return {pid for (pid,) in rows}

    def iter_events(self, event_types: Sequence[EventType] = INTERACTION_TYPES) -> Iterator[Event]:
        """All events of these kinds in time order: the training data."""
        placeholders = ",".join("?" for _ in event_types)
        with closing(self._connect()) as db:
            cursor = db.execute(
                f"SELECT sender_id, product_id, event_type, ts FROM events "
                f"WHERE event_type IN ({placeholders}) ORDER BY ts, id",
                [t.value for t in event_types],
            )
            for row in cursor:
                yield Event(*row)

    def popularity(self, event_types: Sequence[EventType] = INTERACTION_TYPES) -> Counter[str]:
        placeholders = ",".join("?" for _ in event_types)
        with closing(self._connect()) as db:
            rows = db.execute(
                f"SELECT product_id, COUNT(*) FROM events WHERE event_type IN ({placeholders}) "
                f"GROUP BY product_id",
                [t.value for t in event_types],
            ).fetchall()
        return Counter(dict(rows))

    def forget(self, sender_id: str) -> int:
        """Delete everything logged for this shopper ("forget me"); returns rows removed."""
        with self._lock, closing(self._connect()) as db, db:
            return db.execute("DELETE FROM events WHERE sender_id = ?", (sender_id,)).rowcount

    def count(self) -> int:
        with closing(self._connect()) as db:
            return db.execute("SELECT COUNT(*) FROM events").fetchone()[0]


def _valid_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS and value.isprintable()
