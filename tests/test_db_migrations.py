"""The shop database's schema is its migrations (shopcore.migrations), on SQLite and PostgreSQL.

New, old (made by ``create_all`` before migrations) and concurrently opened databases all end
at head and match ``shopcore.db``'s tables; `shopbot db upgrade` does it as installed; and
every store, with "forget me" purging Rasa's tracker table, works on a real PostgreSQL.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Column,
    Index,
    String,
    insert,
    inspect,
    text,
)

from recsys.data import load_sequences, read_events_db
from recsys.events import EventType
from retrieval.catalog import Product, load_catalog
from shop.checkout import CheckoutCode, checkout, read_cart
from shop.orders import OrderStore
from shop.records import ShopRecords
from shop.rules import OrderRules
from shopcore import migrations
from shopcore.conversations import Purges
from shopcore.db import Database, close_databases, make_engine, metadata
from shopcore.links import LINKED
from shopcore.migrations.baseline import baseline_metadata
from shopcore.settings import PROJECT_ROOT, Settings
from tests.e2e import shopbot
from tests.rasa_events import RASA_EVENTS

HEAD = "0006"
ME, OTHER = "shopper-1", "shopper-2"
ADDRESS = "12 MG Road, Bengaluru 560001"
OLD_ORDER = {
    "order_id": "SB-123456", "sender_id": "old", "status": "placed",
    "placed_at": datetime(2025, 1, 1, tzinfo=UTC), "address": "1 Old Road, Pune 411001",
    "payment_method": "upi", "subtotal": 10.0, "shipping_fee": 0.0, "total": 10.0,
    "invoice_number": "INV-2025-123456",
}
OLD_ITEM = {"order_id": "SB-123456", "line_no": 1, "product_id": "900001", "name": "Old tee",
            "size": "M", "qty": 1, "unit_price": 10.0}

def differences(url: str) -> list[object]:
    """What alembic's autogenerate would change to make the database match the tables."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def run_sql(url: str, statement: str) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(statement))]
    finally:
        engine.dispose()


