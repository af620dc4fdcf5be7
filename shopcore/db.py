"""The shop database: every shop table in one schema, one engine per URL, one way to write.

Orders, carts, profiles, tickets, channel links, the interaction log and the staff's console
accounts live in one database (``Settings.database_url``): a SQLite file by default,
PostgreSQL when a shop outgrows one machine. Everything goes through SQLAlchemy Core, so the
same statements run on both, in both virtualenvs (SQLAlchemy 1.4 beside Rasa, 2.x beside
the actions). The tables below are the one description of the schema that queries use; the
DDL that makes a database match them is the versioned migrations in
:mod:`shopcore.migrations`.

Writes take :meth:`Database.write`: one transaction in which a check still holds when it
commits. On SQLite that is ``BEGIN IMMEDIATE`` (one writer at a time, across processes; WAL
keeps readers unblocked); on PostgreSQL the transaction takes an advisory lock on the
shopper it changes, so two replicas can't interleave a check with the other's write.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    false,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.types import DateTime, TypeDecorator

BUSY_TIMEOUT_S = 10.0
UTC = timezone.utc  # datetime.UTC is 3.11+; Rasa runs 3.10


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out.

    SQLite keeps them as ISO text to the second (as the shop always has, so older files
    stay readable); PostgreSQL as ``timestamptz``. Naive values are taken as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        moment = as_utc(value)
        if moment is None:
            return None
        moment = moment.replace(microsecond=0)
        return moment.isoformat(timespec="seconds") if dialect.name == "sqlite" else moment

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return as_utc(value)


def as_utc(moment: datetime | None) -> datetime | None:
    """Naive datetimes are taken as UTC, so callers and tests can't mix zones by accident."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)  # what the database keeps


metadata = MetaData()
Id = String(128)

