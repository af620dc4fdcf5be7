"""Product details and comparison: "tell me about the second one", "compare the first two"."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.base import ShopAction
from actions.dialogue import entity_value, latest_text, positions, shown_ids
from actions.replies import say_products
from actions.services import services
from recsys.events import EventType
from retrieval.catalog import Product
from shopcore.money import price_text as money_text

logger = logging.getLogger(__name__)

NOTHING_SHOWN = "Search for something first, then ask about a product by its number."
COMPARE_FIELDS = ("Fabric", "Fit", "Pattern", "Sleeve Length", "Type", "Material",
                  "Strap Material", "Dial Shape", "Heel Height", "Sole Material", "Occasion")


def price_text(product: Product) -> str:
    return money_text(product.price, product.final_price, product.discount_percent)


def referenced_products(
    dispatcher: CollectingDispatcher, tracker: Tracker
) -> tuple[list[Product], list[Product]] | None:
    """(products the message points at, products shown last), in the order mentioned;
    None after telling the shopper why there is nothing to refer to."""
    product_id = entity_value(tracker, "product_id")
    try:
        store = services().store
        shown = store.get(shown_ids(tracker))
        if product_id:
            named = store.get([product_id])
            if not named:
                dispatcher.utter_message(text="Sorry, I can't find that product any more.")
                return None
            return named, shown or named
    except Exception:
        logger.exception("could not load the products shown to %s", tracker.sender_id)
        dispatcher.utter_message(text="Sorry, I can't look those products up right now.")
        return None
    if not shown:
        dispatcher.utter_message(text=NOTHING_SHOWN)
        return None
    return [shown[i - 1] for i in positions(latest_text(tracker), len(shown))], shown


def describe(product: Product) -> str:
    lines = [f"{product.name} by {product.brand or 'an independent brand'}",
             f"Price: {price_text(product)}"]
    facts = [product.base_colour, product.gender, product.article_type, product.usage]
    lines.append(" · ".join(f for f in facts if f))
    if product.sizes:
        lines.append("Sizes: " + ", ".join(product.sizes))
    if product.attributes:
        lines.append("; ".join(f"{k}: {v}" for k, v in list(product.attributes.items())[:8]))
    if product.description:
        text = product.description
        lines.append(text if len(text) <= 600 else text[:600].rsplit(" ", 1)[0] + "...")
    lines.append(f"Product id {product.id}")
    return "\n".join(lines)


def comparison(products: list[Product]) -> str:
    rows = [("", [f"#{i}" for i in range(1, len(products) + 1)]),
            ("Price", [price_text(p) for p in products]),
            ("Brand", [p.brand or "-" for p in products]),
            ("Colour", [p.base_colour or "-" for p in products]),
            ("Sizes", [", ".join(p.sizes) or "-" for p in products])]
    for field in COMPARE_FIELDS:
        values = [p.attributes.get(field, "-") for p in products]
        if any(v != "-" for v in values):
            rows.append((field, values))
    names = "\n".join(f"#{i}: {p.name}" for i, p in enumerate(products, 1))
    body = "\n".join(f"{label}: " + " | ".join(values) for label, values in rows[1:])
    cheapest = min(products, key=lambda p: p.final_price)
    return f"{names}\n{body}\nCheapest: {cheapest.name} at {price_text(cheapest)}."


class ActionProductDetails(ShopAction):
    def name(self) -> str:
        return "action_product_details"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
        references = referenced_products(dispatcher, tracker)
        if references is None:
            return []
        picked, shown = references
        if not picked:
            if len(shown) != 1:
                dispatcher.utter_message(
                    text=f"Which one? Say e.g. 'the second one' (1 to {len(shown)}).")
                return []
            picked = shown
        product = picked[0]
        say_products(dispatcher, describe(product), [product], listed=False)
        services().log_event(tracker.sender_id, [product.id], EventType.OPENED)
        return []


class ActionCompareProducts(ShopAction):
    def name(self) -> str:
        return "action_compare_products"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
        references = referenced_products(dispatcher, tracker)
        if references is None:
            return []
        picked, shown = references
        if len(picked) < 2:
            if len(shown) < 2:
                dispatcher.utter_message(text="I need at least two products to compare.")
                return []
            picked = picked or shown[:2]
            if len(picked) < 2:
                dispatcher.utter_message(
                    text="Which two? Say e.g. 'compare the first two' or 'compare 1 and 3'.")
                return []
        products = picked[:4]
        say_products(dispatcher, comparison(products), products, listed=False)
        services().log_event(tracker.sender_id, [p.id for p in products], EventType.OPENED)
        return []
