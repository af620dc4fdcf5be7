"""Follow-up turns over a search: "cheaper ones", "in blue", "for women instead", "not Nike".

The previous turn's constraints live in a Rasa slot as a plain dict; :func:`refine_constraints`
turns a follow-up message into new constraints, and :func:`follow_up_kind` tells whether a
message is such a follow-up at all, whatever intent the NLU guessed: a message that only
adds or changes constraints refines the active search, one naming another kind of product
starts a new search (:func:`new_search_constraints` keeps what the shopper said about
themselves). (Positions in a shown list - "the second one" - are dialogue, read by
``actions.dialogue.positions``.)
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Literal

from retrieval.catalog import Product
from retrieval.query import SearchConstraints, brand_name, parse_query
from retrieval.vocab import CatalogVocabulary

_CHEAPER = re.compile(r"\b(cheaper|less expensive|lower price|lower budget|budget ones?|"
                      r"more affordable|cheapest)\b")
_PRICIER = re.compile(r"\b(more expensive|pricier|costlier|premium|higher end|high end|"
                      r"better quality|luxury)\b")
_ANY_PRICE = re.compile(r"\b(any price|no budget|ignore (the )?(price|budget)|"
                        r"forget (the )?(price|budget))\b")
_ANY_COLOUR = re.compile(r"\bany colou?rs?\b")
_OTHER_COLOUR = re.compile(r"\b(other|different) colou?rs?\b")
_ANY_BRAND = re.compile(r"\bany brands?\b")
_OTHER_BRAND = re.compile(r"\b(other|different) brands?\b")
_SIZE = re.compile(r"\bsize\s*(\d{1,2}(\.5)?|xs|s|m|l|xl|xxl|xxxl|small|medium|large|free)\b|"
                   r"\b(uk|us|eu)\s*\d{1,2}\b|\b(xs|xl|xxl|xxxl)\b")
# Requests about orders, the account, the shop or one shown product, and statements about
# the shopper: never a search follow-up, whatever products they name ("return the black
# shoes", "tell me about the second one", "I like Nike").
_NOT_A_FOLLOW_UP = re.compile(
    r"\b(orders?|ordered|return(s|ed|ing)?|refunds?|cancel\w*|deliver\w*|ship(s|ped|ping)?|"
    r"tracking|track (my|the|an?|this|that|it)|invoices?|payments?|paid|account|password|"
    r"pay (by|with|via|using|online|cash|on)|log ?in|sign ?in|address|exchange|replace\w*|"
    r"complain\w*|warranty|polic(y|ies)|coupons?|vouchers?|promo|gift cards?|"
    r"size (chart|guide)|customer (care|service)|contact|cart|checkout|check out|wish ?list|"
    r"basket|remember|forget(?! (the |about the )?(price|budget))|recommend\w*|suggest\w*|"
    r"similar|goes (well )?with|go (well )?with (this|that|it|these|those)|"
    r"arriv(e|ed|es|ing)|status|compare|first|second|third|fourth|fifth|last|1st|2nd|3rd|"
    r"4th|5th|tell me (more )?about|(more|the|any) details?|details? (of|about|on)|describe|"
    r"how much|i wear|my size|i am a|i'm a|i like|i love|i prefer|my favou?rite)\b")
# Gender and style words are everyday words too ("does it work?", "my wife likes it"): they
# make a follow-up only said as one ("for women", "party wear") or alone.
_FACET_CONTEXT = re.compile(r"\b(for|instead|ones?|wear|style|only)\b")

PRICE_STEP = 0.8

FollowUp = Literal["refine", "new_search", "none"]


def refine_constraints(
    previous: SearchConstraints,
    text: str,
    vocab: CatalogVocabulary,
    shown: list[Product] | None = None,
    entities: Iterable[dict[str, Any]] | None = None,
) -> SearchConstraints:
    """The previous constraints with what this follow-up changes: a facet the shopper names
    replaces the same kind of facet, "cheaper"/"pricier" move the price band, "not Nike"
    rules a value out (and out of what was wanted), a value asked for again ("in black
    after all") is no longer ruled out."""
    lowered = (text or "").lower()
    update = parse_query(text, vocab, entities)
    merged = replace(previous, mentions=dict(previous.mentions), prefer_cheap=False)
    for facet, anything, other in (("colours", _ANY_COLOUR, _OTHER_COLOUR),
                                   ("brands", _ANY_BRAND, _OTHER_BRAND)):
        if anything.search(lowered) or other.search(lowered):
            merged.forget(facet)
        shown_values = getattr(previous, facet)
        if other.search(lowered) and shown_values:  # "other brands": not the ones shown
            phrase = (brand_name(shown_values) if facet == "brands"
                      else previous.mentions.get("colour", shown_values[0].lower()))
            merged.exclude(facet, shown_values, phrase)
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
    for facet in ("article_types", "colours", "brands"):
        if getattr(update, facet):
            merged.allow(facet, getattr(update, facet))
    asked = set(update.text.split())
    merged.allow("words", [w for w in merged.excluded_words if w in asked])
    for facet, values, phrase in update.exclusions():
        merged.exclude(facet, values, phrase)

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


def follow_up_kind(
    text: str,
    vocab: CatalogVocabulary,
    previous: SearchConstraints | None,
    entities: Iterable[dict[str, Any]] | None = None,
) -> FollowUp:
    """What a message does to the active search, read from the catalog's vocabulary rather
    than the NLU's intent: "refine" (it only adds or changes constraints: "in red", "under
    1500", "not Nike", "for women instead"), "new_search" (it names another kind of product,
    or there is no search to refine) or "none" (it is not about finding products, or names
    nothing the search understands: the dialogue handles it as usual). Cautious on purpose:
    it rescues product follow-ups the NLU misread, and never takes other requests."""
    lowered = (text or "").lower()
    if _NOT_A_FOLLOW_UP.search(lowered):
        return "none"
    update = parse_query(text, vocab, entities)
    names_facet = bool(
        update.article_types or update.colours or update.brands or update.has_exclusions()
        or update.min_price is not None or update.max_price is not None or update.prefer_cheap
        or ((update.genders or update.usages)
            and (not update.text or _FACET_CONTEXT.search(lowered)))
        or any(p.search(lowered) for p in (_CHEAPER, _PRICIER, _ANY_PRICE, _ANY_COLOUR,
                                           _OTHER_COLOUR, _ANY_BRAND, _OTHER_BRAND, _SIZE)))
    if not names_facet:
        return "none"
    if previous is None or previous.is_empty():
        return "new_search"
    if (update.article_types and previous.article_types
            and not set(update.article_types) <= set(previous.article_types)):
        return "new_search"
    return "refine"


def new_search_constraints(
    previous: SearchConstraints | None, update: SearchConstraints
) -> SearchConstraints:
    """The constraints for a new kind of product: the new message's own, plus who the
    shopper is shopping for when it does not say (colour, brand, price and exclusions were
    about the old product, so they go)."""
    if previous is None or update.genders or not previous.genders:
        return update
    mentions = dict(update.mentions)
    if "gender" in previous.mentions:
        mentions["gender"] = previous.mentions["gender"]
    return replace(update, genders=list(previous.genders), mentions=mentions)
