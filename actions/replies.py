"""Replies several capabilities send the same way: product cards, the cart, a handoff."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.dialogue import latest_intent, own_words, transcript
from actions.routing import FLOWS
from actions.services import Services
from retrieval.cards import product_card
from retrieval.catalog import Product
from shopcore.ids import short
from shopcore.payloads import Cart, ProductCards, cards_message, cart_message

logger = logging.getLogger(__name__)

# Payloads are intents, so the choice works whatever the shopper's wording would be.
HUMAN_BUTTONS = [
    {"title": "Yes, connect me", "payload": "/contact_human_agent"},
    {"title": "No, thanks", "payload": "/deny"},
]


def say_products(dispatcher: CollectingDispatcher, intro: str, products: Sequence[Product],
                 query: str = "", start: int = 1, notes: Mapping[str, str] | None = None,
                 listed: bool = True) -> ProductCards:
    """The intro and the products: a numbered list in the text (unless not ``listed``: the
    intro describes them already), cards in the payload."""
    cards = ProductCards(tuple(product_card(p, (notes or {}).get(p.id, "")) for p in products),
                         intro=intro, query=query, start=start, listed=listed)
    dispatcher.utter_message(**cards_message(cards))
    return cards


def say_cart(dispatcher: CollectingDispatcher, cart: Cart) -> None:
    dispatcher.utter_message(**cart_message(cart))


def offer_a_person(dispatcher: CollectingDispatcher, text: str) -> list[Any]:
    dispatcher.utter_message(text=text, buttons=HUMAN_BUTTONS)
    return []


def hand_off(dispatcher: CollectingDispatcher, tracker: Tracker, services: Services) -> None:
    """Open (or refresh) a support ticket with the conversation so far and say what next."""
    intent = latest_intent(tracker)
    try:
        outcome = services.records.tickets.create(
            tracker.sender_id, own_words(tracker), transcript(tracker), intent)
    except Exception:
        logger.exception("handoff ticket failed for %s", short(tracker.sender_id))
        dispatcher.utter_message(
            text="Sorry, I couldn't pass this on just now. Please contact our support "
            "team directly (say 'contact customer service' for the details).")
        return
    if intent == "complaint":
        dispatcher.utter_message(text="I'm sorry about this.")
    dispatcher.utter_message(text=outcome.message)


def offer_to_resume(dispatcher: CollectingDispatcher, form: str) -> list[dict[str, Any]]:
    """After answering what interrupted a form: go on with it, or leave it."""
    intent, doing = FLOWS.get(form, ("", ""))
    if intent:
        dispatcher.utter_message(
            text=f"Do you still want to {doing}?",
            buttons=[{"title": "Yes, go on", "payload": f"/{intent}"},
                     {"title": "No, leave it", "payload": "/deny"}])
    return [SlotSet("paused_flow", None)]