def tables_of(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


# -- fresh and old databases -----------------------------------------------------------------


def test_a_new_database_migrates_to_head_and_matches_the_tables(any_database_url: str) -> None:
    url = any_database_url
    assert migrations.current(url) is None
    assert migrations.upgrade(url) == HEAD == migrations.head()
    assert migrations.current(url) == HEAD
    assert set(metadata.tables) | {"alembic_version"} == tables_of(url)
    assert differences(url) == []
    assert migrations.upgrade(url) == HEAD  # again: nothing to do
    assert run_sql(url, "SELECT version_num FROM alembic_version") == [(HEAD,)]


def test_the_comparison_sees_the_old_schema_differ(any_database_url: str) -> None:
    """What lets the comparisons here fail: the schema before 0002 lacks checkout_key,
    before 0003 the staff table, before 0004 the ticket holder and the widget outbox,
    before 0005 the search log, before 0006 the staff's NLU labels."""
    engine = make_engine(any_database_url)
    baseline_metadata().create_all(engine)
    engine.dispose()
    found = differences(any_database_url)
    assert sorted(d[0] for d in found) == [  # type: ignore[index]
        "add_column", "add_column", "add_column", "add_index", "add_index", "add_index",
        "add_index", "add_table", "add_table", "add_table", "add_table"]
    assert sorted(d[3].name for d in found if d[0] == "add_column") == [  # type: ignore[index]
        "checkout_key", "held_at", "held_by"]
    assert sorted(d[1].name for d in found if d[0] == "add_table") == [  # type: ignore[index]
        "nlu_reviews", "searches", "staff", "widget_outbox"]


@pytest.mark.parametrize("made", ["before checkout keys", "with checkout keys"])
def test_a_database_from_before_migrations_is_stamped_and_upgraded_keeping_its_rows(
    any_database_url: str, made: str
) -> None:
    url = any_database_url
    # What Database() did before migrations, with that code's tables: the baseline, and in
    # the later code the checkout key (staff came with 0003, the ticket holder with 0004).
    old = baseline_metadata()
    if made == "with checkout keys":
        orders_then = old.tables["orders"]
        orders_then.append_column(Column("checkout_key", String(64)))
        Index("orders_checkout_key", orders_then.c.checkout_key, unique=True)
    made_then = list(old.tables.values())
    engine = make_engine(url)
    old.create_all(engine, tables=made_then)
    with engine.begin() as conn:
        conn.execute(insert(old.tables["orders"]).values(OLD_ORDER))
        conn.execute(insert(old.tables["order_items"]).values(OLD_ITEM))
    engine.dispose()
    assert migrations.current(url) is None

    database = Database(url)  # a process opening it brings it to head (alembic is here)
    try:
        assert migrations.current(url) == HEAD
        assert differences(url) == []
        order = OrderStore(database).get_for("old", "SB-123456")
        assert order is not None and order.total == 10 and order.item_count == 1
        assert run_sql(url, "SELECT order_id, checkout_key FROM orders") == [("SB-123456", None)]
    finally:
        database.dispose()


_UPGRADE = """
import logging, sys, time
from pathlib import Path
from shopcore.migrations import upgrade
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.002)
print("at", upgrade(sys.argv[1]), flush=True)
"""


def test_two_processes_upgrading_at_once_both_succeed_and_migrate_once(
    any_database_url: str, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    processes = [subprocess.Popen([sys.executable, "-c", _UPGRADE, any_database_url, str(go)],
                                  cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    time.sleep(2.0)  # both have imported alembic and wait for the word
    go.touch()
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert all(out.strip().endswith(f"at {HEAD}") for out in outputs), outputs
    both = "".join(outputs)
    assert len(re.findall(r"Running upgrade\s+-> 0001", both)) == 1, both
    assert len(re.findall(r"Running upgrade 0001 -> 0002", both)) == 1, both
    assert len(re.findall(r"Running upgrade 0002 -> 0003", both)) == 1, both
    assert run_sql(any_database_url, "SELECT version_num FROM alembic_version") == [(HEAD,)]
    assert differences(any_database_url) == []


def test_shopbot_db_upgrade_as_installed_from_another_directory(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    env = {"SHOPBOT_DATABASE_URL": fresh_postgres_url, "SHOPBOT_VAR_DIR": str(tmp_path / "var")}
    before = shopbot("db", "current", cwd=tmp_path, env=env, timeout=120)
    assert before.returncode == 0 and before.stdout.strip() == "none", before.stderr
    done = shopbot("db", "upgrade", cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"revision {HEAD}" in done.stderr
    assert set(metadata.tables) <= tables_of(fresh_postgres_url)
    after = shopbot("db", "current", cwd=tmp_path, env=env, timeout=120)
    assert after.returncode == 0 and after.stdout.strip() == HEAD, after.stderr
    broken = shopbot("db", "upgrade", cwd=tmp_path, timeout=120,
                     env={**env, "SHOPBOT_DATABASE_URL": fresh_postgres_url + "_missing"})
    assert broken.returncode == 1 and "could not migrate" in broken.stderr


# -- the stores on each engine ---------------------------------------------------------------


@pytest.fixture(scope="module")
def by_id() -> dict[str, Product]:
    return {p.id: p for p in load_catalog()[0]}


def _tracker_events(url: str, sender: str, n: int, data: str = "{}") -> None:
    """What Rasa's SQLTrackerStore.save writes (it makes the table on first use)."""
    engine = make_engine(url)
    try:
        RASA_EVENTS.create(engine, checkfirst=True)
        with engine.begin() as conn:
            conn.execute(insert(RASA_EVENTS), [
                {"sender_id": sender, "type_name": "user", "timestamp": time.time(),
                 "data": data} for _ in range(n)])
    finally:
        engine.dispose()


def _tracker_rows(url: str, sender: str) -> int:
    return run_sql(url, f"SELECT COUNT(*) FROM events WHERE sender_id = '{sender}'")[0][0]


def test_every_store_and_forget_me_round_trip(
    any_database_url: str, tmp_path: Path, by_id: dict[str, Product]
) -> None:
    """Cart, checkout, profile, ticket, link and events, then "forget me" with the tracker
    where the settings put it: beside the shop's tables on PostgreSQL, a file on SQLite."""
    settings = Settings(database_url=any_database_url, var_dir=tmp_path / "var")
    tracker = settings.tracker_store_url
    assert (tracker == any_database_url) == any_database_url.startswith("postgresql")
    records = ShopRecords.open(settings, OrderRules())
    try:
        assert migrations.current(any_database_url) == HEAD

        cart = records.cart
        assert cart.add(ME, by_id["900001"], "M", 2).ok and cart.add(ME, by_id["900002"], "S").ok
        assert cart.remove(ME, "900002").ok
        assert [(line.product_id, line.qty) for line in cart.lines(ME)] == [("900001", 2)]
        seen = read_cart(cart, ME, by_id.get)
        placed = checkout(records.orders, cart, seen, ADDRESS, "upi")
        assert placed.code is CheckoutCode.PLACED and placed.order.item_count == 2
        again = checkout(records.orders, cart, seen, ADDRESS, "upi")
        assert again.code is CheckoutCode.ALREADY_PLACED and again.order == placed.order
        assert cart.lines(ME) == [] and records.orders.orders_of(ME) == [placed.order]

        records.profiles.update(ME, gender="Women", brands=["Nike"])
        assert records.profiles.get(ME).brands == ["Nike"]
        assert records.tickets.create(ME, "help", [{"role": "user", "text": "help"}]).ok
        assert len(records.tickets.for_sender(ME)) == 1
        assert records.links.redeem("telegram:42", records.links.issue(ME)) == LINKED
        assert records.links.canonical("telegram:42") == ME
        records.events.log(ME, ["900001", "900002"], EventType.OPENED)
        records.events.log(OTHER, ["900003"], EventType.OPENED)
        assert records.events.recent_items(ME) == ["900001", "900002"]
        logged = sorted(read_events_db(any_database_url, "product_events"))
        assert [(user, item) for user, item, _, _ in logged] == [
            (ME, "900001"), (ME, "900002"), (OTHER, "900003")]
        assert load_sequences(any_database_url, table="product_events").n_interactions == 3
        log = records.searches
        log.log(ME, "Red  Dresses", kind="text", results=5, exact=5, ts=100)
        log.log(OTHER, "red dresses", kind="text", results=0, ts=101)
        log.log(OTHER, "gold sneakers", kind="text", results=4, exact=0,
                relaxed=["colour"], ts=102)
        log.log(OTHER, "", kind="photo", results=5, ts=103)
        log.log(OTHER, "old", kind="text", results=0, ts=10)  # before the period
        assert [(c.query, c.searches, c.nothing_found, c.relaxed)
                for c in log.counts(50, 200)] == [
            ("red dresses", 2, 1, 0), ("gold sneakers", 1, 0, 1)]
        log.log(ME, "gold sneakers", kind="text", results=0, ts=104)
        assert [(c.query, c.nothing_found + c.relaxed)
                for c in log.counts(50, 200, problems_only=True)] == [
            ("gold sneakers", 2), ("red dresses", 1)]
        assert log.outcomes([ME, OTHER, "nobody"]) == {ME: (1, 1), OTHER: (2, 2)}

        uploads = records.uploads
        assert uploads is not None
        uploads.directory.mkdir(parents=True, exist_ok=True)
        ref = "b" * 32 + ".jpg"
        (uploads.directory / ref).write_bytes(b"photo")
        _tracker_events(tracker, ME, 2)
        _tracker_events(tracker, ME, 1, json.dumps({"metadata": {"upload": {"ref": ref}}}))
        _tracker_events(tracker, OTHER, 2)

        report = records.forget(ME)
        assert report.ok, report.failed
        assert report.deleted["conversation"] == 3 and report.deleted["events"] == 2
        assert report.deleted["profile"] == 1 and report.deleted["tickets"] == 1
        assert report.deleted["searches"] == 2 and ME not in log.outcomes([ME, OTHER])
        assert report.orders_anonymised == 1
        assert not (uploads.directory / ref).exists()
        assert records.profiles.get(ME).is_empty and records.tickets.for_sender(ME) == []
        assert records.events.recent_items(ME) == [] and records.orders.orders_of(ME) == []
        assert records.links.canonical("telegram:42") == "telegram:42"

        _tracker_events(tracker, ME, 4)  # Rasa saves the forget turn after the action
        purges = Purges.from_settings(settings)
        assert sorted(purges.run()) == sorted([ME, "telegram:42"])
        assert _tracker_rows(tracker, ME) == 0 and _tracker_rows(tracker, OTHER) == 2
        assert purges.run() == []
        assert records.events.recent_items(OTHER) == ["900003"]
    finally:
        close_databases()
