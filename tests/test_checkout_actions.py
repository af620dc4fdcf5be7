"""The checkout action tells the truth about money: a double tap gets the order it already
placed, and an empty cart right after an order says that order went through (issue 14).

Real stores and the sample catalog; the fault pause (shopcore.faults) holds the first
checkout inside its transaction so the second arrives at exactly the wrong moment."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.cart import ActionCheckout
from actions.services import services
from retrieval.store import ProductStore
from shopcore import faults

ADDRESS = "1 Hill Road, Pune 411001"


@pytest.fixture
def shop(services_on_sample_store: object) -> None:
    """Actions on the sample catalog with a fresh shop database (demo orders seeded)."""


def checkout_turn(sender: str) -> CollectingDispatcher:
    """One run of the checkout action, the address already given."""
    dispatcher = CollectingDispatcher()
    tracker = Tracker(sender, {"checkout_address": ADDRESS},
                      {"text": "checkout", "intent": {"name": "checkout"}, "entities": []},
                      [], False, None, {}, "action_listen")
    asyncio.run(ActionCheckout().run(dispatcher, tracker, {}))
    return dispatcher


def said(dispatcher: CollectingDispatcher) -> str:
    return "\n".join(m.get("text") or "" for m in dispatcher.messages)


def order_shown(dispatcher: CollectingDispatcher) -> dict[str, Any]:
    (order,) = [m["custom"] for m in dispatcher.messages
                if (m.get("custom") or {}).get("type") == "order"]
    return order


def fill_cart(sender: str, store: ProductStore) -> None:
    product = next(p for p in store.get(sorted(store.all_ids())[:40]) if p.sizes)
    assert services().records.cart.add(sender, product, product.sizes[0]).ok


def test_a_double_tapped_checkout_places_one_order_and_says_so(
    shop: None, sample_store: ProductStore, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sender = "unit-double-tap"
    fill_cart(sender, sample_store)
    monkeypatch.setenv(faults.ENV_VAR, "checkout.after_order:1.5")
    caplog.set_level(logging.WARNING, logger="shopbot.faults")
    replies: dict[str, CollectingDispatcher] = {}
    first = threading.Thread(target=lambda: replies.update(first=checkout_turn(sender)))
    first.start()
    deadline = time.monotonic() + 20
    while "fault pause checkout.after_order" not in caplog.text:
        assert time.monotonic() < deadline, "the first checkout never reached its pause"
        time.sleep(0.02)
    # The second tap reads the cart the first has not committed yet, then waits its turn.
    replies["second"] = checkout_turn(sender)
    first.join(timeout=30)
    (order,) = services().records.orders.orders_of(sender)
    assert f"{order.order_id} (1 item" in said(replies["first"])
    assert "is placed" in said(replies["first"])
    again = said(replies["second"])
    assert f"Your order {order.order_id} is already placed" in again
    assert "second time" in again and "is placed:" not in again
    assert order_shown(replies["second"])["order_id"] == order.order_id
    assert services().records.cart.lines(sender) == []


def test_an_empty_cart_right_after_an_order_names_that_order(
    shop: None, sample_store: ProductStore
) -> None:
    sender = "unit-lost-reply"
    fill_cart(sender, sample_store)
    checkout_turn(sender)  # placed; say its reply never reached the shopper
    (order,) = services().records.orders.orders_of(sender)
    asked_again = checkout_turn(sender)
    text = said(asked_again)
    assert f"your order {order.order_id}" in text and "is already placed" in text
    assert order.headline().split(", ")[-1].rstrip(")") in text  # its total
    assert order_shown(asked_again)["order_id"] == order.order_id
    assert services().records.orders.orders_of(sender) == [order], "nothing new ordered"


def test_an_empty_cart_long_after_the_last_order_is_just_empty(shop: None) -> None:
    """demo-shopper's latest order is hours old: no claim that anything was just placed."""
    text = said(checkout_turn("demo-shopper"))
    assert "cart is empty" in text and "already placed" not in text
