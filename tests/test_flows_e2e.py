"""End to end: order, cart, profile and handoff flows over REST on a real stack.

The shared stack (tests/conftest.py) seeds the demo orders (``demo-shopper``:
SB-100101..SB-100109, one per state; ``demo-shopper-2``: SB-200101/3/5) from the sample
catalog when it starts, in demo mode.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from retrieval.store import ProductStore
from shop.orders import OrderStatus, OrderStore
from shop.records import ShopRecords
from shopbot.stack import Stack, rasa_env, rasa_executable
from shopcore.settings import PROJECT_ROOT
from tests.e2e import cards, cart_of, say, texts

pytestmark = pytest.mark.e2e

SHOPPER = "demo-shopper"


def records(stack: Stack) -> ShopRecords:
    """The stack's shop database, read directly (as the shop's back office would)."""
    return ShopRecords.open(stack.settings)


def orders(stack: Stack) -> OrderStore:
    return records(stack).orders


def test_track_order_by_id_and_by_question(stack: Stack) -> None:
    shipped = texts(say(stack, SHOPPER, "where is my order SB-100103?"))
    assert "SB-100103" in shipped and "shipped" in shipped

    asked = say(stack, SHOPPER, "track my order")
    assert "order" in texts(asked).lower()
    buttons = [b["payload"] for m in asked for b in m.get("buttons", [])]
    assert buttons and all(p.startswith("SB-1001") for p in buttons), "only own orders offered"

    placed = texts(say(stack, SHOPPER, "SB-100101"))
    assert "SB-100101" in placed and "placed" in placed


def test_wrong_unknown_and_other_shoppers_order_ids(stack: Stack) -> None:
    say(stack, "e2e-track", "track my order")
    wrong = texts(say(stack, "e2e-track", "it's order 12ab"))
    assert "doesn't look like an order number" in wrong
    unknown = say(stack, "e2e-track", "SB-999999")[0]["text"]
    assert "couldn't find order SB-999999" in unknown
    theirs = say(stack, SHOPPER, "track order SB-200101")[0]["text"]
    # Another shopper's order gets the unknown-order answer word for word: nothing leaks.
    assert theirs.replace("SB-200101", "X") == unknown.replace("SB-999999", "X")
    assert "Kolkata" not in theirs and "Bengaluru" not in theirs
    say(stack, SHOPPER, "stop")


def test_cancel_refused_once_shipped_and_done_before(stack: Stack) -> None:
    refused = texts(say(stack, SHOPPER, "cancel order SB-100103"))
    assert "SB-100103" in refused and "shipped" in refused.lower()
    assert orders(stack).get_for(SHOPPER, "SB-100103").status is OrderStatus.SHIPPED

    asked = say(stack, SHOPPER, "please cancel order SB-100101")
    assert "cancel" in texts(asked).lower()
    assert [b["payload"] for m in asked for b in m.get("buttons", [])] == ["/affirm", "/deny"]
    done = texts(say(stack, SHOPPER, "yes"))
    assert "is cancelled" in done
    assert orders(stack).get_for(SHOPPER, "SB-100101").status is OrderStatus.CANCELLED

    say(stack, SHOPPER, "cancel my order SB-100102")
    kept = texts(say(stack, SHOPPER, "no"))
    assert "haven't cancelled" in kept
    assert orders(stack).get_for(SHOPPER, "SB-100102").status is OrderStatus.PACKED


def test_return_invoice_and_refund_status(stack: Stack) -> None:
    invoice = texts(say(stack, SHOPPER, "I need the invoice for order SB-100105"))
    assert "SB-100105" in invoice and "Invoice" in invoice

    say(stack, SHOPPER, "I want to return order SB-100105 and get a refund")
    items = texts(say(stack, SHOPPER, "the size is wrong"))
    assert "Which items" in items
    done = texts(say(stack, SHOPPER, "1 and 2"))
    assert "Return requested for" in done
    order = orders(stack).get_for(SHOPPER, "SB-100105")
    assert order.status is OrderStatus.RETURN_REQUESTED and order.refunds

    status = texts(say(stack, SHOPPER, "what's the status of the refund for SB-100108"))
    assert "RF-100108" in status


def test_change_address_validates_and_only_before_shipping(stack: Stack) -> None:
    locked = texts(say(stack, SHOPPER, "change the delivery address of order SB-100104"))
    assert "SB-100104" in locked and "address" in locked.lower()

    say(stack, SHOPPER, "I need to change the shipping address for SB-100102")
    bad = texts(say(stack, SHOPPER, "<script>alert('x')</script>"))
    assert "<script>" not in bad and "address" in bad.lower()
    huge = texts(say(stack, SHOPPER, "flat 9 " + "A" * 5000))
    assert "too long" in huge
    new = "42 MG Road, Shanthala Nagar, Bengaluru 560001"
    done = texts(say(stack, SHOPPER, new))
    assert "SB-100102" in done
    assert orders(stack).get_for(SHOPPER, "SB-100102").address == new


def test_empty_cart_checkout(stack: Stack) -> None:
    reply = say(stack, "e2e-empty-cart", "checkout")
    assert "cart is empty" in texts(reply)
    assert orders(stack).orders_of("e2e-empty-cart") == []


def test_cart_add_view_checkout(stack: Stack, sample_store: ProductStore) -> None:
    sender = "e2e-cart"
    shown = cards(say(stack, sender, "show me red dresses"))
    second = sample_store.get([shown[1]["id"]])[0]
    size = "M" if "M" in second.sizes else second.sizes[0]
    added = say(stack, sender, f"add the second one in size {size}")
    cart = cart_of(added)
    assert cart and [(line["id"], line["size"]) for line in cart["lines"]] == [(second.id, size)]

    button = say(stack, sender, f'/add_to_cart{{"product_id":"{shown[0]["id"]}"}}')
    first = sample_store.get([shown[0]["id"]])[0]
    if len(first.sizes) > 1:
        assert "Which size" in texts(button)
        choices = [b for m in button for b in m.get("buttons", [])]
        assert [b["title"] for b in choices] == first.sizes
        chosen = cart_of(say(stack, sender, choices[-1]["payload"]))
        assert chosen and (first.id, first.sizes[-1]) in [
            (line["id"], line["size"]) for line in chosen["lines"]]
    view = cart_of(say(stack, sender, "show my cart"))
    assert view and view["currency"] == "INR"
    assert view["total"] == pytest.approx(sum(line["line_total"] for line in view["lines"]))

    placed = say(stack, sender, "checkout")
    assert "address" in texts(placed).lower()
    done = texts(say(stack, sender, "12 Residency Road, Bengaluru 560025"))
    (order,) = orders(stack).orders_of(sender)
    assert order.order_id in done and order.status is OrderStatus.PLACED
    assert [item.product_id for item in order.items][:1] == [second.id]
    assert records(stack).cart.lines(sender) == []


def test_profile_learned_used_and_forgotten(stack: Stack, sample_store: ProductStore) -> None:
    sender = "e2e-forget"
    learned = texts(say(stack, sender, "I'm a size 9 and my budget is 1500"))
    assert "remember" in learned
    profile = records(stack).profiles.get(sender)
    assert profile.budget_max == 1500 and "9" in profile.sizes.values()

    found = say(stack, sender, "show me red dresses")
    products = sample_store.get([c["id"] for c in cards(found)])
    within = [p for p in products if p.final_price <= 1500]
    assert within and products[: len(within)] == within, "the saved budget applies"
    product = products[0]
    size = product.sizes[0] if product.sizes else ""
    assert cart_of(say(stack, sender, f"add the first one in size {size}" if size
                       else "add the first one"))

    asked = texts(say(stack, sender, "forget me"))
    assert "Go ahead?" in asked
    gone = texts(say(stack, sender, "yes"))
    assert "deleted" in gone and "preferences" in gone and "cart" in gone
    assert records(stack).profiles.get(sender).is_empty
    assert records(stack).cart.lines(sender) == []
    # No waiting: the channel purged the conversation after Rasa saved the forget turn,
    # before it answered.
    with sqlite3.connect(stack.settings.tracker_db) as db:
        rows = db.execute("SELECT COUNT(*) FROM events WHERE sender_id = ?",
                          (sender,)).fetchone()[0]
    assert rows == 0


def test_handoff_creates_a_ticket_with_the_transcript(stack: Stack) -> None:
    sender = "e2e-handoff"
    say(stack, sender, "where is my order SB-123456")
    reply = texts(say(stack, sender, "I want to talk to a human agent"))
    (ticket,) = records(stack).tickets.for_sender(sender)
    assert ticket.ticket_id in reply and "get back to you" in reply
    said = [turn.text for turn in ticket.transcript if turn.role == "user"]
    assert "where is my order SB-123456" in said


def test_flow_stories_pass_rasa_test(stack: Stack, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(rasa_executable()), "test", "core", "--model", str(stack.model),
         "--stories", "tests/stories", "--fail-on-prediction-errors",
         "--out", str(tmp_path / "results")],
        cwd=PROJECT_ROOT, env=rasa_env(), capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
