"""What the shop's stores (orders, cart, profile, tickets) share: SQLite access, input checks.

All four stores may live in one SQLite file (``var/shop.db``, one table set each) or in
separate files; each store only creates and touches its own tables. Every store opens a
short-lived connection per operation (WAL, so readers never block the writer) and runs each
read-check-write in one ``BEGIN IMMEDIATE`` transaction, so the action server's concurrent
requests - threads or processes - can't interleave a check with someone else's write.
SQL is parameterised everywhere; shopper text only ever travels as a bound value.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)

MAX_ID_CHARS = 128  # same limit as recsys.events: longer sender/product ids are not ids
BUSY_TIMEOUT_S = 10.0
# Invisible characters that reorder text on screen ("trojan source"); never worth keeping.
_BIDI_CONTROLS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


class BadInput(ValueError):
    """Shopper input a store refuses; ``str(error)`` is a shopper-facing explanation."""


def valid_id(value: object) -> bool:
    """A sender or product id: short printable text (anything else is never looked up)."""
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS and value.isprintable()


def clean_text(value: object, *, what: str, max_chars: int, min_chars: int = 1) -> str:
    """Shopper text made safe to store, or BadInput saying what to fix.

    Control characters (NUL included), lone surrogates and bidi overrides are dropped,
    whitespace runs (newlines too) become one space; emoji and any script are kept. Text
    still too long after that is refused, not truncated: a cut address would be wrong.
    """
    if not isinstance(value, str):
        raise BadInput(f"Please type the {what} as text.")
    kept = []
    for ch in value:
        category = unicodedata.category(ch)
        if ch in _BIDI_CONTROLS or category in ("Cs", "Co", "Cn"):
            continue
        kept.append(" " if category == "Cc" or ch.isspace() else ch)
    text = " ".join("".join(kept).split())
    if len(text) < min_chars:
        if not text:
            raise BadInput(f"The {what} is empty; please type it again.")
        raise BadInput(f"The {what} looks too short; please give at least {min_chars} characters.")
    if len(text) > max_chars:
        raise BadInput(
            f"The {what} is too long ({len(text):,} characters); "
            f"please keep it under {max_chars:,}."
        )
    return text


def clip(text: str, max_chars: int) -> str:
    """Shorten text for storage where losing the tail is fine (transcripts, logs)."""
    return text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "…"


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)  # what the database keeps


def as_utc(moment: datetime | None) -> datetime | None:
    """Naive datetimes are taken as UTC, so callers and tests can't mix zones by accident."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def to_db(moment: datetime | None) -> str | None:
    moment = as_utc(moment)
    return moment.isoformat(timespec="seconds") if moment else None


def from_db(text: str | None) -> datetime | None:
    return as_utc(datetime.fromisoformat(text)) if text else None


def day_text(moment: datetime | None) -> str:
    """'5 Mar 2025' - the date format every shop reply uses."""
    return f"{moment.day} {moment:%b %Y}" if moment else "-"


def rupees(amount: float) -> str:
    return f"₹{amount:,.0f}" if float(amount).is_integer() else f"₹{amount:,.2f}"


def short(sender_id: object) -> str:
    """A sender id safe to put in a log line (bounded, repr-escaped)."""
    return repr(str(sender_id)[:40])


class SQLiteStore:
    """One store's tables in a SQLite file: schema on open, reads, and serialised writes."""

    SCHEMA = ""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one writer per process; SQLite locks across processes
        with self._lock, closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(f"BEGIN IMMEDIATE; {self.SCHEMA} COMMIT;")  # one sync, not one each

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys=ON")
        return db

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with closing(self._connect()) as db:
            yield db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: checks made inside it still hold when it commits."""
        with self._lock, closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
