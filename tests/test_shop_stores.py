"""The shop's own stores: orders, cart, profile, tickets and "forget me", on real SQLite files."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from recsys.events import EventType
from retrieval.catalog import SAMPLE_CATALOG, Product, load_catalog
from retrieval.policy import load_policy
from retrieval.query import SearchConstraints
from retrieval.vocab import CatalogVocabulary
from shop.cart import CartCode, CartStore, CartSummary
from shop.checkout import CheckoutCode, CheckoutOutcome, checkout, read_cart, recent_order
from shop.demo import DEMO_SENDERS, seed_demo_orders
from shop.events import EventLog
from shop.orders import REMOVED_ADDRESS, OrderCode, OrderStatus, OrderStore, RefundStatus
from shop.preferences import learn_from_text
from shop.privacy import forget_shopper
from shop.profile import Profile, ProfileStore, preferred_size, with_profile_defaults
from shop.rules import OrderRules
from shop.sizes import normalise_size
from shop.tickets import MAX_TURN_CHARS, MAX_TURNS, TicketStore
from shopcore import faults
from shopcore.conversations import delete_conversation, purge_requested, request_purge
from shopcore.db import Database, as_url, cart_lines, make_engine
from shopcore.db import orders as orders_table
from shopcore.ids import parse_order_id
from shopcore.links import LINKED, LinkStore
from shopcore.settings import PROJECT_ROOT

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
ME, OTHER = DEMO_SENDERS
INJECTION = "'; DROP TABLE orders; --"
HUGE = "x" * 10_000
ADDRESS = "12 MG Road, Bengaluru 560001"
# The demo orders of the first sender, by state (see orders._DEMO_ORDERS).
PLACED, PACKED, SHIPPED, OUT_FOR_DELIVERY = "SB-100101", "SB-100102", "SB-100103", "SB-100104"
DELIVERED, DELIVERED_LONG_AGO, CANCELLED = "SB-100105", "SB-100106", "SB-100107"
RETURN_REQUESTED, RETURNED = "SB-100108", "SB-100109"
OTHERS_ORDER = "SB-200103"  # the second sender's shipped order


@pytest.fixture(scope="module")
def products() -> list[Product]:
    return load_catalog()[0]


@pytest.fixture(scope="module")
def by_id(products: list[Product]) -> dict[str, Product]:
    return {p.id: p for p in products}


@pytest.fixture
def shop_db(tmp_path: Path) -> Path:
    return tmp_path / "shop.db"


def database(path: Path) -> Database:
    """The shop database in a SQLite file (each test has its own)."""
    return Database(f"sqlite:///{path}")


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory: pytest.TempPathFactory, products: list[Product]) -> Path:
    """The demo orders seeded once; each test gets its own copy (seeding costs a few syncs)."""
    path = tmp_path_factory.mktemp("seeded") / "shop.db"
    seeded = database(path)
    seed_demo_orders(OrderStore(seeded), products, now=NOW)
    seeded.dispose()  # the last connection closed checkpoints the WAL into the file
    assert not path.with_name("shop.db-wal").exists()  # checkpointed: the file is complete
    return path


@pytest.fixture
def orders(shop_db: Path, seeded_db: Path) -> OrderStore:
    shutil.copyfile(seeded_db, shop_db)
    return OrderStore(database(shop_db))


def _tables(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


# -- order ids -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "order sb 100234", "#SB-100234", "SB100234", "where is my order SB-100234?",
    "sb_100234", "Order no. 100234", "#100234", "my order #SB 100234 hasn't come",
])
def test_order_ids_are_found_in_free_text(text: str) -> None:
    assert parse_order_id(text) == "SB-100234"


@pytest.mark.parametrize("text", [
    "SB-10023", "SB-1002345", "order 12345", "100234", "XSB-100234", "", None, 100234,
    "tshirt size 100234x", HUGE, INJECTION,
])
def test_text_without_a_well_shaped_order_id_gives_none(text: object) -> None:
    assert parse_order_id(text) is None


# -- seeding ---------------------------------------------------------------------------------


def test_seeding_is_idempotent_and_deterministic(
    shop_db: Path, tmp_path: Path, products: list[Product], by_id: dict[str, Product]
) -> None:
    first = OrderStore(database(shop_db))
    assert seed_demo_orders(first, products, now=NOW) == 12
    assert seed_demo_orders(first, products, now=NOW) == 0
    assert seed_demo_orders(first, products, now=NOW + timedelta(days=3)) == 0
    assert first.count() == 12
    again = OrderStore(database(tmp_path / "again.db"))
    seed_demo_orders(again, list(reversed(products)), now=NOW)
    assert again.orders_of(ME) == first.orders_of(ME)

    mine = first.orders_of(ME)
    assert {o.status for o in mine} == set(OrderStatus)
    for order in mine:
        assert order.order_id.startswith("SB-1001")
        for item in order.items:  # real catalog products at their real prices
            assert item.name == by_id[item.product_id].name
            assert item.unit_price == by_id[item.product_id].final_price
        assert order.total == order.subtotal + order.shipping_fee + order.cod_fee
    assert [o.order_id for o in first.orders_of(OTHER)] == ["SB-200101", "SB-200103", "SB-200105"]


def test_reset_rewrites_demo_orders_with_fresh_dates(
    orders: OrderStore, products: list[Product]
) -> None:
    later = NOW + timedelta(days=40)
    assert seed_demo_orders(orders, products, now=later, reset=True) == 12
    assert orders.count() == 12
    delivered = orders.get_for(ME, DELIVERED)
    assert delivered.delivered_at == (later - timedelta(days=5)).replace(microsecond=0)


def test_seeding_without_products_creates_nothing(shop_db: Path) -> None:
    assert seed_demo_orders(OrderStore(database(shop_db)), [], now=NOW) == 0


# -- reading and not disclosing ---------------------------------------------------------------


def test_owner_sees_order_and_nobody_else_does(orders: OrderStore) -> None:
    assert orders.get_for(ME, "sb 100103").order_id == SHIPPED
    assert orders.get_for(OTHER, SHIPPED) is None
    assert orders.get_for(ME, "SB-999999") is None
    assert orders.get_for(ME, "SB-12") is None
    assert orders.get_for("", SHIPPED) is None
    assert orders.get_for(HUGE, SHIPPED) is None
    assert orders.get_for(INJECTION, SHIPPED) is None


@pytest.mark.parametrize("operation", [
    lambda s, sender, oid: s.track(sender, oid),
    lambda s, sender, oid: s.invoice(sender, oid),
    lambda s, sender, oid: s.refund_status(sender, oid),
    lambda s, sender, oid: s.cancel(sender, oid, now=NOW),
    lambda s, sender, oid: s.change_address(sender, oid, ADDRESS),
    lambda s, sender, oid: s.request_return(sender, oid, "too small", now=NOW),
])
def test_another_shoppers_order_looks_exactly_like_an_unknown_one(orders: OrderStore,
                                                                  operation) -> None:
    before = orders.get_for(ME, CANCELLED), orders.get_for(OTHER, OTHERS_ORDER)
    foreign = operation(orders, ME, OTHERS_ORDER)
    unknown = operation(orders, ME, "SB-999999")
    assert foreign.code is unknown.code is OrderCode.NOT_FOUND
    assert foreign.message.replace(OTHERS_ORDER, "ID") == unknown.message.replace("SB-999999", "ID")
    assert foreign.order is None and foreign.text == ""
    assert "demo-shopper" not in foreign.message
    assert (orders.get_for(ME, CANCELLED), orders.get_for(OTHER, OTHERS_ORDER)) == before


def test_wrongly_shaped_ids_get_the_format_explained(orders: OrderStore) -> None:
    for text in ("SB-12345", "my order", HUGE, INJECTION, "SB-100101\x00"[:-2]):
        outcome = orders.track(ME, text)
        assert outcome.code is OrderCode.BAD_ORDER_ID
        assert "SB-123456" in outcome.message


def test_tracking_answers_each_state(orders: OrderStore) -> None:
    assert "shipped on 8 Mar 2025" in orders.track(ME, SHIPPED).message
    assert "out for delivery" in orders.track(ME, OUT_FOR_DELIVERY).message
    assert "delivered on 5 Mar 2025" in orders.track(ME, DELIVERED).message
    assert "paid on" in orders.track(ME, CANCELLED).message


# -- cancelling ------------------------------------------------------------------------------


def test_cancelling_a_prepaid_order_before_shipping_refunds_it(orders: OrderStore) -> None:
    check = orders.cancel(ME, PLACED, now=NOW, dry_run=True)
    assert check.ok and orders.get_for(ME, PLACED).status is OrderStatus.PLACED
    outcome = orders.cancel(ME, PLACED, now=NOW)
    assert outcome.ok and outcome.order.status is OrderStatus.CANCELLED
    assert outcome.refund.status is RefundStatus.APPROVED
    assert outcome.refund.amount == outcome.order.total
    assert outcome.order.cancelled_at == NOW
    assert "UPI" in outcome.message
    again = orders.cancel(ME, PLACED, now=NOW)
    assert again.code is OrderCode.NOT_CANCELLABLE and "already cancelled" in again.message


def test_cancelling_cash_on_delivery_needs_no_refund(orders: OrderStore) -> None:
    outcome = orders.cancel(ME, PACKED, now=NOW)
    assert outcome.ok and outcome.refund is None
    assert "nothing to refund" in outcome.message


@pytest.mark.parametrize("order_id", [SHIPPED, OUT_FOR_DELIVERY])
def test_cancelling_after_shipping_is_refused_with_reason_and_alternative(
    orders: OrderStore, order_id: str
) -> None:
    before = orders.get_for(ME, order_id)
    outcome = orders.cancel(ME, order_id, now=NOW)
    assert outcome.code is OrderCode.NOT_CANCELLABLE and not outcome.ok
    assert "shipped" in outcome.message and "return it within 30 days" in outcome.message
    assert orders.get_for(ME, order_id) == before


def test_cancelling_a_delivered_order_points_to_returns(orders: OrderStore) -> None:
    outcome = orders.cancel(ME, DELIVERED, now=NOW)
    assert outcome.code is OrderCode.NOT_CANCELLABLE
    assert "return it until 4 Apr 2025" in outcome.message


def test_concurrent_cancels_cancel_once(orders: OrderStore) -> None:
    results = []

    def cancel() -> None:
        results.append(OrderStore(orders.db).cancel(ME, PLACED, now=NOW))

    threads = [threading.Thread(target=cancel) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.ok for r in results) == 1
    assert len(orders.get_for(ME, PLACED).refunds) == 1


# -- address changes -------------------------------------------------------------------------


def test_address_changes_before_shipping(orders: OrderStore) -> None:
    outcome = orders.change_address(ME, PLACED, "  7 Carter Road,\n Bandra West,  Mumbai 400050 ")
    assert outcome.ok
    assert orders.get_for(ME, PLACED).address == "7 Carter Road, Bandra West, Mumbai 400050"


def test_address_change_after_shipping_is_refused(orders: OrderStore) -> None:
    before = orders.get_for(ME, SHIPPED).address
    assert orders.change_address(ME, SHIPPED, ADDRESS, dry_run=True).code \
        is OrderCode.ADDRESS_LOCKED
    outcome = orders.change_address(ME, SHIPPED, ADDRESS)
    assert outcome.code is OrderCode.ADDRESS_LOCKED and "already shipped" in outcome.message
    assert orders.get_for(ME, SHIPPED).address == before


@pytest.mark.parametrize(("address", "says"), [
    ("", "empty"), ("   \n\t ", "empty"), ("\x00\x00", "empty"), (HUGE, "too long"),
    ("12 Rd", "too short"), (INJECTION, "house number"), ("Somewhere nice, India", "PIN"),
    (None, "as text"), (["12 MG Road 560001"], "as text"),
])
def test_bad_addresses_are_refused_and_nothing_is_lost(
    orders: OrderStore, address: object, says: str
) -> None:
    before = orders.get_for(ME, PLACED)
    outcome = orders.change_address(ME, PLACED, address)
    assert outcome.code is OrderCode.INVALID_INPUT and says in outcome.message
    assert orders.get_for(ME, PLACED) == before
    assert orders.count() == 12


def test_odd_but_valid_addresses_are_stored_safely(orders: OrderStore, shop_db: Path) -> None:
    tricky = f"1{INJECTION} 560001"
    assert orders.change_address(ME, PLACED, tricky).ok
    assert orders.get_for(ME, PLACED).address == tricky
    assert {"orders", "order_items", "refunds"} <= _tables(shop_db)
    assert orders.count() == 12
    assert orders.change_address(ME, PLACED, "Flat 3 🏠, Ring\x00 Road\u202e, Pune 411001").ok
    assert orders.get_for(ME, PLACED).address == "Flat 3 🏠, Ring Road, Pune 411001"
    assert orders.change_address(ME, PLACED, "12 MG Road \ud800 Bengaluru 560001").ok


# -- returns and refunds ---------------------------------------------------------------------


def test_return_within_window_creates_a_refund_request(orders: OrderStore) -> None:
    check = orders.request_return(ME, DELIVERED, "", now=NOW, dry_run=True)
    assert check.ok and "until 4 Apr 2025" in check.message
    order = orders.get_for(ME, DELIVERED)
    first = order.items[0]
    outcome = orders.request_return(ME, DELIVERED, "too small", [first.product_id], now=NOW)
    assert outcome.ok and outcome.order.status is OrderStatus.RETURN_REQUESTED
    assert outcome.refund.status is RefundStatus.REQUESTED
    assert outcome.refund.amount == first.line_total
    assert [line.product_id for line in outcome.refund.lines] == [first.product_id]
    again = orders.request_return(ME, DELIVERED, "too small", [first.product_id], now=NOW)
    assert again.code is OrderCode.INVALID_INPUT and "already being returned" in again.message
    rest = orders.request_return(ME, DELIVERED, "changed my mind", now=NOW)
    assert rest.ok and rest.refund.amount == order.subtotal - first.line_total
    done = orders.request_return(ME, DELIVERED, "changed my mind", now=NOW)
    assert done.code is OrderCode.NOT_RETURNABLE


def test_return_outside_window_is_refused(orders: OrderStore) -> None:
    outcome = orders.request_return(ME, DELIVERED_LONG_AGO, "too small", now=NOW)
    assert outcome.code is OrderCode.OUTSIDE_RETURN_WINDOW
    assert "30 days" in outcome.message and "22 Feb 2025" in outcome.message
    assert orders.get_for(ME, DELIVERED_LONG_AGO).refunds == []


def test_return_window_comes_from_the_rules(shop_db: Path, products: list[Product]) -> None:
    store = OrderStore(database(shop_db), OrderRules(returns_window_days=60))
    seed_demo_orders(store, products, now=NOW)
    assert store.request_return(ME, DELIVERED_LONG_AGO, "too small", now=NOW).ok


@pytest.mark.parametrize(("order_id", "says"), [
    (PLACED, "cancel it instead"), (SHIPPED, "still on its way"), (CANCELLED, "was cancelled"),
    (RETURNED, "already"),
])
def test_returns_of_undelivered_or_finished_orders_are_refused(
    orders: OrderStore, order_id: str, says: str
) -> None:
    outcome = orders.request_return(ME, order_id, "too small", now=NOW)
    assert outcome.code is OrderCode.NOT_RETURNABLE and says in outcome.message


@pytest.mark.parametrize(("reason", "items", "says"), [
    (HUGE, None, "too long"), ("", None, "empty"), ("\x00", None, "empty"),
    ("too small", ["999999"], "doesn't contain 999999"), ("too small", [INJECTION], "contain"),
])
def test_bad_return_requests_change_nothing(
    orders: OrderStore, reason: str, items: list[str] | None, says: str
) -> None:
    before = orders.get_for(ME, DELIVERED)
    outcome = orders.request_return(ME, DELIVERED, reason, items, now=NOW)
    assert outcome.code is OrderCode.INVALID_INPUT and says in outcome.message
    assert orders.get_for(ME, DELIVERED) == before


def test_injection_like_reason_is_stored_verbatim(orders: OrderStore, shop_db: Path) -> None:
    outcome = orders.request_return(ME, DELIVERED, INJECTION + " 😠", now=NOW)
    assert outcome.ok and outcome.refund.reason == INJECTION + " 😠"
    assert orders.get_for(ME, DELIVERED).refunds[0].reason == INJECTION + " 😠"
    assert {"orders", "order_items", "refunds"} <= _tables(shop_db)


def test_refund_moves_to_refunded_and_the_order_to_returned(orders: OrderStore) -> None:
    requested = orders.request_return(ME, DELIVERED, "too small", now=NOW)
    status = orders.refund_status(ME, DELIVERED)
    assert status.refund == requested.refund and "once the items reach us" in status.message
    orders.set_refund_status(requested.refund.refund_id, RefundStatus.APPROVED, now=NOW)
    assert "within 5-7 business days" in orders.refund_status(ME, DELIVERED).message
    paid = orders.set_refund_status(requested.refund.refund_id, "refunded",
                                    now=NOW + timedelta(days=3))
    assert paid.status is RefundStatus.REFUNDED and paid.refunded_at == NOW + timedelta(days=3)
    assert orders.get_for(ME, DELIVERED).status is OrderStatus.RETURNED
    assert "paid on 13 Mar 2025" in orders.refund_status(ME, DELIVERED).message
    assert orders.set_refund_status("RF-nope", RefundStatus.REFUNDED) is None


def test_refund_status_without_a_refund_says_so(orders: OrderStore) -> None:
    outcome = orders.refund_status(ME, SHIPPED)
    assert outcome.ok and outcome.refund is None and "no refund" in outcome.message


# -- invoices, checkout, courier updates ------------------------------------------------------


def test_invoice_summarises_the_order(orders: OrderStore) -> None:
    order = orders.get_for(ME, RETURN_REQUESTED)
    outcome = orders.invoice(ME, RETURN_REQUESTED)
    assert outcome.ok and outcome.text == outcome.message
    for fact in (order.invoice_number, order.address, "Total: ₹", "22 Feb 2025",
                 "Delivered: 26 Feb 2025", order.refunds[0].refund_id,
                 *(item.name for item in order.items)):
        assert fact in outcome.text
    assert order.invoice_number == "INV-2025-100108"


def _cart_summary(shop_db: Path, by_id: dict[str, Product], *wanted: tuple[str, str, int]):
    cart = CartStore(database(shop_db))
    for product_id, size, qty in wanted:
        assert cart.add("buyer", by_id[product_id], size, qty).ok
    return CartSummary.build(cart.lines("buyer"), by_id.get)


def test_checkout_places_an_order_from_the_cart(
    orders: OrderStore, shop_db: Path, by_id: dict[str, Product]
) -> None:
    summary = _cart_summary(shop_db, by_id, ("900001", "M", 2))
    outcome = orders.place_order("buyer", summary.lines, ADDRESS, "Google Pay", now=NOW)
    assert outcome.ok, outcome.message
    order = outcome.order
    assert parse_order_id(order.order_id) == order.order_id
    assert order.status is OrderStatus.PLACED and order.payment_method == "upi"
    assert order.subtotal == summary.subtotal == 2 * by_id["900001"].final_price
    assert order.shipping_fee == 0 and order.total == summary.subtotal  # over ₹999: free
    assert order.expected_delivery == NOW + timedelta(days=8)
    assert orders.get_for("buyer", order.order_id) == order
    assert orders.get_for(ME, order.order_id) is None
    assert orders.cancel("buyer", order.order_id, now=NOW).ok


def test_small_cash_on_delivery_orders_pay_delivery_and_cod_fees(
    orders: OrderStore, shop_db: Path, by_id: dict[str, Product]
) -> None:
    cheap = min(by_id.values(), key=lambda p: p.final_price)
    summary = _cart_summary(shop_db, by_id, (cheap.id, cheap.sizes[0] if cheap.sizes else "", 1))
    order = orders.place_order("buyer", summary.lines, ADDRESS, "cash on delivery").order
    assert order.shipping_fee == 79 and order.cod_fee == 29
    assert order.total == cheap.final_price + 79 + 29


@pytest.mark.parametrize(("lines", "address", "payment", "says"), [
    ([], ADDRESS, "upi", "cart is empty"),
    (None, ADDRESS, "upi", "cart is empty"),
    ("cart", ADDRESS, "upi", "can't be ordered"),
    ("ok", INJECTION, "upi", "house number"),
    ("ok", ADDRESS, "bitcoin", "choose how to pay"),
    ("ok", ADDRESS, HUGE, "choose how to pay"),
    ("big", ADDRESS, "cod", "Cash on delivery is available up to ₹10,000"),
])
def test_checkout_refuses_bad_input_clearly(
    orders: OrderStore, shop_db: Path, by_id: dict[str, Product], lines: object, address: str,
    payment: str, says: str,
) -> None:
    if lines == "ok":
        lines = _cart_summary(shop_db, by_id, ("900001", "M", 1)).lines
    elif lines == "big":
        priciest = max(by_id.values(), key=lambda p: p.final_price)
        size = priciest.sizes[0] if priciest.sizes else ""
        lines = _cart_summary(shop_db, by_id, (priciest.id, size, 10)).lines
    outcome = orders.place_order("buyer", lines, address, payment)
    assert outcome.code is OrderCode.INVALID_INPUT and says in outcome.message
    assert orders.orders_of("buyer") == []


def test_concurrent_checkouts_get_distinct_ids(
    any_database_url: str, by_id: dict[str, Product]
) -> None:
    orders = OrderStore(Database(any_database_url))
    cart = _checkout_cart(orders, by_id, ("900001", "M", 1))
    lines = CartSummary.build(cart.lines("buyer"), by_id.get).lines
    ids: list[str] = []

    def checkout() -> None:
        for _ in range(5):
            ids.append(orders.place_order("buyer", lines, ADDRESS, "card").order.order_id)

    threads = [threading.Thread(target=checkout) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 20 == len(orders.orders_of("buyer", limit=50))


def test_courier_updates_only_move_forward(orders: OrderStore) -> None:
    shipped = orders.set_status(PLACED, OrderStatus.SHIPPED, now=NOW)
    assert shipped.status is OrderStatus.SHIPPED and shipped.shipped_at == NOW
    assert orders.set_status(PLACED, OrderStatus.PACKED) is None
    assert orders.set_status(CANCELLED, OrderStatus.SHIPPED) is None
    assert orders.set_status("SB-999999", OrderStatus.SHIPPED) is None
    assert orders.cancel(ME, PLACED, now=NOW).code is OrderCode.NOT_CANCELLABLE


def test_rules_come_from_the_policy_file() -> None:
    rules = OrderRules.from_policy(load_policy())
    assert rules == OrderRules(returns_window_days=30, refund_days="5-7", free_shipping_above=999,
                               shipping_fee=79, delivery_days=8, cod_limit=10_000, cod_fee=29)


# -- cart ------------------------------------------------------------------------------------


def test_cart_merges_same_product_and_size(shop_db: Path, by_id: dict[str, Product]) -> None:
    cart = CartStore(database(shop_db))
    dress = by_id["900001"]
    assert cart.add("s1", dress, "m").ok
    merged = cart.add("s1", dress, "Medium", 2)
    assert merged.ok and "now have 3" in merged.message
    assert cart.add("s1", dress, "size L").ok
    lines = CartStore(database(shop_db)).lines("s1")  # persisted: a new store sees the same cart
    assert [(x.product_id, x.size, x.qty) for x in lines] == [("900001", "M", 3),
                                                               ("900001", "L", 1)]
    assert cart.lines("s2") == []


def test_cart_sizes_are_checked_against_the_product(shop_db: Path,
                                                    by_id: dict[str, Product]) -> None:
    cart = CartStore(database(shop_db))
    dress, bag = by_id["900001"], next(p for p in by_id.values() if p.sizes == ["Onesize"])
    needs = cart.add("s1", dress)
    assert needs.code is CartCode.NEEDS_SIZE and "XS, S, M, L, XL" in needs.message
    bad = cart.add("s1", dress, "XXL")
    assert bad.code is CartCode.BAD_SIZE and "XS, S, M, L, XL" in bad.message
    assert cart.add("s1", dress, HUGE).code is CartCode.BAD_SIZE
    assert cart.add("s1", dress, INJECTION).code is CartCode.BAD_SIZE
    one_size = cart.add("s1", bag)
    assert one_size.ok and "size" not in one_size.message
    assert cart.lines("s1")[0].size == "Onesize"
    assert normalise_size("uk 9", ["8", "9", "10"]) == "9"
    assert normalise_size("extra large", ["L", "XL"]) == "XL"


def test_cart_quantity_limits(shop_db: Path, by_id: dict[str, Product]) -> None:
    cart = CartStore(database(shop_db))
    dress = by_id["900001"]
    for qty in (0, -1, 11, 2.5, True, "2"):
        assert cart.add("s1", dress, "M", qty).code is CartCode.INVALID_INPUT
    assert cart.add("s1", dress, "M", 8).ok
    limited = cart.add("s1", dress, "M", 3)
    assert limited.code is CartCode.QTY_LIMIT and "up to 2 more" in limited.message
    assert cart.lines("s1")[0].qty == 8


def test_cart_has_a_line_limit(shop_db: Path, products: list[Product]) -> None:
    cart = CartStore(database(shop_db))
    for product in products[:30]:
        assert cart.add("s1", product, product.sizes[0] if product.sizes else None).ok
    extra = products[30]
    full = cart.add("s1", extra, extra.sizes[0] if extra.sizes else None)
    assert full.code is CartCode.CART_FULL and len(cart.lines("s1")) == 30


def test_cart_refuses_unknown_products_and_senders(shop_db: Path,
                                                   by_id: dict[str, Product]) -> None:
    cart = CartStore(database(shop_db))
    assert cart.add("s1", None).code is CartCode.UNKNOWN_PRODUCT
    for sender in ("", HUGE, "bad\x00id", None):
        assert cart.add(sender, by_id["900001"], "M").code is CartCode.INVALID_INPUT
    assert cart.add(INJECTION, by_id["900001"], "M").ok  # odd but printable: stored safely
    assert cart.lines(INJECTION)[0].product_id == "900001"
    assert "cart_lines" in _tables(shop_db)


def test_cart_removal(shop_db: Path, by_id: dict[str, Product]) -> None:
    cart = CartStore(database(shop_db))
    dress, jeans = by_id["900001"], next(p for p in by_id.values() if p.article_type == "Jeans")
    cart.add("s1", dress, "M", 3)
    cart.add("s1", dress, "L")
    cart.add("s1", jeans, jeans.sizes[0])
    assert cart.remove("s1", dress.id, "M", qty=2).ok
    assert {(x.product_id, x.size): x.qty for x in cart.lines("s1")}[(dress.id, "M")] == 1
    assert cart.remove("s1", dress.id, "XL").code is CartCode.NOT_IN_CART
    assert cart.remove("s1", dress.id).ok  # every size
    assert [x.product_id for x in cart.lines("s1")] == [jeans.id]
    assert cart.remove("s1", "nope").code is CartCode.NOT_IN_CART
    assert cart.remove("s1", INJECTION).code is CartCode.NOT_IN_CART
    assert cart.remove("s1", jeans.id, qty=0).code is CartCode.INVALID_INPUT
    assert cart.clear("s1") == 1 and cart.lines("s1") == []


def test_cart_summary_prices_with_discounts_and_flags_what_is_gone(
    shop_db: Path, by_id: dict[str, Product]
) -> None:
    cart = CartStore(database(shop_db))
    dress = by_id["900001"]  # ₹1,299, discounted to ₹714
    full_price = next(p for p in by_id.values() if p.discount_percent == 0 and p.sizes)
    cart.add("s1", dress, "M", 2)
    cart.add("s1", full_price, full_price.sizes[0])
    cart.add("s1", dress, "L")
    catalog_now = dict(by_id)
    catalog_now[dress.id] = dress.model_copy(update={"sizes": ["M"]})  # L sold out
    gone = next(p for p in by_id.values() if p.id not in (dress.id, full_price.id))
    cart.add("s1", gone, gone.sizes[0] if gone.sizes else None)
    del catalog_now[gone.id]

    summary = CartSummary.build(cart.lines("s1"), catalog_now.get)
    assert [(x.product_id, x.qty) for x in summary.lines] == [(dress.id, 2), (full_price.id, 1)]
    assert summary.subtotal == 2 * 714 + full_price.price
    assert summary.list_total == 2 * 1299 + full_price.price
    assert summary.savings == 2 * (1299 - 714) and summary.item_count == 3
    assert [f.line.product_id for f in summary.flagged] == [dress.id, gone.id]
    assert "no longer comes in size L" in summary.flagged[0].reason
    text = summary.text(shipping_fee=0)
    assert "you save ₹1,170" in text and "Delivery: free" in text and "Not counted" in text
    assert CartSummary.build([], by_id.get).text() == "Your cart is empty."


# -- profile ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vocab(products: list[Product]) -> CatalogVocabulary:
    return CatalogVocabulary.from_products(products)


LEARNED = [
    ("I'm a size 9", {"sizes": {"shoe": "9"}}),
    ("my shoe size is 8", {"sizes": {"shoe": "8"}}),
    ("I wear M", {"sizes": {"clothing": "M"}}),
    ("I usually wear a large", {"sizes": {"clothing": "L"}}),
    ("I'm a medium", {"sizes": {"clothing": "M"}}),
    ("I wear size 10 shoes", {"sizes": {"shoe": "10"}}),
    ("I take a 9 in shoes", {"sizes": {"shoe": "9"}}),
    ("my waist is 32", {"sizes": {"waist": "32"}}),
    ("I wear 30 in jeans", {"sizes": {"waist": "30"}}),
    ("I'm a woman", {"gender": "Women"}),
    ("shopping for men", {"gender": "Men"}),
    ("I usually shop in the women's section", {"gender": "Women"}),
    ("im a guy", {"gender": "Men"}),
    ("my budget is 2000", {"budget_max": 2000.0}),
    ("my budget is 2k", {"budget_max": 2000.0}),
    ("I can't spend more than Rs 1,500", {"budget_max": 1500.0}),
    ("I love Nike", {"brands": ["Nike"]}),
    ("I'm a big fan of Puma and Adidas", {"brands": ["Puma", "Adidas"]}),
    ("Roadster is my favourite brand", {"brands": ["Roadster"]}),
    ("I like blue", {"colours": ["Blue"]}),
    ("my favourite colour is navy blue", {"colours": ["Navy Blue"]}),
    ("I like black and white", {"colours": ["Black", "White"]}),
    ("I’m a size 9 and I love Nike, my budget is 3k",
     {"sizes": {"shoe": "9"}, "brands": ["Nike"], "budget_max": 3000.0}),
]
LEARNS_NOTHING = [
    "I like the second one", "I don't like blue", "I wear large earrings", "I'm 25",
    "I'm a small business owner", "show me red dresses", "I like it", "I'd like blue jeans",
    "I love Only", "something for my wife", "I like to wear black", "", HUGE, INJECTION,
]


@pytest.mark.parametrize(("text", "expected"), LEARNED)
def test_profile_learning_with_the_catalog_vocabulary(
    text: str, expected: dict, vocab: CatalogVocabulary
) -> None:
    assert learn_from_text(text, vocab).fields() == expected


@pytest.mark.parametrize(("text", "expected"), LEARNED)
def test_profile_learning_without_a_vocabulary(text: str, expected: dict) -> None:
    assert learn_from_text(text).fields() == expected


@pytest.mark.parametrize("text", LEARNS_NOTHING)
def test_profile_learning_does_not_guess(text: str, vocab: CatalogVocabulary) -> None:
    assert learn_from_text(text, vocab).is_empty
    assert learn_from_text(text).is_empty


def test_catalog_vocabulary_decides_brands(vocab: CatalogVocabulary) -> None:
    assert learn_from_text("i prefer adidas", vocab).brands == ("Adidas",)  # lower case is fine
    assert learn_from_text("i prefer adidas").is_empty  # without a catalog: not a name
    assert learn_from_text("I love Zorblax", vocab).is_empty  # not sold here
    assert learn_from_text("I love Zorblax").brands == ("Zorblax",)
    assert learn_from_text("my favourite brand is only", vocab).brands == ("Only",)
    assert learn_from_text("I like U.S. Polo Assn.", vocab).brands == ("U.S. Polo Assn.",)
    assert learn_from_text(None).is_empty


def test_profile_updates_merge_and_persist(shop_db: Path) -> None:
    store = ProfileStore(database(shop_db))
    assert store.get("s1").is_empty
    store.apply("s1", learn_from_text("I'm a size 9 and I love Nike"))
    store.update("s1", sizes={"clothing": "M"}, brands=["Puma", "nike"], gender="women",
                 budget_max=2500)
    profile = ProfileStore(database(shop_db)).get("s1")
    assert profile.sizes == {"shoe": "9", "clothing": "M"}
    assert profile.brands == ["nike", "Puma"] and profile.gender == "Women"
    assert profile.budget_max == 2500 and profile.updated_at is not None
    assert store.get("s2").is_empty


@pytest.mark.parametrize("fields", [
    {"sizes": {"shoe": HUGE}}, {"sizes": {"hat": "M"}}, {"sizes": "9"}, {"gender": "robot"},
    {"budget_max": -5}, {"budget_max": True}, {"budget_max": "2000"}, {"brands": [HUGE]},
    {"brands": [None]}, {"colour": ["Blue"]}, {"brands": 5},
])
def test_bad_profile_values_are_dropped_and_nothing_is_lost(shop_db: Path, fields: dict) -> None:
    store = ProfileStore(database(shop_db))
    before = store.update("s1", sizes={"shoe": "9"}, brands=["Nike"])
    after = store.update("s1", **fields)
    assert after == before


def test_profile_stores_odd_text_safely(shop_db: Path) -> None:
    store = ProfileStore(database(shop_db))
    profile = store.update("s1", brands=[INJECTION, "Zara 👗\x00"])
    assert profile.brands == ["Zara 👗", INJECTION]
    assert store.get("s1").brands == ["Zara 👗", INJECTION]
    assert store.get(HUGE) == Profile(sender_id="") and store.update("", gender="Men").is_empty


def test_profile_fills_search_defaults_the_query_left_open(by_id: dict[str, Product]) -> None:
    profile = Profile(sender_id="s1", gender="Women", budget_max=2000, sizes={"shoe": "6"})
    filled, used = with_profile_defaults(SearchConstraints(article_types=["Heels"]), profile)
    assert filled.genders == ["Women", "Unisex"] and filled.max_price == 2000
    assert used == ["gender", "price"]
    asked = SearchConstraints(genders=["Men"], max_price=5000)
    assert with_profile_defaults(asked, profile) == (asked, [])
    above = SearchConstraints(min_price=3000)
    assert with_profile_defaults(above, profile)[0].max_price is None
    assert with_profile_defaults(asked, Profile(sender_id="s2")) == (asked, [])
    heels = next(p for p in by_id.values() if p.article_type == "Heels" and "6" in p.sizes)
    assert preferred_size(profile, heels) == "6"
    assert preferred_size(profile, by_id["900001"]) is None  # no clothing size known


# -- tickets ---------------------------------------------------------------------------------


def test_handoff_ticket_keeps_a_readable_transcript(shop_db: Path) -> None:
    turns = [{"role": "user" if i % 2 else "bot", "text": f"turn {i}", "ts": 1_700_000_000 + i}
             for i in range(100)]
    turns += [{"role": "system", "text": "dropped"}, {"role": "user", "text": HUGE},
              {"role": "user", "text": f"{INJECTION}\x00 🙂"}, {"role": "bot", "text": None},
              "not a turn"]
    tickets = TicketStore(database(shop_db), contact_hours="9 am to 9 pm")
    outcome = tickets.create("s1", "wants a person", turns, intent="human_handoff", now=NOW)
    ticket = outcome.ticket
    assert outcome.ok and ticket.status == "open" and ticket.ticket_id.startswith("T-")
    assert len(ticket.transcript) == MAX_TURNS and ticket.turns_dropped == 62
    assert ticket.transcript[-1].text == f"{INJECTION} 🙂"
    assert len(ticket.transcript[-2].text) == MAX_TURN_CHARS
    assert ticket.transcript[0].text == "turn 62" and ticket.transcript[0].ts == 1_700_000_062
    assert ticket.ticket_id in outcome.message and "9 am to 9 pm" in outcome.message
    assert tickets.for_sender("s1") == [ticket] and tickets.for_sender("s2") == []


def test_handoff_again_within_the_hour_refreshes_the_open_ticket(shop_db: Path) -> None:
    tickets = TicketStore(database(shop_db))
    first = tickets.create("s1", "refund late", [{"role": "user", "text": "hi"}], now=NOW)
    again = tickets.create("s1", "still late", [{"role": "user", "text": "hello?"}],
                           now=NOW + timedelta(minutes=20))
    assert again.reused and again.ticket_id == first.ticket_id and "already" in again.message
    assert tickets.get(first.ticket_id).transcript[0].text == "hello?"
    assert tickets.close(first.ticket_id)
    fresh = tickets.create("s1", "another", [], now=NOW + timedelta(minutes=30))
    assert not fresh.reused and fresh.ticket_id != first.ticket_id
    assert len(tickets.for_sender("s1")) == 2


def test_handoff_never_loses_a_ticket_to_bad_input(shop_db: Path) -> None:
    tickets = TicketStore(database(shop_db))
    outcome = tickets.create("s1", HUGE + "\x00", None, intent=HUGE)
    assert outcome.ok and len(outcome.ticket.reason) <= 300 and outcome.ticket.transcript == []
    assert tickets.create("s1b", None, "garbage").ticket.reason == "(no reason given)"
    assert not tickets.create("", "why").ok and not tickets.create(HUGE, "why").ok


# -- forget me -------------------------------------------------------------------------------

RASA_EVENTS = """
CREATE TABLE events (
    id INTEGER NOT NULL, sender_id VARCHAR(255) NOT NULL, type_name VARCHAR(255) NOT NULL,
    timestamp FLOAT, intent_name VARCHAR(255), action_name VARCHAR(255), data TEXT,
    PRIMARY KEY (id)
);
CREATE INDEX ix_events_sender_id ON events (sender_id);
"""


def _tracker(path: Path, *senders: str) -> Path:
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(RASA_EVENTS)
        for sender in senders:
            _save_turns(path, sender)
    return path


def _save_turns(path: Path, sender: str, n: int = 3) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        db.executemany("INSERT INTO events (sender_id, type_name, timestamp, data) "
                       "VALUES (?, 'user', 0, '{}')", [(sender,)] * n)


def _tracker_rows(path: Path, sender: str) -> int:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT COUNT(*) FROM events WHERE sender_id = ?",
                          (sender,)).fetchone()[0]


def test_forget_removes_everything_for_one_sender_and_nothing_for_another(
    orders: OrderStore, shop_db: Path, tmp_path: Path, by_id: dict[str, Product]
) -> None:
    shop = database(shop_db)
    cart, profiles, tickets = CartStore(shop), ProfileStore(shop), TicketStore(shop)
    events = EventLog(database(tmp_path / "events.db"))
    links = LinkStore(shop)
    assert links.redeem("telegram:42", links.issue(ME)) == LINKED  # ME's phone chat
    assert links.redeem("slack:T1:U9", links.issue(OTHER)) == LINKED
    tracker = _tracker(tmp_path / "tracker.db", ME, OTHER)
    for sender in (ME, OTHER):
        cart.add(sender, by_id["900001"], "M")
        profiles.update(sender, gender="Women", brands=["Nike"])
        tickets.create(sender, "help", [{"role": "user", "text": "help"}])
        events.log(sender, ["900001", "900002"], EventType.OPENED)
    other_before = (cart.lines(OTHER), profiles.get(OTHER), tickets.for_sender(OTHER),
                    events.recent_items(OTHER), orders.orders_of(OTHER))

    report = forget_shopper(ME, orders=orders, cart=cart, profile=profiles, tickets=tickets,
                            events=events, links=links, tracker=tracker)
    assert report.ok
    assert report.deleted == {"profile": 1, "cart": 1, "tickets": 1, "events": 2, "links": 1,
                              "conversation": 3}
    assert links.canonical("telegram:42") == "telegram:42"  # the phone chat is on its own
    assert links.canonical("slack:T1:U9") == OTHER
    assert "links to your other chats" in report.message
    assert report.orders_anonymised == 9 and report.addresses_kept == 4
    for phrase in ("deleted", "preferences", "cart (1 item)", "conversation history",
                   "9 orders are kept", "no longer linked to you", "on its way"):
        assert phrase in report.message
    assert cart.lines(ME) == [] and profiles.get(ME).is_empty and tickets.for_sender(ME) == []
    assert events.recent_items(ME) == [] and _tracker_rows(tracker, ME) == 0
    assert orders.orders_of(ME) == [] and orders.get_for(ME, SHIPPED) is None
    assert orders.count() == 12  # kept for the accounts
    with closing(sqlite3.connect(shop_db)) as db:
        owners = dict(db.execute("SELECT order_id, sender_id FROM orders"))
        addresses = dict(db.execute("SELECT order_id, address FROM orders"))
    assert all(owners[f"SB-1001{n:02d}"].startswith("forgotten:") for n in range(1, 10))
    assert len({owners[f"SB-1001{n:02d}"] for n in range(1, 10)}) == 9  # not linkable
    assert addresses[DELIVERED] == REMOVED_ADDRESS and addresses[SHIPPED] != REMOVED_ADDRESS
    assert (cart.lines(OTHER), profiles.get(OTHER), tickets.for_sender(OTHER),
            events.recent_items(OTHER), orders.orders_of(OTHER)) == other_before
    assert _tracker_rows(tracker, OTHER) == 3

    again = forget_shopper(ME, orders=orders, cart=cart, profile=profiles, tickets=tickets,
                           events=events, links=links, tracker=tracker)
    assert again.orders_anonymised == 0 and sum(again.deleted.values()) == 0


def test_forget_handles_a_missing_tracker_file_or_table(tmp_path: Path) -> None:
    missing = tmp_path / "no-tracker.db"
    assert delete_conversation(missing, ME) == 0 and not missing.exists()
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert delete_conversation(empty, ME) == 0
    report = forget_shopper(ME, tracker=missing)
    assert report.ok and report.deleted == {"conversation": 0}
    assert "conversation history" in report.message


def test_forget_reports_a_store_that_fails_and_still_does_the_rest(
    tmp_path: Path, shop_db: Path, by_id: dict[str, Product]
) -> None:
    cart = CartStore(database(shop_db))
    cart.add(ME, by_id["900001"], "M")
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database" * 100)
    report = forget_shopper(ME, cart=cart, tracker=broken)
    assert not report.ok and "conversation" in report.failed
    assert report.deleted == {"cart": 1} and cart.lines(ME) == []
    assert "couldn't be deleted" in report.message


def test_forget_with_a_bad_sender_deletes_nothing(tmp_path: Path) -> None:
    tracker = _tracker(tmp_path / "tracker.db", ME)
    for sender in ("", HUGE, None, "a\x00b"):
        report = forget_shopper(sender, tracker=tracker)
        assert not report.ok and "nothing was deleted" in report.message
    assert _tracker_rows(tracker, ME) == 3


def test_tracker_rows_saved_again_after_forget_are_purged_on_request(
    tmp_path: Path, shop_db: Path
) -> None:
    """The forget action asks; the channel purges after Rasa saved the turn, with photos."""
    from shopcore.uploads import UploadStore

    tracker = _tracker(tmp_path / "tracker.db", ME, OTHER)
    forget_shopper(ME, tracker=tracker)
    db = database(shop_db)
    request_purge(db, [ME, "", "x" * 500])
    _save_turns(tracker, ME, 5)  # what Rasa's SQLTrackerStore.save does after the action
    uploads = UploadStore(tmp_path / "uploads", 10_000_000, 40_000_000)
    uploads.directory.mkdir(parents=True)
    ref = "a" * 32 + ".jpg"
    (uploads.directory / ref).write_bytes(b"photo")
    with sqlite3.connect(tracker) as conn:
        conn.execute("INSERT INTO events (sender_id, type_name, data) VALUES (?, 'user', ?)",
                     (ME, json.dumps({"text": "/photo", "metadata": {"upload": {"ref": ref}}})))
    assert purge_requested(db, tracker, uploads) == [ME]
    assert _tracker_rows(tracker, ME) == 0 and _tracker_rows(tracker, OTHER) == 3
    assert not (uploads.directory / ref).exists()
    assert purge_requested(db, tracker, uploads) == [], "a purge is done once"


# -- command line ----------------------------------------------------------------------------


def test_shop_cli_seeds_lists_and_forgets(tmp_path: Path) -> None:
    """The installed `shopbot shop` commands, from another working directory."""
    from tests.e2e import shopbot

    env = {"SHOPBOT_VAR_DIR": str(tmp_path / "var")}
    seeded = shopbot("shop", "seed", "--catalog", str(SAMPLE_CATALOG), cwd=tmp_path, env=env)
    assert seeded.returncode == 0, seeded.stderr
    listed = shopbot("shop", "orders", ME, "--json", cwd=tmp_path, env=env)
    assert listed.returncode == 0 and len(listed.stdout.strip().splitlines()) == 9
    forgot = shopbot("shop", "forget", ME, "--yes", cwd=tmp_path, env=env)
    assert forgot.returncode == 0, forgot.stderr
    assert '"orders_anonymised": 9' in forgot.stdout
    assert shopbot("shop", "orders", ME, "--json", cwd=tmp_path, env=env).stdout.strip() == ""
    assert (tmp_path / "var" / "shop.db").is_file()


# -- checkout: one transaction, at most once (issue 14) ---------------------------------------


def _checkout_cart(orders: OrderStore, by_id: dict[str, Product],
                   *wanted: tuple[str, str, int], now: datetime | None = None) -> CartStore:
    """The buyer's cart, on the order store's database (as ShopRecords shares one)."""
    cart = CartStore(orders.db)
    for product_id, size, qty in wanted:
        assert cart.add("buyer", by_id[product_id], size, qty, now=now).ok
    return cart


def _stored(where: Path | str, sender: str = "buyer") -> tuple[list[tuple[str, str | None]], int]:
    """(orders as (id, checkout key), cart rows) for ``sender``, read on a connection of its
    own: from a SQLite file (its path) or any database (its URL)."""
    engine = make_engine(as_url(where))
    try:
        with engine.connect() as conn:
            placed = [tuple(row) for row in conn.execute(
                select(orders_table.c.order_id, orders_table.c.checkout_key)
                .where(orders_table.c.sender_id == sender))]
            carted = conn.execute(select(func.count()).select_from(cart_lines)
                                  .where(cart_lines.c.sender_id == sender)).scalar()
    finally:
        engine.dispose()
    return placed, carted  # type: ignore[return-value]


def test_checkout_orders_and_empties_the_cart_in_one_transaction(
    orders: OrderStore, shop_db: Path, by_id: dict[str, Product],
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    cart = _checkout_cart(orders, by_id, ("900001", "M", 2), ("900002", "S", 1))
    seen = read_cart(cart, "buyer", by_id.get)
    assert len(seen.rows) == 2 and len(seen.key) == 64
    # Held between the order insert and the cart clear, a reader sees neither change yet.
    monkeypatch.setenv(faults.ENV_VAR, "checkout.after_order:2")
    caplog.set_level(logging.WARNING, logger="shopbot.faults")
    done: list[CheckoutOutcome] = []
    worker = threading.Thread(
        target=lambda: done.append(checkout(orders, cart, seen, ADDRESS, "upi", now=NOW)))
    worker.start()
    deadline = time.monotonic() + 10
    while "fault pause checkout.after_order" not in caplog.text:
        assert time.monotonic() < deadline, "checkout never reached its pause point"
        time.sleep(0.02)
    assert _stored(shop_db) == ([], 2)
    worker.join(timeout=30)
    (outcome,) = done
    assert outcome.code is CheckoutCode.PLACED and "is placed" in outcome.message
    order = outcome.order
    assert order.subtotal == 2 * 714 + 950 and order.item_count == 3
    assert _stored(shop_db) == ([(order.order_id, seen.key)], 0)
    assert orders.get_for("buyer", order.order_id) == order and cart.lines("buyer") == []


def test_checkout_retried_with_the_same_cart_gives_the_same_order(
    orders: OrderStore, shop_db: Path, by_id: dict[str, Product]
) -> None:
    cart = _checkout_cart(orders, by_id, ("900001", "M", 1))
    seen = read_cart(cart, "buyer", by_id.get)
    first = checkout(orders, cart, seen, ADDRESS, "upi")
    again = checkout(orders, cart, seen, ADDRESS, "upi")
    assert first.code is CheckoutCode.PLACED
    assert again.code is CheckoutCode.ALREADY_PLACED and again.order == first.order
    assert f"Your order {first.order.order_id} is already placed" in again.message
    assert _stored(shop_db) == ([(first.order.order_id, seen.key)], 0)


@pytest.mark.parametrize("change", ["another item", "more of it", "removed", "emptied"])
def test_checkout_refuses_a_cart_changed_since_the_shopper_saw_it(
    orders: OrderStore, shop_db: Path, by_id: dict[str, Product], change: str
) -> None:
    cart = _checkout_cart(orders, by_id, ("900001", "M", 1), ("900002", "S", 1))
    seen = read_cart(cart, "buyer", by_id.get)
    match change:
        case "another item":
            cart.add("buyer", by_id["900003"], "L")
        case "more of it":
            cart.add("buyer", by_id["900001"], "M")
        case "removed":
            cart.remove("buyer", "900002")
        case "emptied":
            cart.clear("buyer")
    now = tuple(cart.lines("buyer"))
    outcome = checkout(orders, cart, seen, ADDRESS, "upi")
    assert outcome.code is CheckoutCode.CART_CHANGED and outcome.order is None
    assert outcome.cart == now
    assert ("changed" if now else "emptied") in outcome.message
    assert _stored(shop_db) == ([], len(now)), "nothing written: no order, the cart kept"
    fresh = read_cart(cart, "buyer", by_id.get)
    if now:  # checking out what is there now works
        assert checkout(orders, cart, fresh, ADDRESS, "upi").code is CheckoutCode.PLACED


def test_two_checkouts_of_the_same_cart_at_once_make_one_order(
    any_database_url: str, by_id: dict[str, Product]
) -> None:
    """A double tap, or two replicas: each with its own engine, as separate processes."""
    _checkout_cart(OrderStore(Database(any_database_url)), by_id, ("900001", "M", 1))
    both_read = threading.Barrier(4)
    outcomes: list[CheckoutOutcome] = []

    def tap() -> None:
        db = Database(any_database_url)
        cart = CartStore(db)
        seen = read_cart(cart, "buyer", by_id.get)
        both_read.wait(timeout=10)  # every one saw the full cart before any writes
        outcomes.append(checkout(OrderStore(db), cart, seen, ADDRESS, "upi"))

    threads = [threading.Thread(target=tap) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    codes = sorted(o.code for o in outcomes)
    assert codes == [CheckoutCode.ALREADY_PLACED] * 3 + [CheckoutCode.PLACED]
    assert len({o.order.order_id for o in outcomes}) == 1
    placed, carted = _stored(any_database_url)
    assert len(placed) == 1 and carted == 0


def test_a_cart_filled_again_alike_is_a_new_checkout(
    orders: OrderStore, shop_db: Path, by_id: dict[str, Product]
) -> None:
    """Rows stored to the second can repeat; the shopper's order count tells them apart."""
    cart = _checkout_cart(orders, by_id, ("900001", "M", 1), now=NOW)
    first = checkout(orders, cart, read_cart(cart, "buyer", by_id.get), ADDRESS, "upi")
    _checkout_cart(orders, by_id, ("900001", "M", 1), now=NOW)
    second = checkout(orders, cart, read_cart(cart, "buyer", by_id.get), ADDRESS, "upi")
    assert first.code is second.code is CheckoutCode.PLACED
    placed, carted = _stored(shop_db)
    assert len(placed) == len({key for _, key in placed}) == 2 and carted == 0


