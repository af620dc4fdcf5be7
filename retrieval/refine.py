"""Follow-up turns over a search: "cheaper ones", "in blue", "for women instead", "the
second one", "compare the first two".

The previous turn's constraints live in a Rasa slot as a plain dict; these functions turn a
follow-up message into new constraints or into positions in the list the shopper saw.
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

_ORDINALS = {
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
    "fifth": 5, "5th": 5, "sixth": 6, "6th": 6, "seventh": 7, "7th": 7, "eighth": 8, "8th": 8,
    "ninth": 9, "9th": 9, "tenth": 10, "10th": 10,
}
_FIRST_N = re.compile(r"\b(?:first|top)\s+(two|three|four|five|2|3|4|5)\b")
_WORD_NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5}
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


def positions(text: str, shown_count: int) -> list[int]:
    """1-based positions in the shown list that the text refers to, in order mentioned.

    "the second one" -> [2]; "compare the first two" -> [1, 2]; "1 and 3" -> [1, 3];
    "the last one" -> [shown_count]. Positions outside the list are dropped.
    """
    lowered = (text or "").lower()
    found: list[int] = []
    first_n = _FIRST_N.search(lowered)
    if first_n:
        value = first_n.group(1)
        found.extend(range(1, (int(value) if value.isdigit() else _WORD_NUMBERS[value]) + 1))
    tokens = re.findall(r"[a-z0-9]+", lowered)
    found.extend(_ORDINALS[t] for t in tokens if t in _ORDINALS and not first_n)
    if not found:  # "compare 1 and 3", "#2", "number 4"
        found.extend(int(t) for t in tokens if t.isdigit() and len(t) <= 2)
    if re.search(r"\b(last|final)\b", lowered) and shown_count:
        found.append(shown_count)
    unique: list[int] = []
    for position in found:
        if 1 <= position <= shown_count and position not in unique:
            unique.append(position)
    return unique
