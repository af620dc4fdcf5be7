"""Order flows as Rasa forms: track, refund status, invoice, cancel, return, change address.

Every form asks for the order number (unless the first message had one) and checks it
belongs to the shopper: an unknown number and another shopper's number get the same answer,
so a number never tells anyone whose it is. A flow that cannot go ahead (cancelling a
shipped order, changing the address of one on its way) stops after the order number with
the reason instead of asking questions whose answers would be thrown away. Saying "stop"
or "no", or three unusable answers in a row, ends a form without losing anything.
"""

from __future__ import annotations

import asyncio
import logging
import re
from abc import ABC, abstractmethod
from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.base import ShopAction
from actions.dialogue import (
    MAX_SLOT_TEXT,
    delivery_address,
    latest_intent,
    latest_text,
    positions,
    wants_to_stop,
)
from actions.replies import hand_off
from actions.routing import FLOWS, yield_target
from actions.services import services
from shop.orders import Order, OrderCode, OrderOutcome, OrderStore
from shop.references import OrderReference, find_order
from shop.rules import MAX_REASON_CHARS
from shopcore.ids import ORDER_ID_HELP, parse_order_id, short
from shopcore.text import BadInput, clean_text

logger = logging.getLogger(__name__)

MAX_TRIES = 3
HANDOFF_INTENTS = ("contact_human_agent", "complaint")
RECENT_ORDERS_SHOWN = 5
# Slots the order forms fill; reset after every flow so the next one starts clean.
FLOW_SLOTS = ("order_id", "order_confirm", "return_reason", "return_items", "new_address",
              "flow_stopped", "flow_tries")
_ALL_ITEMS = re.compile(r"\b(?:all|everything|every\s+item|whole\s+order|both)\b", re.IGNORECASE)
STOPPED_TEXT = "No problem, I've left it there. Anything else I can help with?"
GIVE_UP_TEXT = ("Let's leave it there for now. When you have it to hand, just ask again, or "
                "say 'talk to a person' and our support team will help.")
NO_ORDER_TEXT = ("No problem. Whenever you have your order number, just ask again. "
                 + ORDER_ID_HELP)


def reset_flow() -> list[dict[str, Any]]:
    return [SlotSet(name, None) for name in FLOW_SLOTS]


def orders() -> OrderStore:
    return services().records.orders


def order_of(tracker: Tracker) -> Order | None:
    """The shopper's order named in the ``order_id`` slot (already validated)."""
    order_id = tracker.get_slot("order_id")
    return orders().get_for(tracker.sender_id, order_id) if order_id else None


