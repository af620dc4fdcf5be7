"""Recommendations: "recommend me something", "what goes with this", "similar to the second one".

The ranking is the recommender's (`recsys.serving`): the trained sequential model over the
shopper's recent events, with content similarity and popularity as fallbacks. This action only
decides what the shopper is pointing at, which constraints stay active (gender, budget), what
to leave out (what they already have), and how to explain each pick truthfully.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.base import ShopAction
from actions.dialogue import entity_value, latest_text, positions, product_id_in, shown_ids
from actions.replies import say_products
from actions.services import services
from recsys.events import EventType
from recsys.serving import Recommendation
from retrieval.catalog import Product
from retrieval.query import SearchConstraints
from retrieval.search import ProductSearch

logger = logging.getLogger(__name__)

PICKS = 5
_SIMILAR = re.compile(r"\b(similar|like (?:this|that|it|the|#?\d)|same as|alternatives?|"
                      r"something like|more like)\b")
_GOES_WITH = re.compile(r"\b(go(?:es)? (?:well )?with|match(?:es|ing)?|pair(?:s|ed)? with|"
                        r"complete the look|wear (?:it )?with|accessori[sz]e)\b")
_THIS = re.compile(r"\b(this|that|it)\b")


def anchor_product(text: str, shown: list[Product], last_opened: str | None) -> str | None:
    """The product the shopper points at: an ordinal of what was shown ("the second one"),
    an explicit id ("similar to product 15970", the widget's Similar button), or "this" =
    the product they opened last."""
    named = product_id_in(text)
    if named:
        return named
    picked = positions(text, len(shown)) if shown else []
    if picked:
        return shown[picked[0] - 1].id
    if last_opened and _THIS.search(text.lower()):
        return last_opened
    return None


def starter_picks(search: ProductSearch, allowed: set[str], k: int) -> list[Recommendation]:
    """No history and no popularity yet: one product from each of the biggest article types,
    so a new shop's first shopper sees the range instead of the first rows of the file."""
    facets = search.store.lexical.facets
    by_type: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for pid, article_type in zip(facets.ids.tolist(), facets.article_type.tolist(), strict=True):
        if pid in allowed:
            sizes[article_type] = sizes.get(article_type, 0) + 1
            by_type.setdefault(article_type, pid)
    biggest = sorted(sizes, key=lambda t: -sizes[t])[:k]
    return [Recommendation(item_id=by_type[t], score=0.0, source="starter") for t in biggest]


def active_constraints(filters: dict[str, Any] | None) -> SearchConstraints:
    """Only who it's for, the budget and what the shopper ruled out carry over: "red
    dresses" then "recommend me something" should still be for women, within budget and
    not Nike if they said so, but not only red dresses."""
    previous = SearchConstraints.from_dict(filters)
    return SearchConstraints(genders=previous.genders, min_price=previous.min_price,
                             max_price=previous.max_price,
                             excluded_colours=previous.excluded_colours,
                             excluded_brands=previous.excluded_brands,
                             excluded_words=previous.excluded_words)


def explain(pick: Recommendation, names: dict[str, str], popular_known: bool) -> str:
    """A few true words per pick; never claims history or popularity it doesn't have."""
    if pick.because and pick.because in names:
        verb = "you looked at" if pick.source == "model" else "it's like"
        return f"because {verb} {names[pick.because]}"
    if pick.source == "popular" and popular_known:
        return "popular with other shoppers"
    return ""


class ActionRecommendProducts(ShopAction):
    def name(self) -> str:
        return "action_recommend_products"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
        text = latest_text(tracker).strip()
        sender = tracker.sender_id
        shop = services()
        try:
            search = shop.search
            recommender = shop.recommender
            events = shop.records.events
            store = search.store
            shown = store.get(shown_ids(tracker))
            history = events.recent_items(sender)
            anchor_id = entity_value(tracker, "product_id") or anchor_product(
                text, shown, history[-1] if history else None)
            anchor = next(iter(store.get([anchor_id])), None) if anchor_id else None
            owned = events.items_of(sender, [EventType.ADDED_TO_CART, EventType.PURCHASED])
            allowed = self._allowed_ids(search, tracker.get_slot("search_filters"), anchor)
            lower = text.lower()
            if anchor and _GOES_WITH.search(lower):
                mode = "goes_with"
                others = {pid for pid in allowed if pid != anchor.id}
                same_type = self._ids_of_type(search, anchor.article_type)
                picks = recommender.recommend(
                    [*history, anchor.id], k=PICKS, exclude=owned | {anchor.id},
                    allowed=others - same_type or others,
                )
            elif anchor and (_SIMILAR.search(lower) or not history or text.startswith("/")):
                mode = "similar"
                picks = recommender.similar_items(anchor.id, k=PICKS, allowed=allowed - owned)
            elif history or float(recommender.popularity.sum()) > 0:
                mode = "for_you"
                picks = recommender.recommend(history, k=PICKS, exclude=owned | set(history),
                                              allowed=allowed)
            else:
                mode = "starter"
                picks = starter_picks(search, allowed - owned, PICKS)
        except Exception:
            logger.exception("recommendation failed for %s on %r", sender, text[:200])
            dispatcher.utter_message(
                text="Sorry, I can't make recommendations right now. Try searching instead, "
                "e.g. 'white sneakers under 3000'.")
            return []
        products = store.get([p.item_id for p in picks])
        if not products:
            dispatcher.utter_message(
                text="I don't have anything to recommend with those filters yet. "
                "Try a search, e.g. 'black heels under 1500'.")
            return []
        logger.info("recommend %s mode=%s anchor=%s history=%d sources=%s", sender, mode,
                    anchor.id if anchor else None, len(history),
                    [p.source for p in picks])
        names = {p.id: p.name for p in store.get(list({*history, *(a for a in [anchor_id] if a)}))}
        popular_known = float(recommender.popularity.sum()) > 0
        reasons = {p.item_id: explain(p, names, popular_known) for p in picks}
        say_products(dispatcher, self._headline(mode, anchor, bool(history)), products,
                     query=text, notes=reasons)
        shop.log_event(sender, [p.id for p in products], EventType.SHOWN)
        return [SlotSet("shown_products", [p.id for p in products])]

    @staticmethod
    def _headline(mode: str, anchor: Product | None, has_history: bool) -> str:
        if mode == "goes_with" and anchor:
            return f"These would go well with the {anchor.name}:"
        if mode == "similar" and anchor:
            return f"Similar to the {anchor.name}:"
        if has_history:
            return "Picked for you, from what you've looked at:"
        return ("I don't know your taste yet, so here are some good places to start "
                "(open a few products and I'll tailor these):")

    @staticmethod
    def _allowed_ids(search: ProductSearch, filters: dict[str, Any] | None,
                     anchor: Product | None) -> set[str]:
        constraints = active_constraints(filters)
        if anchor and anchor.gender and not constraints.genders:
            constraints.genders = [anchor.gender, "Unisex"]  # a men's shirt goes with men's
        facets = search.store.lexical.facets
        return set(facets.ids[facets.mask(constraints)].tolist())

    @staticmethod
    def _ids_of_type(search: ProductSearch, article_type: str) -> set[str]:
        facets = search.store.lexical.facets
        return set(facets.ids[facets.mask(SearchConstraints(article_types=[article_type]))]
                   .tolist())
