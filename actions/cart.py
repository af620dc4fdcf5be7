"""Cart actions: add (card button or "the second one in size M"), remove, view, checkout.

Every reply that changes or shows the cart also sends the widget's cart payload
(:func:`cart_payload`), priced against the catalog now. Checkout places an order through
the order store (no payment is taken here) to the address of the shopper's last order, or
one the checkout form asks for.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import services
from actions.details import entity_value
from actions.orders import (
    MAX_SLOT_TEXT,
    STOPPED_TEXT,
    delivery_address,
    latest_text,
    wants_to_stop,
)
from recsys.events import EventType
from retrieval.cards import image_url
from retrieval.catalog import Product
from retrieval.refine import positions
from shopbot.cart import CartCode, CartSummary
from shopbot.orders import REMOVED_ADDRESS
from shopbot.profile import preferred_size
from shopbot.shopdb import BadInput, short

logger = logging.getLogger(__name__)

DEMO_PAYMENT = "upi"  # checkout hands off to the payment page; nothing is charged here
_SIZE = re.compile(
    r"\b(?:in\s+)?size\s+([a-z0-9][a-z0-9./-]{0,7})\b"
    r"|\bin\s+(extra\s+small|extra\s+large|x{1,3}l|xs|small|medium|large|s|m|l)\b",
    re.IGNORECASE)
BROKEN_TEXT = "Sorry, I can't reach your cart right now. Please try again in a moment."


def size_in(text: str) -> tuple[str | None, str]:
    """The size the text names ("in size M", "size 9", "in medium") and the text without it
    (so "size 4" is never read as "the fourth one")."""
    match = _SIZE.search(text[:MAX_SLOT_TEXT])
    if not match:
        return None, text
    return (match.group(1) or match.group(2)), text[: match.start()] + text[match.end():]


def cart_summary(sender_id: str) -> CartSummary:
    return CartSummary.build(services.cart_store().lines(sender_id), services.lookup_product)


def cart_payload(summary: CartSummary) -> dict[str, Any]:
    """The widget's cart message: lines, total and savings in rupees."""
    return {
        "type": "cart",
        "lines": [{"id": line.product_id, "name": line.name, "size": line.size,
                   "qty": line.qty, "unit_price": line.unit_price,
                   "line_total": round(line.line_total, 2),
                   "image_url": image_url(line.product)} for line in summary.lines],
        "total": summary.subtotal,
        "savings": summary.savings,
        "currency": "INR",
    }


def show_cart(dispatcher: CollectingDispatcher, text: str, summary: CartSummary) -> None:
    dispatcher.utter_message(text=text, json_message=cart_payload(summary))


def products_meant(tracker: Tracker, text: str) -> tuple[list[Product], list[Product]]:
    """(products the message picks, products shown last): a button's product id first,
    else positions in the last results ("the second one", "1 and 3")."""
    store = services.product_search().store
    product_id = entity_value(tracker, "product_id")
    if product_id:
        named = store.get([product_id])
        return named, named
    shown = store.get(tracker.get_slot("shown_products") or [])
    return [shown[i - 1] for i in positions(text, len(shown))], shown


class ActionAddToCart(Action):
    def name(self) -> str:
        return "action_add_to_cart"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        size, text = size_in(latest_text(tracker))
        size = entity_value(tracker, "size") or size  # a size button's payload
        try:
            picked, shown = products_meant(tracker, text)
        except Exception:
            logger.exception("could not look up products for %s", short(tracker.sender_id))
            dispatcher.utter_message(text="Sorry, I can't look products up right now.")
            return []
        if not picked:
            if entity_value(tracker, "product_id"):
                dispatcher.utter_message(text="Sorry, that product isn't available any more.")
                return []
            if len(shown) != 1:
                dispatcher.utter_message(
                    text="Which one should I add? Search for something first, then say e.g. "
                    "'add the second one in size M'." if not shown else
                    f"Which one should I add? Say e.g. 'add the second one' (1 to {len(shown)}).")
                return []
            picked = shown
        try:
            profile = services.profile_store().get(tracker.sender_id)
            messages, added, size_buttons = [], [], []
            for product in picked[:5]:
                wanted = size or preferred_size(profile, product)
                outcome = services.cart_store().add(tracker.sender_id, product, wanted)
                messages.append(outcome.message)
                if outcome.code is CartCode.NEEDS_SIZE and len(picked) == 1:
                    size_buttons = [size_button(product.id, option) for option in product.sizes]
                if outcome.ok:
                    added.append(product.id)
                    if not size and wanted:
                        messages.append(f"(Size {wanted}, as you told me before.)")
            summary = cart_summary(tracker.sender_id)
        except Exception:
            logger.exception("add to cart failed for %s", short(tracker.sender_id))
            dispatcher.utter_message(text=BROKEN_TEXT)
            return []
        if added:
            services.log_event(tracker.sender_id, added, EventType.ADDED_TO_CART)
            show_cart(dispatcher, " ".join(messages), summary)
        else:
            dispatcher.utter_message(text=" ".join(messages), buttons=size_buttons[:12] or None)
        return []


def size_button(product_id: str, size: str) -> dict[str, str]:
    """A quick reply that adds the product in that size (no typing on a phone)."""
    payload = json.dumps({"product_id": product_id, "size": size}, separators=(",", ":"))
    return {"title": size, "payload": f"/add_to_cart{payload}"}


def _cart_line_meant(text: str, summary: CartSummary) -> list[int]:
    """0-based cart lines the text names: by number, or by words of the product's name."""
    lines = summary.lines
    picked = [i - 1 for i in positions(text, len(lines))]
    if picked:
        return picked
    words = set(re.findall(r"[a-z]{3,}", text.lower())) - {"remove", "cart", "bag", "basket",
                                                           "from", "the", "delete", "take",
                                                           "out", "please", "one", "item"}
    named = [i for i, line in enumerate(lines)
             if words & set(re.findall(r"[a-z]{3,}", f"{line.name} "
                                       f"{line.product.article_type}".lower()))]
    return named if len(named) < len(lines) or len(lines) == 1 else []