orders = Table(
    "orders", metadata,
    Column("order_id", String(16), primary_key=True),
    Column("sender_id", Id, nullable=False),
    Column("status", String(32), nullable=False),
    Column("placed_at", UTCDateTime, nullable=False),
    Column("packed_at", UTCDateTime),
    Column("shipped_at", UTCDateTime),
    Column("expected_delivery", UTCDateTime),
    Column("delivered_at", UTCDateTime),
    Column("cancelled_at", UTCDateTime),
    Column("address", Text, nullable=False),
    Column("payment_method", String(32), nullable=False),
    Column("subtotal", Float, nullable=False),
    Column("shipping_fee", Float, nullable=False),
    Column("cod_fee", Float, nullable=False, server_default="0"),
    Column("total", Float, nullable=False),
    Column("invoice_number", String(32), nullable=False, unique=True),
    # The checkout that made the order (see shop.checkout): a retried checkout finds its
    # order instead of making a second one. NULL for orders made any other way.
    Column("checkout_key", String(64)),
    Index("orders_by_sender", "sender_id", "placed_at"),
    Index("orders_checkout_key", "checkout_key", unique=True),
)
order_items = Table(
    "order_items", metadata,
    Column("order_id", String(16), ForeignKey("orders.order_id", ondelete="CASCADE"),
           primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("product_id", Id, nullable=False),
    Column("name", Text, nullable=False),
    Column("size", String(32), nullable=False, server_default=""),
    Column("qty", Integer, CheckConstraint("qty > 0"), nullable=False),
    Column("unit_price", Float, CheckConstraint("unit_price >= 0"), nullable=False),
    Column("returned_qty", Integer, nullable=False, server_default="0"),
)
refunds = Table(
    "refunds", metadata,
    Column("refund_id", String(32), primary_key=True),
    Column("order_id", String(16), ForeignKey("orders.order_id", ondelete="CASCADE"),
           nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("lines", JSON, nullable=False),
    Column("amount", Float, nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("approved_at", UTCDateTime),
    Column("refunded_at", UTCDateTime),
    Index("refunds_by_order", "order_id"),
)
cart_lines = Table(
    "cart_lines", metadata,
    Column("sender_id", Id, primary_key=True),
    Column("product_id", Id, primary_key=True),
    Column("size", String(32), primary_key=True, server_default=""),
    Column("qty", Integer, CheckConstraint("qty > 0"), nullable=False),
    Column("added_at", UTCDateTime, nullable=False),
    Column("position", Integer, nullable=False, server_default="0"),  # order of adding
)
profiles = Table(
    "profiles", metadata,
    Column("sender_id", Id, primary_key=True),
    Column("data", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
tickets = Table(
    "tickets", metadata,
    Column("ticket_id", String(16), primary_key=True),
    Column("sender_id", Id, nullable=False),
    Column("reason", Text, nullable=False),
    Column("intent", String(80), nullable=False, server_default=""),
    Column("transcript", JSON, nullable=False),
    Column("turns_dropped", Integer, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # The staff member (email) talking with the shopper in person; NULL: nobody, the bot.
    Column("held_by", String(254)),
    Column("held_at", UTCDateTime),
    Index("tickets_by_sender", "sender_id", "created_at"),
)
sender_links = Table(
    "sender_links", metadata,
    Column("alias", Id, primary_key=True),
    Column("canonical", Id, nullable=False),
    Column("linked_at", Float, nullable=False),
    Index("sender_links_canonical", "canonical"),
)
sender_link_codes = Table(
    "sender_link_codes", metadata,
    Column("code", String(6), primary_key=True),
    Column("sender", Id, nullable=False, unique=True),
    Column("expires_at", Float, nullable=False),
)
sender_link_failures = Table(
    "sender_link_failures", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sender", Id, nullable=False),
    Column("at", Float, nullable=False),
    Index("sender_link_failures_at", "at"),
)
# Conversations "forget me" asked to delete once Rasa has saved the turn
# (shopcore.conversations).
pending_purges = Table(
    "pending_purges", metadata,
    Column("sender_id", Id, primary_key=True),
)
# Codes handed out, for the per-sender issuing limit.
sender_link_issued = Table(
    "sender_link_issued", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sender", Id, nullable=False),
    Column("at", Float, nullable=False),
    Index("sender_link_issued_sender_at", "sender", "at"),
)
# What each shopper was shown, opened, carted and bought: the recommender's training data.
# Not "events": that is the name of Rasa's tracker table, which may share the database.
product_events = Table(
    "product_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sender_id", Id, nullable=False),
    Column("product_id", Id, nullable=False),
    Column("event_type", String(16), nullable=False),
    Column("ts", Float, nullable=False),
    Index("product_events_by_sender", "sender_id", "ts"),
)

# Every new product search (not "show more"): what was asked, how many products came back
# and what had to be relaxed: the console's "what the catalog lacks" (shop.searches).
searches = Table(
    "searches", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sender_id", Id, nullable=False),
    Column("query", Text, nullable=False),  # the shopper's words ("" for a bare photo)
    Column("kind", String(8), nullable=False),  # text | photo
    Column("results", Integer, nullable=False),  # products shown on the first page
    Column("exact", Integer),  # how many matched everything asked (NULL: not counted)
    Column("relaxed", String(120), nullable=False, server_default=""),  # e.g. "price,colour"
    Column("predicted", String(80)),  # photo searches: the product type the photo showed
    Column("confidence", Float),  # and the classifier's calibrated score for it
    Column("ts", Float, nullable=False),
    Index("searches_ts", "ts"),
    Index("searches_by_sender", "sender_id", "ts"),
)

# Shopper messages the bot was unsure of, labelled by staff in the console ("teach the
# bot"); `shopbot nlu export` writes them as Rasa training data (shop.teaching).
nlu_reviews = Table(
    "nlu_reviews", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("text_key", String(300), nullable=False, unique=True),  # lower-case, spaces squeezed
    Column("text", Text, nullable=False),  # as the shopper wrote it (the training example)
    Column("intent", String(80), nullable=False),  # the right intent, or out_of_scope
    Column("reviewed_by", String(254), nullable=False),
    Column("reviewed_at", UTCDateTime, nullable=False),
    Column("exported_at", UTCDateTime),
)

# Messages for the chat widget sent outside a turn (a staff member's replies, "you are
# talking with a person"): written by the REST channel's output channel in Rasa's process,
# read by the widget's poll through the web server (shopcore.outbox).
widget_outbox = Table(
    "widget_outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sender_id", Id, nullable=False),
    Column("message", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("widget_outbox_by_sender", "sender_id", "id"),
)

# The shop's staff, who sign in to the web console (shop.staff): argon2 password hashes only.
staff = Table(
    "staff", metadata,
    Column("staff_id", String(32), primary_key=True),  # random, never reused
    Column("email", String(254), nullable=False, unique=True),  # kept lower-case
    Column("password_hash", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("last_login_at", UTCDateTime),
)


class Database:
    """One engine over the shop database, with read and write transactions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine: Engine = make_engine(url)
        # The schema is the migrations' business (shopcore.migrations); a process that finds
        # it behind brings it up to date where alembic is installed (the app's virtualenv).
        # Beside Rasa there is no alembic: that process works with the schema it finds.
        from shopcore import migrations

        if migrations.AVAILABLE and migrations.is_behind(self.engine):
            migrations.upgrade(url)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (on SQLite, WAL readers never wait for the writer)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self, lock_key: str | None = None) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises.

        ``lock_key`` (usually the shopper's id) serialises writes about one shopper across
        processes on PostgreSQL; SQLite serialises every write anyway."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(shop_write=True)
            with conn.begin():
                if lock_key is not None and not self.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                 {"key": zlib.crc32(lock_key.encode())})
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()


def driver_url(url: str) -> str:
    """``url`` with the PostgreSQL driver this virtualenv has: shops write plain
    ``postgresql://``, which SQLAlchemy reads as psycopg2, but the app's virtualenv has only
    psycopg 3 (with SQLAlchemy 2); Rasa's has psycopg2 (with SQLAlchemy 1.4, no psycopg 3
    dialect), so there the URL stays as written."""
    plain = "postgresql://"
    if (url.startswith(plain) and importlib.util.find_spec("psycopg") is not None
            and importlib.util.find_spec("sqlalchemy.dialects.postgresql.psycopg") is not None):
        return "postgresql+psycopg://" + url.removeprefix(plain)
    return url


def as_url(location: str | Path) -> str:
    """An SQLAlchemy URL for ``location``: a URL as it is, a file path as a SQLite URL (what
    settings and callers passed before databases were URLs)."""
    text = str(location)
    return text if "://" in text else f"sqlite:///{Path(text)}"


def make_engine(url: str) -> Engine:
    """An engine for the shop's statements: on SQLite, WAL and ``BEGIN IMMEDIATE`` for
    writes (see :meth:`Database.write`); elsewhere the driver :func:`driver_url` picks."""
    if not url.startswith("sqlite"):
        return create_engine(driver_url(url), future=True, pool_pre_ping=True)
    if url.startswith("sqlite:///"):  # a new shop's var/ may not exist yet
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True,
                           connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we say BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        _use_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("shop_write")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL (kept in the file: a no-op after the first time). Switching
    needs the file to itself, and SQLite answers "locked" at once, without the busy timeout,
    when waiting could deadlock (processes opening a new file together): ask again."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


_databases: dict[str, Database] = {}
_lock = threading.Lock()


def open_database(url: str) -> Database:
    """The process's one :class:`Database` for ``url`` (engines are pools: share them)."""
    with _lock:
        found = _databases.get(url)
        if found is None:
            found = _databases[url] = Database(url)
        return found


def close_databases() -> None:
    """Dispose every engine (tests that delete database files; forked workers)."""
    with _lock:
        for database in _databases.values():
            database.dispose()
        _databases.clear()
