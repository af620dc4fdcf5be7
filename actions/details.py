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
from retrieval.query import parse_query
from shopcore.money import price_text as money_text

logger = logging.getLogger(__name__)

NOTHING_SHOWN = "Search for something first, then ask about a product by its number."
# The attributes a description mentions, in this order (value only, or "pattern: solid").
DESCRIBED_FIELDS = ("Fabric", "Material", "Fit", "Pattern", "Sleeve Length", "Neck", "Type",
                    "Strap Material", "Dial Shape", "Heel Height", "Sole Material", "Occasion")
DESCRIPTION_CHARS = 260
# Catalog types that come in pairs: "a pair of casual shoes", not "a casual shoe".
PAIRED = {"jeans", "shoes", "heels", "sandals", "flats", "trousers", "shorts", "sunglasses",
          "leggings", "capris", "flops", "pants", "briefs", "boxers", "socks", "slippers",
          "earrings", "jeggings", "tights", "stockings", "floaters", "pyjamas", "lounge pants",
          "trunk", "shoe"}
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
    text = latest_text(tracker)
    picked = [shown[i - 1] for i in positions(text, len(shown))]
    return picked or described_among(text, shown), shown


def described_among(text: str, shown: list[Product]) -> list[Product]:
    """Shown products the words single out: "that red one", "the Puma ones", "the watch"."""
    try:
        wanted = parse_query(text, services().store.vocab)
    except Exception:
        logger.exception("could not read %r as a product reference", text[:200])
        return []
    tests = [(wanted.colours, lambda p: p.base_colour), (wanted.brands, lambda p: p.brand),
             (wanted.article_types, lambda p: p.article_type),
             (wanted.genders, lambda p: p.gender)]
    tests = [(set(values), value_of) for values, value_of in tests if values]
    if not tests:
        return []
    return [p for p in shown if all(value_of(p) in values for values, value_of in tests)]


def _useful(value: str) -> bool:
    """Attribute values worth saying ("Cotton", "Slim Fit"), not the catalog's fillers."""
    return bool(value) and value.upper() not in ("NA", "N/A", "-", "NONE") and len(value) < 40 \
        and not value.lower().startswith(("to-fit", "body or garment"))


def _first_sentences(text: str, limit: int = DESCRIPTION_CHARS) -> str:
    """The description's opening, cut at a sentence (or word) boundary."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = cut.rfind(". ")
    return cut[: end + 1] if end > limit // 3 else cut.rsplit(" ", 1)[0] + "..."


def one_of(article_type: str, colour: str = "") -> str:
    """'Dresses', 'Navy Blue' -> 'a navy blue dress'; 'Casual Shoes' -> 'a pair of casual
    shoes' (catalog types are plural nouns)."""
    words = {"Tshirts": "t-shirts"}.get(article_type, article_type.lower()) or "products"
    *head, last = words.split()
    if last in PAIRED:
        noun, article = words, "a pair of"
    else:
        for plural, single in (("sses", "ss"), ("ches", "ch"), ("shes", "sh"), ("ies", "y"),
                               ("s", "")):
            if last.endswith(plural) and not last.endswith("ss"):
                last = last[: -len(plural)] + single
                break
        noun, article = " ".join([*head, last]), ""
    noun = f"{colour.lower()} {noun}" if colour else noun
    article = article or ("an" if noun[:1] in "aeiou" else "a")
    return f"{article} {noun}"


def describe(product: Product) -> str:
    """A short description a shopper reads: what it is, the price, the useful facts
    (fabric, fit, pattern...), sizes and the opening of the shop's own description."""
    whom = f" for {product.gender.lower()}" if product.gender else ""
    style = f", for {product.usage.lower()} wear" if product.usage else ""
    lines = [f"{product.name} by {product.brand or 'an independent brand'}: "
             f"{one_of(product.article_type, product.base_colour)}{whom}{style}.",
             f"Price: {price_text(product)}."]
    facts = [f"{field.lower()} {value.lower()}" if field in ("Pattern", "Sleeve Length")
             else value for field in DESCRIBED_FIELDS
             if _useful(value := str(product.attributes.get(field, "")))]
    if facts:
        lines.append(("Details: " + ", ".join(facts[:5]) + ".").replace("..", "."))
    if product.sizes:
        lines.append("Sizes: " + ", ".join(product.sizes[:12]) + ".")
    if product.description:
        lines.append(_first_sentences(product.description))
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
