"""Follow-up turns over a search: "cheaper ones", "in blue", "for women instead".

The previous turn's constraints live in a Rasa slot as a plain dict; :func:`refine_constraints`
turns a follow-up message into new constraints. (Positions in a shown list - "the second
one" - are dialogue, read by ``actions.dialogue.positions``.)
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from retrieval.catalog import Product
from retrieval.query import SearchConstraints, parse_query
from retrieval.vocab import CatalogVocabulary

_CHEAPER = re.compile(r"\b(cheaper|less expensive|lower price|lower budget|budget ones?|"
                      r"more affordable|cheapest)\b")
_PRICIER = re.compile(r"\b(more expensive|pricier|costlier|premium|higher end|high end|"
                      r"better quality|luxury)\b")
_ANY_PRICE = re.compile(r"\b(any price|no budget|ignore (the )?(price|budget)|"
                        r"forget (the )?(price|budget))\b")
_ANY_COLOUR = re.compile(r"\b(any colou?r|other colou?rs|different colou?rs?)\b")
_ANY_BRAND = re.compile(r"\b(any brand|other brands?|different brands?)\b")

PRICE_STEP = 0.8


def refine_constraints(
    previous: SearchConstraints,
    text: str,
    vocab: CatalogVocabulary,
    shown: list[Product] | None = None,
    entities: Iterable[dict[str, Any]] | None = None,
) -> SearchConstraints:
    """The previous constraints with what this follow-up changes: a facet the shopper names
    replaces the same kind of facet, "cheaper"/"pricier" move the price band."""
    lowered = (text or "").lower()
    update = parse_query(text, vocab, entities)
    merged = replace(previous, mentions=dict(previous.mentions), prefer_cheap=False)
    for attribute, mention in (("article_types", "article_type"), ("colours", "colour"),
                               ("genders", "gender"), ("brands", "brand")):
        values = getattr(update, attribute)
        if values:
            setattr(merged, attribute, values)
            if mention in update.mentions:
                merged.mentions[mention] = update.mentions[mention]
    if update.usages:
        merged.usages = update.usages
    if update.min_price is not None or update.max_price is not None:
        merged.min_price, merged.max_price = update.min_price, update.max_price
    if _ANY_PRICE.search(lowered):
        merged.min_price = merged.max_price = None
    if _ANY_COLOUR.search(lowered):
        merged.colours = []
        merged.mentions.pop("colour", None)
    if _ANY_BRAND.search(lowered):
        merged.brands = []
        merged.mentions.pop("brand", None)

    reference = statistics.median(p.final_price for p in shown) if shown else None
    if _CHEAPER.search(lowered):
        ceiling = min(x for x in (reference, previous.max_price) if x is not None) \
            if (reference or previous.max_price) else None
        if ceiling is not None:
            merged.max_price = round(ceiling * PRICE_STEP)
            merged.min_price = None
        merged.prefer_cheap = True
    elif _PRICIER.search(lowered):
        floor = max(x for x in (reference, previous.min_price) if x is not None) \
            if (reference or previous.min_price) else None
        if floor is not None:
            merged.min_price = round(floor / PRICE_STEP)
            merged.max_price = None
    merged.text = update.text or previous.text
    return merged