@pytest.mark.parametrize(("address", "payment", "says"), [
    (INJECTION, "upi", "house number"), (ADDRESS, "bitcoin", "choose how to pay")])
def test_checkout_with_bad_input_writes_nothing(
    orders: OrderStore, shop_db: Path, by_id: dict[str, Product], address: str, payment: str,
    says: str,
) -> None:
    cart = _checkout_cart(orders, by_id, ("900001", "M", 1))
    outcome = checkout(orders, cart, read_cart(cart, "buyer", by_id.get), address, payment)
    assert outcome.code is CheckoutCode.INVALID_INPUT and says in outcome.message
    assert _stored(shop_db) == ([], 1)
    empty = checkout(orders, cart, read_cart(CartStore(orders.db), "nobody", by_id.get),
                     ADDRESS, "upi")
    assert empty.code is CheckoutCode.INVALID_INPUT and "cart is empty" in empty.message


def test_recent_order_is_the_latest_standing_order_of_the_last_half_hour(
    orders: OrderStore, by_id: dict[str, Product]
) -> None:
    cart = _checkout_cart(orders, by_id, ("900001", "M", 1))
    placed = checkout(orders, cart, read_cart(cart, "buyer", by_id.get), ADDRESS, "upi",
                      now=NOW).order
    assert recent_order(orders, "buyer", now=NOW + timedelta(minutes=29)) == placed
    assert recent_order(orders, "buyer", now=NOW + timedelta(minutes=31)) is None
    assert recent_order(orders, "nobody", now=NOW) is None
    orders.cancel("buyer", placed.order_id, now=NOW)
    assert recent_order(orders, "buyer", now=NOW + timedelta(minutes=1)) is None


