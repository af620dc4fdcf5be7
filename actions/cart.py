"""Cart actions: add (card button or "the second one in size M"), remove, view, checkout.

Every reply that changes or shows the cart sends the cart payload (:mod:`shopcore.payloads`),
priced against the catalog now. Checkout places the cart the shopper saw as one order, once,
emptying the cart in the same transaction (:mod:`shop.checkout`; no payment is taken here),
to the address of the shopper's last order, or one the checkout form asks for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.base import ShopAction
from actions.dialogue import (
    MAX_SLOT_TEXT,
    delivery_address,
    entity_value,
    latest_text,
    positions,
    shown_ids,
    size_in,
    wants_to_stop,
)
from actions.replies import say_cart
from actions.services import services
from recsys.events import EventType
from retrieval.catalog import Product
from shop.cart import CartCode, CartSummary
from shop.checkout import CheckoutCode, checkout, read_cart, recent_order
from shop.orders import REMOVED_ADDRESS, Order
from shop.profile import preferred_size
from shopcore.ids import short
from shopcore.money import rupees
from shopcore.text import BadInput

logger = logging.getLogger(__name__)

DEMO_PAYMENT = "upi"  # checkout hands off to the payment page; nothing is charged here
STOPPED_TEXT = "No problem, I've left it there. Anything else I can help with?"
BROKEN_TEXT = "Sorry, I can't reach your cart right now. Please try again in a moment."


def cart_summary(sender_id: str) -> CartSummary:
    shop = services()
    return CartSummary.build(shop.records.cart.lines(sender_id), shop.lookup_product)


def show_cart(dispatcher: CollectingDispatcher, intro: str, summary: CartSummary,
              shipping_fee: float | None = None) -> None:
    """``intro`` then the cart (with the delivery fee and the amount to pay when given)."""
    say_cart(dispatcher, summary.payload(intro, shipping_fee))


def products_meant(tracker: Tracker, text: str) -> tuple[list[Product], list[Product]]:
    """(products the message picks, products shown last): a button's product id first,
    else positions in the last results ("the second one", "1 and 3")."""
    store = services().store
    product_id = entity_value(tracker, "product_id")
    if product_id:
        named = store.get([product_id])
        return named, named
    shown = store.get(shown_ids(tracker))
    return [shown[i - 1] for i in positions(text, len(shown))], shown


class ActionAddToCart(ShopAction):
    def name(self) -> str:
        return "action_add_to_cart"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
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
        shop = services()
        try:
            profile = shop.records.profiles.get(tracker.sender_id)
            messages, added, size_buttons = [], [], []
            for product in picked[:5]:
                wanted = size or preferred_size(profile, product)
                outcome = shop.records.cart.add(tracker.sender_id, product, wanted)
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
            shop.log_event(tracker.sender_id, added, EventType.ADDED_TO_CART)
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


class ActionRemoveFromCart(ShopAction):
    def name(self) -> str:
        return "action_remove_from_cart"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
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
                          "item'.", summary)
                return []
            outcome = None
            for target in dict.fromkeys(targets):
                outcome = services().records.cart.remove(tracker.sender_id, target, size)
            summary = cart_summary(tracker.sender_id)
        except Exception:
            logger.exception("remove from cart failed for %s", short(tracker.sender_id))
            dispatcher.utter_message(text=BROKEN_TEXT)
            return []
        show_cart(dispatcher, outcome.message if outcome else "", summary)
        return []


class ActionViewCart(ShopAction):
    def name(self) -> str:
        return "action_view_cart"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
        try:
            summary = cart_summary(tracker.sender_id)
            shipping = services().records.orders.rules.shipping_for(summary.subtotal)
        except Exception:
            logger.exception("view cart failed for %s", short(tracker.sender_id))
            dispatcher.utter_message(text=BROKEN_TEXT)
            return []
        if summary.is_empty and not summary.flagged:
            show_cart(dispatcher, "Your cart is empty. Find something you like and say "
                      "'add the first one'.", summary)
            return []
        show_cart(dispatcher, "", summary, shipping)
        return []


def saved_address(sender_id: str) -> str | None:
    """The delivery address of the shopper's last order, if it still has one."""
    for order in services().records.orders.orders_of(sender_id, limit=5):
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
            if await asyncio.to_thread(_nothing_to_ask, tracker.sender_id):
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


