"""Conversations that keep their thread, over REST on the shared stack (issue 15, section 2):
a form gives way to a different request, orders named without their number, no dead ends,
and follow-ups or negations on the sample catalog.

The demo shopper's orders come from shop/demo.py (SB-100101.. placed days ago).
"""

from __future__ import annotations

from collections import Counter

import pytest

from retrieval.store import ProductStore
from shop.orders import OrderStatus
from shop.records import ShopRecords
from shopbot.stack import Stack
from tests.e2e import cards, chat, say, texts

pytestmark = pytest.mark.e2e

SHOPPER = "demo-shopper"


def buttons(messages: list[dict]) -> list[dict]:
    return [b for m in messages for b in m.get("buttons") or []]


def test_a_form_yields_to_a_different_request_and_offers_to_go_back(stack: Stack) -> None:
    sender = "demo-shopper"
    asked = say(stack, sender, "I want to cancel an order")
    assert "which order" in texts(asked).lower()

    answered = say(stack, sender, "where is my order SB-100101")
    said = texts(answered)
    assert "SB-100101" in said and "placed" in said, said
    assert "shall i cancel" not in said.lower()
    assert "Do you still want to cancel an order?" in said
    assert [b["payload"] for b in buttons(answered)] == ["/cancel_order", "/deny"]
    order = ShopRecords.open(stack.settings).orders.get_for(SHOPPER, "SB-100101")
    assert order is not None and order.status is OrderStatus.PLACED  # nothing was cancelled

    resumed = say(stack, sender, "/cancel_order")
    assert "which order" in texts(resumed).lower()
    assert "left it there" in texts(say(stack, sender, "stop"))
    # Left cleanly: the next message is a search, not an order number.
    assert cards(say(stack, sender, "show me red dresses"))


def test_a_search_in_the_middle_of_a_form_is_a_search(stack: Stack) -> None:
    sender = "e2e-form-search"
    assert "order" in texts(say(stack, sender, "track my order")).lower()
    searched = say(stack, sender, "show me red dresses")
    assert len(cards(searched)) >= 3
    assert "Do you still want to track an order?" in texts(searched)
    # "No, leave it": the form is gone, the next answer is not read as an order number.
    say(stack, sender, "/deny")
    assert cards(say(stack, sender, "blue jeans"))


def test_invoice_for_my_last_order(stack: Stack) -> None:
    latest = ShopRecords.open(stack.settings).orders.orders_of(SHOPPER)[0]
    reply = texts(say(stack, SHOPPER, "send me the invoice for my last order"))
    assert latest.order_id in reply and latest.invoice_number in reply, reply
    assert "doesn't look like an order number" not in reply


def test_order_named_by_the_month_it_was_bought(stack: Stack) -> None:
    placed = ShopRecords.open(stack.settings).orders.orders_of(SHOPPER)
    months = Counter(o.placed_at.strftime("%B") for o in placed)
    single = next((m for m, n in months.items() if n == 1), None)
    several = next((m for m, n in months.items() if n > 1), None)
    assert single or several
    if single:
        (order,) = [o for o in placed if o.placed_at.strftime("%B") == single]
        reply = texts(say(stack, SHOPPER, f"where is the one I bought in {single}?"))
        assert order.order_id in reply and "doesn't look like" not in reply, reply
    if several:
        ids = [o.order_id for o in placed if o.placed_at.strftime("%B") == several]
        asked = texts(say(stack, "demo-shopper", "track my order"))
        assert "which order" in asked.lower()
        reply = texts(say(stack, SHOPPER, f"the one from {several}"))
        assert all(i in reply for i in ids[:5]) and "which one is it?" in reply, reply
        say(stack, SHOPPER, "stop")