class ActionRemoveFromCart(Action):
    def name(self) -> str:
        return "action_remove_from_cart"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        size, text = size_in(latest_text(tracker))
        try:
            summary = cart_summary(tracker.sender_id)
            if summary.is_empty:
                dispatcher.utter_message(text="Your cart is already empty.")
                return []
            product_id = entity_value(tracker, "product_id")
            if product_id:
                targets = [product_id]
            else:
                lines = _cart_line_meant(text, summary)
                if not lines and len(summary.lines) == 1:
                    lines = [0]
                targets = [summary.lines[i].product_id for i in lines]
            if not targets:
                show_cart(dispatcher, "Which item should I remove? Say e.g. 'remove the first "
                          "item'.\n" + summary.text(), summary)
                return []
            outcome = None
            for target in dict.fromkeys(targets):
                outcome = services.cart_store().remove(tracker.sender_id, target, size)
            summary = cart_summary(tracker.sender_id)
        except Exception:
            logger.exception("remove from cart failed for %s", short(tracker.sender_id))
            dispatcher.utter_message(text=BROKEN_TEXT)
            return []
        show_cart(dispatcher, f"{outcome.message if outcome else ''}\n{summary.text()}".strip(),
                  summary)
        return []


class ActionViewCart(Action):
    def name(self) -> str:
        return "action_view_cart"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        try:
            summary = cart_summary(tracker.sender_id)
            shipping = services.order_rules().shipping_for(summary.subtotal)
        except Exception:
            logger.exception("view cart failed for %s", short(tracker.sender_id))
            dispatcher.utter_message(text=BROKEN_TEXT)
            return []
        if summary.is_empty and not summary.flagged:
            show_cart(dispatcher, "Your cart is empty. Find something you like and say "
                      "'add the first one'.", summary)
            return []
        show_cart(dispatcher, summary.text(shipping_fee=shipping), summary)
        return []


def saved_address(sender_id: str) -> str | None:
    """The delivery address of the shopper's last order, if it still has one."""
    for order in services.order_store().orders_of(sender_id, limit=5):
        if order.address and order.address != REMOVED_ADDRESS:
            return order.address
    return None


class ValidateCheckoutForm(FormValidationAction):
    """Asks for a delivery address only when the cart has items and none is known."""

    def name(self) -> str:
        return "validate_checkout_form"

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        # Not "or checkout_address is set": rasa_sdk asks again after extracting, and a slot
        # missing from the answer is dropped unvalidated (the form then rejects the address).
        if tracker.get_slot("flow_stopped"):
            return []
        try:
            if cart_summary(tracker.sender_id).is_empty or saved_address(tracker.sender_id):
                return []
        except Exception:
            logger.exception("checkout check failed for %s", short(tracker.sender_id))
            return []
        return domain_slots

    async def extract_checkout_address(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if tracker.get_slot("requested_slot") != "checkout_address":
            return {}
        return {"checkout_address": latest_text(tracker)[: MAX_SLOT_TEXT + 1]}

    async def validate_checkout_address(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        if wants_to_stop(tracker, value):
            dispatcher.utter_message(text=STOPPED_TEXT + " Your cart is kept as it is.")
            return {"checkout_address": None, "flow_stopped": True}
        try:
            return {"checkout_address": delivery_address(value)}
        except BadInput as error:
            dispatcher.utter_message(text=str(error))
            return {"checkout_address": None}


class ActionCheckout(Action):
    def name(self) -> str:
        return "action_checkout"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        reset = [SlotSet("checkout_address", None), SlotSet("flow_stopped", None)]
        if tracker.get_slot("flow_stopped"):
            return reset
        sender = tracker.sender_id
        try:
            summary = cart_summary(sender)
            if summary.is_empty:
                show_cart(dispatcher, "Your cart is empty, so there's nothing to check out "
                          "yet. Find something you like and say 'add the first one'.", summary)
                return reset
            address = tracker.get_slot("checkout_address") or saved_address(sender)
            if not address:
                dispatcher.utter_message(text="I need a delivery address to place the order; "
                                         "say 'checkout' again when you're ready.")
                return reset
            outcome = services.order_store().place_order(sender, summary.lines, address,
                                                         DEMO_PAYMENT)
            if not outcome.ok or outcome.order is None:
                dispatcher.utter_message(text=outcome.message)
                return reset
            services.cart_store().clear(sender)
        except Exception:
            logger.exception("checkout failed for %s", short(sender))
            dispatcher.utter_message(text="Sorry, I couldn't place your order just now; your "
                                     "cart is kept. Please try again in a moment.")
            return reset
        services.log_event(sender, [line.product_id for line in summary.lines],
                           EventType.PURCHASED)
        order = outcome.order
        skipped = (" Left out: " + "; ".join(f.reason for f in summary.flagged) + "."
                   if summary.flagged else "")
        show_cart(dispatcher, f"{summary.text(shipping_fee=order.shipping_fee)}\n"
                  f"{outcome.message}{skipped}\nDelivering to: {order.address}.\n"
                  f"Next you'd pay by {order.payment_label} on the secure payment page (this "
                  "demo takes no payment). Say 'track my order' any time to follow it.",
                  summary)
        return reset


class ActionAskCheckoutAddress(Action):
    def name(self) -> str:
        return "action_ask_checkout_address"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        dispatcher.utter_message(text="Where should we deliver your order? Please give the "
                                 "full address with the house number, city and PIN code.")
        return []