class OrderFormValidation(FormValidationAction):
    """Shared order-number handling: extraction from free text, shape and ownership."""

    @abstractmethod
    def name(self) -> str:
        """Every form's validation action names itself (abstract: never registered)."""

    def blocked(self, tracker: Tracker) -> bool:
        """True when the flow can't go ahead for this order (the submit action says why)."""
        return False

    def form_name(self) -> str:
        return self.name().removeprefix("validate_")

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[dict[str, Any]]:
        """Yield to a different request instead of reading it as the answer: the form
        ends, the request's own action runs, and that action offers to pick the form up
        again (``paused_flow``)."""
        intent = (tracker.latest_message or {}).get("intent") or {}
        target = yield_target(self.form_name(), tracker.get_slot("requested_slot"),
                              str(intent.get("name") or ""),
                              float(intent.get("confidence") or 0.0), latest_text(tracker))
        if target is None:
            return await super().run(dispatcher, tracker, domain)
        logger.info("%s yields to %s for %s", self.form_name(), target,
                    short(tracker.sender_id))
        return [SlotSet("requested_slot", None), *reset_flow(),
                SlotSet("paused_flow", self.form_name()), FollowupAction(target)]

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        if tracker.get_slot("flow_stopped"):
            return []
        if tracker.get_slot("order_id") and await asyncio.to_thread(self.blocked, tracker):
            return ["order_id"]
        return domain_slots

    def free_text(self, tracker: Tracker, slot: str) -> dict[str, Any]:
        """The latest message for ``slot`` while it is the one asked for."""
        if tracker.get_slot("requested_slot") != slot:
            return {}
        return {slot: latest_text(tracker)[: MAX_SLOT_TEXT + 1]}

    async def extract_order_id(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        requested = tracker.get_slot("requested_slot")
        if requested is None and not tracker.get_slot("order_id"):
            # The message that started the form: "cancel order SB-100103", or "send me the
            # invoice for my last order" (only an order the reference finds unambiguously).
            text = latest_text(tracker)
            found = parse_order_id(text)
            if found is None:
                reference = await asyncio.to_thread(self.reference, tracker, text)
                found = reference.order.order_id if reference and reference.order else None
            return {"order_id": found} if found else {}
        return self.free_text(tracker, "order_id")

    @staticmethod
    def reference(tracker: Tracker, text: str) -> OrderReference | None:
        """The shopper's orders that "my last order" / "the one from November" means."""
        try:
            return find_order(text, orders().orders_of(tracker.sender_id))
        except Exception:
            logger.exception("order reference failed for %s", short(tracker.sender_id))
            return None

    def refuse(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, slot: str, message: str
    ) -> dict[str, Any]:
        """Say what was wrong and ask again; after MAX_TRIES give up politely."""
        tries = int(tracker.get_slot("flow_tries") or 0) + 1
        if tries >= MAX_TRIES:
            dispatcher.utter_message(text=f"{message} {GIVE_UP_TEXT}".strip())
            return {slot: None, "flow_tries": None, "flow_stopped": True}
        if message:  # (empty: the question asked next says it all)
            dispatcher.utter_message(text=message)
        return {slot: None, "flow_tries": float(tries)}

    def stop(self, dispatcher: CollectingDispatcher, slot: str) -> dict[str, Any]:
        dispatcher.utter_message(text=STOPPED_TEXT)
        return {slot: None, "flow_stopped": True, "flow_tries": None}

    async def validate_order_id(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        if wants_to_stop(tracker, value):
            return self.stop(dispatcher, "order_id")
        if latest_intent(tracker) in HANDOFF_INTENTS:  # "a person, please" mid-form
            await asyncio.to_thread(hand_off, dispatcher, tracker, services())
            return {"order_id": None, "flow_stopped": True, "flow_tries": None}
        text = value if isinstance(value, str) else ""
        if len(text) > MAX_SLOT_TEXT:
            logger.info("oversized order id answer from %s", short(tracker.sender_id))
            return self.refuse(dispatcher, tracker, "order_id",
                               "That message is too long to be an order number. "
                               + ORDER_ID_HELP)
        if parse_order_id(text) is None:  # "my last one", "the one I bought in November"
            reference = await asyncio.to_thread(self.reference, tracker, text)
            if reference and reference.order is None:  # the question lists the ones that fit
                return self.refuse(dispatcher, tracker, "order_id", "")
            text = reference.order.order_id if reference and reference.order else text
        outcome = await asyncio.to_thread(orders().track, tracker.sender_id, text)
        if outcome.code in (OrderCode.BAD_ORDER_ID, OrderCode.NOT_FOUND):
            return self.refuse(dispatcher, tracker, "order_id", outcome.message)
        if not outcome.ok or outcome.order is None:
            return self.refuse(dispatcher, tracker, "order_id", outcome.message)
        return {"order_id": outcome.order.order_id, "flow_tries": None}


class ValidateTrackOrderForm(OrderFormValidation):
    def name(self) -> str:
        return "validate_track_order_form"


class ValidateTrackRefundForm(OrderFormValidation):
    def name(self) -> str:
        return "validate_track_refund_form"


class ValidateInvoiceForm(OrderFormValidation):
    def name(self) -> str:
        return "validate_invoice_form"


class ValidateCancelOrderForm(OrderFormValidation):
    def name(self) -> str:
        return "validate_cancel_order_form"

    def blocked(self, tracker: Tracker) -> bool:
        outcome = orders().cancel(tracker.sender_id, tracker.get_slot("order_id"), dry_run=True)
        return not outcome.ok

    async def validate_order_confirm(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        return {"order_confirm": value if isinstance(value, bool) else None}


class ValidateChangeAddressForm(OrderFormValidation):
    def name(self) -> str:
        return "validate_change_address_form"

    def blocked(self, tracker: Tracker) -> bool:
        outcome = orders().change_address(
            tracker.sender_id, tracker.get_slot("order_id"), "", dry_run=True)
        return not outcome.ok

    async def extract_new_address(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self.free_text(tracker, "new_address")

    async def validate_new_address(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        if wants_to_stop(tracker, value):
            return self.stop(dispatcher, "new_address")
        try:
            address = delivery_address(value)
        except BadInput as error:
            logger.info("bad address from %s: %s", short(tracker.sender_id), error)
            return self.refuse(dispatcher, tracker, "new_address", str(error))
        return {"new_address": address, "flow_tries": None}


def returnable(order: Order) -> list[tuple[int, str, str]]:
    """(position, product id, label) of the lines still returnable, numbered from 1."""
    lines = [item for item in order.items if item.returned_qty < item.qty]
    return [(n, item.product_id, item.label()) for n, item in enumerate(lines, start=1)]


def pick_items(text: str, order: Order) -> list[str] | None:
    """Product ids the shopper chose ("1 and 3", "the jeans", "all"); None if unclear."""
    lines = returnable(order)
    if _ALL_ITEMS.search(text):
        return [pid for _, pid, _ in lines]
    chosen = [lines[i - 1][1] for i in positions(text, len(lines))]
    if not chosen:
        words = {w for w in re.findall(r"[a-z]{3,}", text.lower())}
        chosen = [pid for _, pid, label in lines
                  if words & set(re.findall(r"[a-z]{3,}", label.lower()))]
        if len(chosen) == len(lines) and len(lines) > 1:
            return None  # the words fit every line: not a choice
    return list(dict.fromkeys(chosen)) or None


class ValidateReturnOrderForm(OrderFormValidation):
    def name(self) -> str:
        return "validate_return_order_form"

    def blocked(self, tracker: Tracker) -> bool:
        outcome = orders().request_return(
            tracker.sender_id, tracker.get_slot("order_id"), "", dry_run=True)
        return not outcome.ok

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        slots = await super().required_slots(domain_slots, dispatcher, tracker, domain)
        if "return_items" in slots:
            order = await asyncio.to_thread(order_of, tracker)
            if order is not None and len(returnable(order)) <= 1:
                slots = [s for s in slots if s != "return_items"]
        return slots

    async def extract_return_reason(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self.free_text(tracker, "return_reason")

    async def validate_return_reason(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        if wants_to_stop(tracker, value):
            return self.stop(dispatcher, "return_reason")
        try:
            reason = clean_text(value, what="reason", max_chars=MAX_REASON_CHARS, min_chars=2)
        except BadInput as error:
            return self.refuse(dispatcher, tracker, "return_reason", str(error))
        return {"return_reason": reason, "flow_tries": None}

    async def extract_return_items(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self.free_text(tracker, "return_items")

    async def validate_return_items(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        if isinstance(value, list):  # already product ids
            return {"return_items": value}
        if wants_to_stop(tracker, value):
            return self.stop(dispatcher, "return_items")
        order = await asyncio.to_thread(order_of, tracker)
        text = value if isinstance(value, str) and len(value) <= MAX_SLOT_TEXT else ""
        chosen = pick_items(text, order) if order else None
        if not chosen:
            return self.refuse(dispatcher, tracker, "return_items",
                               "Please pick the items by number, e.g. '1' or '1 and 2', "
                               "or say 'all'.")
        return {"return_items": chosen, "flow_tries": None}


# -- questions the forms ask -------------------------------------------------------------------


class ActionAskOrderId(ShopAction):
    """'Which order?' with the shopper's recent orders as buttons (only their own)."""

    def name(self) -> str:
        return "action_ask_order_id"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
        try:
            placed = orders().orders_of(tracker.sender_id)
        except Exception:
            logger.exception("could not list orders for %s", short(tracker.sender_id))
            placed = []
        doing = FLOWS.get(str((tracker.active_loop or {}).get("name") or ""), ("", ""))[1]
        if not placed:
            ask = f"To {doing}, I need the order number." if doing else \
                "What's the order number?"
            dispatcher.utter_message(text=f"{ask} {ORDER_ID_HELP}")
            return []
        # "the one I bought in November" with two November orders: offer just those.
        reference = find_order(latest_text(tracker), placed)
        if reference and len(reference.orders) > 1:
            offered = reference.orders[:RECENT_ORDERS_SHOWN]
            text = (f"{len(reference.orders)} orders fit {reference.said} "
                    f"({', '.join(o.order_id for o in offered)}): which one is it?")
        else:
            first_ask = doing and not tracker.get_slot("flow_tries")
            text = (f"Sure, I can help you {doing}. " if first_ask else "") + (
                "Which order is it? Pick one of your recent orders or type the order number "
                "(like SB-123456).")
            offered = tuple(placed[:RECENT_ORDERS_SHOWN])
        buttons = [{"title": f"{o.order_id} ({o.status.value.replace('_', ' ')})",
                    "payload": o.order_id} for o in offered]
        dispatcher.utter_message(text=text, buttons=buttons)
        return []


class ActionAskOrderConfirm(ShopAction):
    def name(self) -> str:
        return "action_ask_order_confirm"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
        order = order_of(tracker)
        head = order.headline() if order else "This order"
        dispatcher.utter_message(
            text=f"{head} hasn't shipped yet, so it can still be cancelled. Shall I cancel it?",
            buttons=[{"title": "Yes, cancel it", "payload": "/affirm"},
                     {"title": "No, keep it", "payload": "/deny"}])
        return []


class ActionAskReturnItems(ShopAction):
    def name(self) -> str:
        return "action_ask_return_items"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
        order = order_of(tracker)
        lines = returnable(order) if order else []
        listed = "\n".join(f"{n}. {label}" for n, _, label in lines)
        dispatcher.utter_message(text=f"Which items would you like to return?\n{listed}\n"
                                 "Say the numbers (e.g. '1 and 2') or 'all'.")
        return []


# -- what the forms do when they're complete ------------------------------------------------------


class OrderFlowAction(ShopAction, ABC):
    """Runs after an order form: says the outcome and clears the form's slots."""

    @abstractmethod
    def name(self) -> str:
        """Each flow's action names itself (abstract: the base is never registered)."""

    @abstractmethod
    def outcome(self, tracker: Tracker, order_id: str) -> OrderOutcome:
        """What the order store answers for this flow."""

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
        order_id = tracker.get_slot("order_id")
        if not order_id:
            if not tracker.get_slot("flow_stopped"):
                dispatcher.utter_message(text=NO_ORDER_TEXT)
            return reset_flow()
        try:
            outcome = self.outcome(tracker, order_id)
        except Exception:
            logger.exception("%s failed for %s", self.name(), short(tracker.sender_id))
            dispatcher.utter_message(text="Sorry, I can't reach our order system right now. "
                                     "Please try again in a moment.")
            return reset_flow()
        self.reply(dispatcher, outcome)
        return reset_flow()

    def reply(self, dispatcher: CollectingDispatcher, outcome: OrderOutcome) -> None:
        dispatcher.utter_message(text=outcome.message)


class ActionTrackOrder(OrderFlowAction):
    def name(self) -> str:
        return "action_track_order"

    def outcome(self, tracker: Tracker, order_id: str) -> OrderOutcome:
        return orders().track(tracker.sender_id, order_id)


class ActionTrackRefund(OrderFlowAction):
    def name(self) -> str:
        return "action_track_refund"

    def outcome(self, tracker: Tracker, order_id: str) -> OrderOutcome:
        return orders().refund_status(tracker.sender_id, order_id)


class ActionGetInvoice(OrderFlowAction):
    def name(self) -> str:
        return "action_get_invoice"

    def outcome(self, tracker: Tracker, order_id: str) -> OrderOutcome:
        return orders().invoice(tracker.sender_id, order_id)


class ActionCancelOrder(OrderFlowAction):
    def name(self) -> str:
        return "action_cancel_order"

    def outcome(self, tracker: Tracker, order_id: str) -> OrderOutcome:
        store = orders()
        check = store.cancel(tracker.sender_id, order_id, dry_run=True)
        if not check.ok:  # shipped, delivered, already cancelled: the reason and what to do
            return check
        if tracker.get_slot("order_confirm") is not True:
            return OrderOutcome(OrderCode.OK, f"Alright, I haven't cancelled {order_id}; "
                                "it's still on its way to you.", check.order)
        return store.cancel(tracker.sender_id, order_id)


class ActionReturnOrder(OrderFlowAction):
    def name(self) -> str:
        return "action_return_order"

    def outcome(self, tracker: Tracker, order_id: str) -> OrderOutcome:
        store = orders()
        check = store.request_return(tracker.sender_id, order_id, "", dry_run=True)
        if not check.ok:
            return check
        items = tracker.get_slot("return_items")
        return store.request_return(tracker.sender_id, order_id,
                                    tracker.get_slot("return_reason") or "",
                                    items if isinstance(items, list) and items else None)


class ActionChangeAddress(OrderFlowAction):
    def name(self) -> str:
        return "action_change_address"

    def outcome(self, tracker: Tracker, order_id: str) -> OrderOutcome:
        store = orders()
        check = store.change_address(tracker.sender_id, order_id, "", dry_run=True)
        if not check.ok:
            return check
        return store.change_address(tracker.sender_id, order_id,
                                    tracker.get_slot("new_address") or "")