def test_that_red_one_among_the_shown_products(stack: Stack, sample_store: ProductStore
                                              ) -> None:
    sender = "e2e-red-one"
    shown = sample_store.get([c["id"] for c in cards(say(stack, sender, "dresses"))])
    red = [p for p in shown if p.base_colour == "Red"]
    other = [p for p in shown if p.base_colour != "Red"]
    assert red and other, "the sample's first page of dresses mixes colours"
    opened = cards(say(stack, sender, "tell me about that red one"))
    assert [c["id"] for c in opened] == [red[0].id]


def test_tell_me_about_it_reads_as_a_description(stack: Stack) -> None:
    sender = "e2e-describe"
    assert cards(say(stack, sender, "casual shoes for men"))
    reply = texts(say(stack, sender, "tell me about the first one"))
    assert "Price: ₹" in reply and " for men" in reply, reply
    assert "Product id" not in reply and "articleType" not in reply


def test_two_misunderstandings_in_a_row_offer_a_person(stack: Stack) -> None:
    sender = "e2e-misses"
    first = say(stack, sender, "zxqv blorp wug")
    assert "person" not in texts(first).lower() and not buttons(first)
    second = say(stack, sender, "qwpoeiru asdkjh")
    assert "person" in texts(second).lower()
    assert "/contact_human_agent" in [b["payload"] for b in buttons(second)]


def test_follow_up_the_nlu_misreads_refines_the_search(stack: Stack,
                                                       sample_store: ProductStore) -> None:
    sender = "e2e-in-black"
    first = sample_store.get([c["id"] for c in cards(say(stack, sender, "sports shoes"))])
    assert first and all(p.article_type == "Sports Shoes" for p in first)
    found = sample_store.get([c["id"] for c in cards(say(stack, sender, "in black"))])
    assert found and all(p.article_type == "Sports Shoes" for p in found)
    black = [p for p in found if p.base_colour == "Black"]
    # The sample has three black sports shoes: they come first, then the closest others.
    assert len(black) == 3 and found[:3] == black


def test_negation_on_the_sample_catalog(stack: Stack, sample_store: ProductStore) -> None:
    reply = say(stack, "e2e-not-white", "shirts for men but not white")
    found = sample_store.get([c["id"] for c in cards(reply)])
    assert found and all(p.article_type == "Shirts" and p.base_colour != "White"
                         for p in found)
    assert "not white" in texts(reply).lower()


def test_a_message_between_two_requests_gets_a_question_with_buttons(stack: Stack) -> None:
    # The NLU puts this between returning and cancelling (bench/conversations.yml found it).
    reply = say(stack, "e2e-clarify", "I want to return order SB-100105")
    said = texts(reply)
    assert said.startswith("Sorry, I'm not sure what you need: do you want to "), said
    payloads = [b["payload"] for b in buttons(reply)]
    assert len(payloads) == 3 and "/get_refund" in payloads and payloads[-1] == "/deny"
    # A button is the request itself: the return flow starts (this shopper has no orders).
    started = texts(say(stack, "e2e-clarify", "/get_refund"))
    assert started.startswith("To return an order, I need the order number."), started
    say(stack, "e2e-clarify", "stop")


def test_in_red_after_heels_through_the_widgets_endpoint(stack: Stack,
                                                          sample_store: ProductStore) -> None:
    """The widget's path (/api/chat, cookie session): "in red" keeps the heels and the budget
    and reads "red" as the colour, never as a brand."""
    first = cards(chat(stack, "widget-heels", "black heels under 1500 for a party"))
    assert first and all(c["article_type"] == "Heels" for c in first)
    reply = chat(stack, "widget-heels", "in red")
    found = sample_store.get([c["id"] for c in cards(reply)])
    assert found and all(p.article_type == "Heels" for p in found), texts(reply)
    red = [p for p in found if p.base_colour == "Red" and p.final_price <= 1500]
    # The sample has two red heels under 1500: they come first.
    assert len(red) == 2 and found[:2] == red
    intro = next(m["custom"]["intro"] for m in reply if (m.get("custom") or {}).get("intro"))
    assert intro.startswith("I found 2 red party heels under ₹1,500"), intro