_KILLED_CHECKOUT = """
import sys
from retrieval.catalog import load_catalog
from shop.cart import CartStore
from shop.checkout import checkout, read_cart
from shop.orders import OrderStore
from shopcore.db import Database, as_url, cart_lines, make_engine
from shopcore.db import orders as orders_table
from shopcore.logs import setup_logging

setup_logging(True)
db = Database(sys.argv[1])
products = {p.id: p for p in load_catalog()[0]}
cart = CartStore(db)
print(checkout(OrderStore(db), cart, read_cart(cart, "buyer", products.get), sys.argv[2],
               "upi").code, flush=True)
"""


@pytest.mark.parametrize("point", ["checkout.after_order", "checkout.after_commit"])
def test_a_checkout_killed_midway_leaves_one_whole_outcome(
    orders: OrderStore, shop_db: Path, by_id: dict[str, Product], tmp_path: Path, point: str
) -> None:
    """SIGKILL at the pause point: before the commit nothing happened (and checking out
    again places one order); after it the order stands and the cart is empty."""
    cart = _checkout_cart(orders, by_id, ("900001", "M", 1), ("900002", "S", 2))
    log = tmp_path / "checkout.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", _KILLED_CHECKOUT, orders.db.url, ADDRESS], cwd=PROJECT_ROOT,
            env={**os.environ, faults.ENV_VAR: f"{point}:60"}, stdout=out,
            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while f"fault pause {point}" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "the checkout never reached its pause point"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=10)
    placed, carted = _stored(shop_db)
    if point == "checkout.after_order":
        assert (placed, carted) == ([], 2), "killed before the commit: nothing happened"
        outcome = checkout(orders, cart, read_cart(cart, "buyer", by_id.get), ADDRESS, "upi")
        assert outcome.code is CheckoutCode.PLACED
        placed, carted = _stored(shop_db)
    else:
        seen = read_cart(cart, "buyer", by_id.get)
        assert not seen.rows and recent_order(orders, "buyer").order_id == placed[0][0]
    assert len(placed) == 1 and carted == 0


