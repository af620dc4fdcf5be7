"""The pure parts of keeping the thread: order references, when a form yields, which guesses
are close enough to ask about, and how a product reads when described."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rasa_sdk import Tracker

from actions.details import describe
from actions.fallback import close_guesses, misses_in_a_row
from actions.routing import action_for, just_an_answer, yield_target
from retrieval.catalog import load_catalog
from shop.orders import Order, OrderItem, OrderStatus
from shop.references import find_order

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


def order(number: int, days_ago: float, item: str) -> Order:
    return Order(order_id=f"SB-{number}", sender_id="ann", status=OrderStatus.DELIVERED,
                 items=[OrderItem(product_id="1", name=item, qty=1, unit_price=500)],
                 subtotal=500, shipping_fee=0, total=500,
                 placed_at=NOW - timedelta(days=days_ago), address="1 Main St, Pune 411001",
                 payment_method="upi", invoice_number=f"INV-{number}")


ORDERS = [order(100105, 2, "Nike Black Running Shoes"), order(100104, 10, "Red Dress"),
          order(100103, 15, "Blue Jeans"), order(100102, 40, "Titan Watch")]


@pytest.mark.parametrize(("text", "expected"), [
    ("send me the invoice for my last order", ["SB-100105"]),
    ("where is my latest order", ["SB-100105"]),
    ("the one I bought in November", ["SB-100104", "SB-100103"]),
    ("my order from October", ["SB-100102"]),
    ("the november order with the jeans", ["SB-100103"]),
    ("the order before the last", ["SB-100104"]),
    ("my last order with the watch", ["SB-100102"]),
    ("my order from March", None),
    ("where is my order", None),
    ("red dresses", None),
])
def test_order_references(text: str, expected: list[str] | None) -> None:
    found = find_order(text, ORDERS, now=NOW)
    assert (None if found is None else [o.order_id for o in found.orders]) == expected


def test_no_orders_means_no_reference() -> None:
    assert find_order("my last order", [], now=NOW) is None


@pytest.mark.parametrize(("text", "answer"), [
    ("SB-100101", True), ("it's SB-100101", True), ("my last one", True),
    ("the one from November", True), ("order #100101 please", True),
    ("where is my order SB-100101", False), ("show me red dresses", False),
    ("what's your return policy", False),
])
def test_just_an_answer(text: str, answer: bool) -> None:
    assert just_an_answer(text) is answer


def test_yield_target() -> None:
    track = "where is my order SB-100101"
    assert yield_target("cancel_order_form", "order_id", "track_order", 0.8, track) \
        == "track_order_form"
    assert yield_target("cancel_order_form", "order_id", "search_products", 0.9,
                        "red dresses") == "action_search_products"
    # The form's own request, a bare answer, a yes/no, an unsure guess: the form reads it.
    assert yield_target("track_order_form", "order_id", "track_order", 0.9, track) is None
    assert yield_target("cancel_order_form", "order_id", "track_order", 0.9, "SB-100101") is None
    assert yield_target("cancel_order_form", "order_confirm", "affirm", 0.9, "yes") is None
    assert yield_target("cancel_order_form", "order_id", "track_order", 0.2, track) is None
    assert yield_target("return_order_form", "return_reason", "complaint", 0.9,
                        "it was torn") is None
    assert action_for("check_invoice") == "action_answer_faq"


def tracker(ranking: list[tuple[str, float]], events: list[dict[str, Any]] | None = None
            ) -> Tracker:
    latest = {"text": "x", "intent": {"name": "nlu_fallback", "confidence": 0.3},
              "intent_ranking": [{"name": n, "confidence": c} for n, c in ranking]}
    return Tracker("s", {}, latest, events or [], False, None, {}, "action_listen")


def test_close_guesses() -> None:
    close = tracker([("nlu_fallback", 0.3), ("track_order", 0.28), ("cancel_order", 0.22),
                     ("greet", 0.05)])
    assert close_guesses(close) == ["track_order", "cancel_order"]
    assert close_guesses(tracker([("track_order", 0.6), ("cancel_order", 0.1)])) == []
    assert close_guesses(tracker([("greet", 0.3), ("cancel_order", 0.28)])) == []
    assert close_guesses(tracker([("track_order", 0.05), ("cancel_order", 0.05)])) == []


def user(intent: str) -> dict[str, Any]:
    return {"event": "user", "parse_data": {"intent": {"name": intent}}}


def test_misses_in_a_row() -> None:
    events = [user("nlu_fallback"), user("greet"), {"event": "bot"}, user("out_of_scope"),
              {"event": "action"}, user("nlu_fallback")]
    assert misses_in_a_row(tracker([], events)) == 2
    assert misses_in_a_row(tracker([], [user("greet")])) == 0


def test_description_reads_like_a_sentence() -> None:
    products, _ = load_catalog(None)
    product = next(p for p in products if p.attributes and p.sizes and p.description)
    text = describe(product)
    assert text.startswith(f"{product.name} by {product.brand}: a")
    assert "Price: ₹" in text and "Sizes: " in text
    assert "Product id" not in text
    assert not any(f"{key}:" in text for key in product.attributes)  # values, not keys
    assert len(text) < 700