def _nothing_to_ask(sender_id: str) -> bool:
    """No address question: the cart is empty, or the last order's address is at hand."""
    return cart_summary(sender_id).is_empty or saved_address(sender_id) is not None


class ActionCheckout(ShopAction):
    """Places the cart the shopper saw as one order, once (see :mod:`shop.checkout`), and
    says what really happened: placed now, placed already, or not placed and why."""

    def name(self) -> str:
        return "action_checkout"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
        reset = [SlotSet("checkout_address", None), SlotSet("flow_stopped", None)]
        if tracker.get_slot("flow_stopped"):
            return reset
        sender = tracker.sender_id
        try:
            shop = services()
            records = shop.records
            seen = read_cart(records.cart, sender, shop.lookup_product)
            if not seen.rows:
                _say_cart_empty(dispatcher, sender, seen.summary)
                return reset
            if seen.summary.is_empty:
                show_cart(dispatcher, "Nothing in your cart can be ordered right now.",
                          seen.summary)
                return reset
            address = tracker.get_slot("checkout_address") or saved_address(sender)
            if not address:
                dispatcher.utter_message(text="I need a delivery address to place the order; "
                                         "say 'checkout' again when you're ready.")
                return reset
            outcome = checkout(records.orders, records.cart, seen, address, DEMO_PAYMENT)
            if outcome.code is CheckoutCode.CART_CHANGED:
                current = CartSummary.build(outcome.cart, shop.lookup_product)
                fee = records.orders.rules.shipping_for(current.subtotal) if outcome.cart else None
                show_cart(dispatcher, outcome.message, current, fee)
                return reset
            if outcome.order is None:
                dispatcher.utter_message(text=outcome.message)
                return reset
        except Exception:
            logger.exception("checkout failed for %s", short(sender))
            dispatcher.utter_message(text="Sorry, I couldn't place your order just now; your "
                                     "cart is kept. Please try again in a moment.")
            return reset
        order = outcome.order
        if outcome.code is CheckoutCode.ALREADY_PLACED:
            _say_order(dispatcher, outcome.message, order)
            return reset
        shop.log_event(sender, [line.product_id for line in seen.summary.lines],
                       EventType.PURCHASED)
        summary = seen.summary
        skipped = (" Left out: " + "; ".join(f.reason for f in summary.flagged) + "."
                   if summary.flagged else "")
        cart = summary.payload(shipping_fee=order.shipping_fee)
        dispatcher.utter_message(
            text=f"{cart.text()}\n{outcome.message}{skipped}\nDelivering to: {order.address}.\n"
                 f"Next you'd pay by {order.payment_label} on the secure payment page (this "
                 "demo takes no payment). Say 'track my order' any time to follow it.",
            json_message=order.payload(outcome.message).to_dict())
        return reset


def _say_cart_empty(dispatcher: CollectingDispatcher, sender: str,
                    summary: CartSummary) -> None:
    """An empty cart at checkout right after an order most likely means that order went
    through (its reply lost to a crash or a dropped connection): say so, not just "empty"."""
    order = recent_order(services().records.orders, sender)
    if order is None:
        show_cart(dispatcher, "Your cart is empty, so there's nothing to check out yet. Find "
                  "something you like and say 'add the first one'.", summary)
        return
    _say_order(dispatcher, f"Your cart is empty because your order {order.order_id} "
               f"({rupees(order.total)}) is already placed; nothing new was ordered.", order)


def _say_order(dispatcher: CollectingDispatcher, message: str, order: Order) -> None:
    """``message`` about an order the shopper already has, with the order itself."""
    dispatcher.utter_message(
        text=f"{message}\n{order.status_text()}\nSay 'track my order' any time to follow it.",
        json_message=order.payload(message).to_dict())