def test_a_database_from_before_checkout_keys_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as conn:  # the orders table as it shipped before
        conn.executescript("""
            CREATE TABLE orders (order_id VARCHAR(16) PRIMARY KEY, sender_id VARCHAR(128)
            NOT NULL, status VARCHAR(32) NOT NULL, placed_at VARCHAR(32) NOT NULL,
            packed_at VARCHAR(32), shipped_at VARCHAR(32), expected_delivery VARCHAR(32),
            delivered_at VARCHAR(32), cancelled_at VARCHAR(32), address TEXT NOT NULL,
            payment_method VARCHAR(32) NOT NULL, subtotal FLOAT NOT NULL,
            shipping_fee FLOAT NOT NULL, cod_fee FLOAT DEFAULT '0' NOT NULL,
            total FLOAT NOT NULL, invoice_number VARCHAR(32) NOT NULL UNIQUE);
            INSERT INTO orders VALUES ('SB-123456', 'old', 'placed', '2025-01-01T00:00:00+00:00',
            NULL, NULL, NULL, NULL, NULL, '1 Old Road, Pune 411001', 'upi', 10, 0, 0, 10,
            'INV-2025-123456');""")
    db = database(path)
    assert OrderStore(db).get_for("old", "SB-123456").total == 10
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE orders SET checkout_key = 'k'")
        conn.commit()
        conn.execute("INSERT INTO orders (order_id, sender_id, status, placed_at, address, "
                     "payment_method, subtotal, shipping_fee, total, invoice_number) VALUES "
                     "('SB-654321', 'old', 'placed', 'x', 'a', 'upi', 1, 0, 1, 'i2')")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("UPDATE orders SET checkout_key = 'k' WHERE order_id = 'SB-654321'")
    db.dispose()


def test_pause_points_sleep_only_when_named(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert faults.pauses("checkout.after_order:60, a:1.5,broken,b:x,c:-1") == {
        "checkout.after_order": 60.0, "a": 1.5}
    caplog.set_level(logging.WARNING, logger="shopbot.faults")
    monkeypatch.delenv(faults.ENV_VAR, raising=False)
    started = time.monotonic()
    faults.pause_point("checkout.after_order")
    monkeypatch.setenv(faults.ENV_VAR, "something.else:60")
    faults.pause_point("checkout.after_order")
    assert time.monotonic() - started < 1 and "fault pause" not in caplog.text
    monkeypatch.setenv(faults.ENV_VAR, "other:60,checkout.after_order:0.2")
    faults.pause_point("checkout.after_order")
    assert time.monotonic() - started >= 0.2
    assert "fault pause checkout.after_order" in caplog.text
