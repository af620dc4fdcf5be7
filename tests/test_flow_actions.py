"""The order and cart flows' form validators and actions, on real stores and the sample catalog."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.cart import ActionAddToCart, ActionCheckout, ValidateCheckoutForm, cart_summary
from actions.dialogue import size_in
from actions.handoff import ActionHandoff
from actions.orders import (
    ActionCancelOrder,
    ValidateCancelOrderForm,
    ValidateChangeAddressForm,
    ValidateReturnOrderForm,
    ValidateTrackOrderForm,
    pick_items,
)
from actions.services import services
from retrieval.store import ProductStore

SHOPPER = "demo-shopper"
DOMAIN: dict[str, Any] = {"forms": {
    "cancel_order_form": {"required_slots": ["order_id", "order_confirm"]},
    "change_address_form": {"required_slots": ["order_id", "new_address"]},
    "return_order_form": {"required_slots": ["order_id", "return_reason", "return_items"]},
    "track_order_form": {"required_slots": ["order_id"]},
}}


@pytest.fixture
def shop(services_on_sample_store: object) -> None:
    """Actions on the sample catalog with a fresh shop database (demo orders seeded)."""


def tracker(text: str = "", sender: str = SHOPPER, intent: str = "inform", events: list[Any]
            | None = None, entities: list[dict[str, Any]] | None = None,
            **slots: Any) -> Tracker:
    return Tracker(sender, slots, {"text": text, "intent": {"name": intent},
                                   "entities": entities or []},
                   events or [], False, None, {}, "action_listen")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def said(dispatcher: CollectingDispatcher) -> str:
    return "\n".join(m.get("text") or "" for m in dispatcher.messages)


def validate_id(form: Any, value: str, sender: str = SHOPPER, **slots: Any) -> tuple[dict, str]:
    dispatcher = CollectingDispatcher()
    out = run(form.validate_order_id(value, dispatcher, tracker(value, sender, **slots), {}))
    return out, said(dispatcher)


def test_order_id_shape_ownership_and_no_leak(shop: None) -> None:
    form = ValidateTrackOrderForm()
    assert validate_id(form, "it's sb 100103 I think")[0]["order_id"] == "SB-100103"
    bad, bad_text = validate_id(form, "12ab")
    assert bad["order_id"] is None and "doesn't look like an order number" in bad_text
    unknown, unknown_text = validate_id(form, "SB-999999")
    theirs, theirs_text = validate_id(form, "SB-200101")
    assert unknown["order_id"] is None and theirs["order_id"] is None
    assert theirs_text.replace("SB-200101", "X") == unknown_text.replace("SB-999999", "X")
    huge, huge_text = validate_id(form, "x" * 50_000)
    assert huge["order_id"] is None and "too long" in huge_text


def test_three_bad_answers_end_the_form_and_stop_ends_it_at_once(shop: None) -> None:
    form = ValidateTrackOrderForm()
    out, text = validate_id(form, "no idea", flow_tries=2.0)
    assert out["flow_stopped"] is True and "ask again" in text
    stopped, _ = validate_id(form, "never mind")
    assert stopped["flow_stopped"] is True
    slots = run(form.required_slots(["order_id"], CollectingDispatcher(),
                                    tracker(flow_stopped=True), DOMAIN))
    assert slots == []


def test_cancel_form_skips_the_question_once_shipped(shop: None) -> None:
    form = ValidateCancelOrderForm()
    domain_slots = ["order_id", "order_confirm"]
    shipped = run(form.required_slots(domain_slots, CollectingDispatcher(),
                                      tracker(order_id="SB-100103"), DOMAIN))
    placed = run(form.required_slots(domain_slots, CollectingDispatcher(),
                                     tracker(order_id="SB-100101"), DOMAIN))
    assert shipped == ["order_id"] and placed == domain_slots

    dispatcher = CollectingDispatcher()
    run(ActionCancelOrder().run(dispatcher, tracker(order_id="SB-100103"), {}))
    assert "shipped" in said(dispatcher).lower()
    assert services().records.orders.get_for(SHOPPER, "SB-100103").status == "shipped"

    dispatcher = CollectingDispatcher()
    run(ActionCancelOrder().run(dispatcher, tracker(order_id="SB-100101", order_confirm=True),
                                {}))
    assert "is cancelled" in said(dispatcher)


@pytest.mark.parametrize("address", ["<script>alert(1)</script>", "'; DROP TABLE orders; --",
                                     "x" * 5000, "\u202e\u0000"])
def test_bad_addresses_are_refused_with_a_reason(shop: None, address: str) -> None:
    dispatcher = CollectingDispatcher()
    out = run(ValidateChangeAddressForm().validate_new_address(
        address, dispatcher, tracker(address, order_id="SB-100102"), {}))
    assert out["new_address"] is None
    assert said(dispatcher) and address not in said(dispatcher)


def test_return_form_asks_items_only_for_several(shop: None) -> None:
    form = ValidateReturnOrderForm()
    slots = ["order_id", "return_reason", "return_items"]
    several = run(form.required_slots(slots, CollectingDispatcher(),
                                      tracker(order_id="SB-100105"), DOMAIN))
    assert several == slots
    order = services().records.orders.get_for(SHOPPER, "SB-100105")
    ids = [item.product_id for item in order.items]
    assert pick_items("1 and 3", order) == [ids[0], ids[2]]
    assert pick_items("all of them", order) == ids
    assert pick_items("hmm", order) is None


def test_size_phrase_is_not_a_position() -> None:
    assert size_in("add the second one in size M") == ("M", "add the second one ")
    assert size_in("add size 4 of the first one")[0] == "4"
    assert size_in("add the first one")[0] is None


def add(text: str, sender: str, **kwargs: Any) -> tuple[CollectingDispatcher, Any]:
    dispatcher = CollectingDispatcher()
    run(ActionAddToCart().run(dispatcher, tracker(text, sender, **kwargs), {}))
    return dispatcher, cart_summary(sender)


def test_add_by_position_and_size_then_checkout(shop: None, sample_store: ProductStore) -> None:
    sender = "unit-cart"
    products = [p for p in sample_store.get(sorted(sample_store.all_ids())[:40])
                if len(p.sizes) > 1][:3]
    shown = [p.id for p in products]
    target = products[1]
    dispatcher, summary = add(f"add the second one in size {target.sizes[-1]}", sender,
                              shown_products=shown)
    assert [(line.product_id, line.size) for line in summary.lines] == [
        (target.id, target.sizes[-1])]
    payload = dispatcher.messages[-1]["custom"]
    assert payload["lines"] == summary.payload().to_dict()["lines"] and payload["type"] == "cart"
    assert payload["total"] == pytest.approx(sum(x["line_total"] for x in payload["lines"]))

    dispatcher, _ = add("add the first one", sender, shown_products=shown)
    assert "Which size" in said(dispatcher)
    buttons = dispatcher.messages[-1]["buttons"]
    assert [b["title"] for b in buttons] == products[0].sizes
    pick = buttons[0]["payload"]  # what tapping the first size sends back
    assert pick.startswith("/add_to_cart{")
    entities = [{"entity": k, "value": v} for k, v in json.loads(pick[len("/add_to_cart"):])
                .items()]
    _, summary = add(pick, sender, intent="add_to_cart", entities=entities, shown_products=shown)
    assert (products[0].id, products[0].sizes[0]) in [
        (line.product_id, line.size) for line in summary.lines]

    dispatcher = CollectingDispatcher()
    run(ActionCheckout().run(dispatcher, tracker("checkout", sender,
                                                 checkout_address="1 Hill Road, Pune 411001"),
                             {}))
    (order,) = services().records.orders.orders_of(sender)
    assert order.order_id in said(dispatcher) and cart_summary(sender).is_empty


def test_checkout_form_keeps_the_address_it_was_given(shop: None, sample_store: ProductStore
                                                      ) -> None:
    """The whole rasa_sdk form run, as Rasa calls it: extraction, then validation (which
    asks required_slots again) must hand back the address, or Rasa rejects the form."""
    sender = "unit-checkout-form"
    product = next(p for p in sample_store.get(sorted(sample_store.all_ids())[:40]) if p.sizes)
    services().records.cart.add(sender, product, product.sizes[0])
    domain = {"forms": {"checkout_form": {"required_slots": ["checkout_address"]}}}
    for text, kept in (("12 Residency Road, Bengaluru 560025", True), ("<b>hi</b>", False)):
        dispatcher = CollectingDispatcher()
        events = run(ValidateCheckoutForm().run(
            dispatcher, tracker(text, sender, intent="search_products",
                                requested_slot="checkout_address"), domain))
        values = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
        assert "checkout_address" in values, "no SlotSet: Rasa would reject the form"
        assert (values["checkout_address"] == text) is kept
        assert kept or "just the address" in said(dispatcher)


def test_empty_cart_checkout_places_nothing(shop: None) -> None:
    dispatcher = CollectingDispatcher()
    run(ActionCheckout().run(dispatcher, tracker("checkout", "unit-empty"), {}))
    assert "cart is empty" in said(dispatcher)
    assert services().records.orders.orders_of("unit-empty") == []


def test_handoff_ticket_keeps_the_transcript(shop: None) -> None:
    events = [{"event": "user", "text": "my parcel is damaged", "timestamp": 1.7e9},
              {"event": "bot", "text": "Sorry to hear that.", "timestamp": 1.7e9 + 1},
              {"event": "user", "text": "/contact_human_agent", "timestamp": 1.7e9 + 2}]
    dispatcher = CollectingDispatcher()
    run(ActionHandoff().run(dispatcher, tracker("/contact_human_agent", "unit-handoff",
                                                "contact_human_agent", events), {}))
    (ticket,) = services().records.tickets.for_sender("unit-handoff")
    assert ticket.reason == "my parcel is damaged"
    assert [t.text for t in ticket.transcript][:2] == ["my parcel is damaged",
                                                       "Sorry to hear that."]
    assert ticket.ticket_id in said(dispatcher)
