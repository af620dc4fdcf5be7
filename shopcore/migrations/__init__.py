"""Versioned schema changes of the shop database (alembic, run in-process, no alembic.ini).

Revisions live in ``versions/``; ``shopcore.db``'s tables say what the schema is at head.
:func:`upgrade` brings a database to head under a lock, so two processes starting at once
don't both migrate: one transaction that takes ``pg_advisory_xact_lock`` on PostgreSQL, or
``BEGIN IMMEDIATE`` on SQLite (one writer per file). A database made before migrations (by
``metadata.create_all``, no ``alembic_version`` table) is completed and stamped with the
revision it matches, then upgraded: never dropped or recreated.

Alembic is installed in the app's virtualenv only; Rasa's imports this module too (through
``shopcore.db``), finds ``AVAILABLE`` false, and leaves the schema to the app.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from shopcore.db import make_engine

try:
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    AVAILABLE = True
except ImportError:  # Rasa's virtualenv
    AVAILABLE = False

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
BASELINE = "0001"  # the schema before migrations
CHECKOUT_KEY = "0002"  # orders.checkout_key
LOCK_KEY = 0x5B0B_D8  # pg_advisory_xact_lock key of migrations (shop writes hash sender ids)


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    """The newest revision this code knows."""
    return _script().get_current_head()  # type: ignore[return-value]


def _revision(conn: Connection) -> str | None:
    """What alembic_version says (read directly: one cheap query, no alembic set-up)."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def current(url: str) -> str | None:
    """The revision the database at ``url`` is at (None: new, or made before migrations)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return _revision(conn)
    finally:
        engine.dispose()


def is_behind(engine: Engine) -> bool:
    """Whether the database needs :func:`upgrade`. A revision this code doesn't know (a newer
    release migrated it) is left alone: newer schemas only ever add."""
    with engine.connect() as conn:
        revision = _revision(conn)
    if revision == head():
        return False
    if revision is not None and revision not in {s.revision for s in _script().walk_revisions()}:
        logger.warning("the shop database is at revision %s, newer than this code (%s)",
                       revision, head())
        return False
    return True


def upgrade(url: str) -> str:
    """Bring the database at ``url`` to head (idempotent); the revision it is at after."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(shop_write=True)  # SQLite: BEGIN IMMEDIATE
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
                _adopt_unversioned(conn)
                before = _revision(conn)
                command.upgrade(_config(conn), "head")
                after = _revision(conn)
        if before != after:
            logger.info("shop database migrated from %s to %s", before, after)
        return after  # type: ignore[return-value]
    finally:
        engine.dispose()


def _adopt_unversioned(conn: Connection) -> None:
    """Stamp a database made by ``metadata.create_all`` before migrations: first the tables
    it lacks are made (as that code did on every start), then it gets the revision it
    matches: 0002 when orders has checkout_key, else 0001."""
    from shopcore.migrations.baseline import baseline_metadata

    baseline = baseline_metadata()
    inspector = inspect(conn)
    tables = set(inspector.get_table_names())
    if "alembic_version" in tables or not tables & set(baseline.tables):
        return  # versioned already, or new (maybe holding only Rasa's tracker tables)
    baseline.create_all(conn, checkfirst=True)
    columns = {c["name"] for c in inspect(conn).get_columns("orders")}
    revision = CHECKOUT_KEY if "checkout_key" in columns else BASELINE
    logger.warning("the shop database predates migrations: stamping it at revision %s",
                   revision)
    command.stamp(_config(conn), revision)
