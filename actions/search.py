"""Product search: by words, by photo, refined over turns, page by page.

A search turn understands the request, searches the catalog and replies with an intro and
the products as cards. A photo ("shoes like these", attached in any channel) is one more
way in: the channel stores it and sends only its reference in the message metadata
(``{"upload": {"ref": "<random>.jpg", "text": "<what was typed>"}}``); the search then
ranks the catalog by how much the products' photos look like it, under what the shopper
typed. Follow-ups ("cheaper ones", "in black", "show me more") keep ranking by the photo
while its reference is in the ``photo_ref`` slot.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.base import ShopAction
from actions.dialogue import entities, latest_text, search_follow_up, shown_ids
from actions.replies import say_products
from actions.services import Services, services
from recsys.events import EventType
from retrieval.images.classifier import Classification, predicted_types
from retrieval.query import SearchConstraints
from retrieval.refine import new_search_constraints, refine_constraints
from retrieval.search import PREDICTED_TYPE, PhotoQuery, SearchResult
from shop.profile import with_profile_defaults
from shopcore.ids import short
from shopcore.images import ImageRejected, load_image

logger = logging.getLogger(__name__)

RELAXED_WORDS = {
    "price": "that price range",
    "usage": "that style",
    "colour": "that colour",
    "brand": "that brand",
    "gender": "that gender",
    PREDICTED_TYPE: "the kind of product I see in it",
}
NO_PHOTO = "I didn't receive a photo. Please attach a picture of what you're looking for."
BROKEN_TEXT = "Sorry, product search isn't working right now. Please try again shortly."
BROKEN_PHOTO_TEXT = ("Sorry, I can't look at photos right now. Try describing what you want "
                     "instead.")


def type_phrase(article_type: str) -> str:
    """'Casual Shoes' -> 'casual shoes', 'Tshirts' -> 't-shirts' for a sentence."""
    return {"Tshirts": "t-shirts"}.get(article_type, article_type.lower())


def what_it_looks_like(classification: Classification) -> str:
    """What the photo shows, said with the confidence the classifier has."""
    if classification.confident and classification.article_type:
        colour = classification.colour.lower() if classification.colour_score >= 0.5 else ""
        words = (colour, type_phrase(classification.article_type))
        return f"Looks like {' '.join(w for w in words if w)}."
    guesses = [type_phrase(label) for label, _ in classification.top[:2] if label]
    if len(guesses) == 2:
        return f"I'm not sure what this is - is it {guesses[0]} or {guesses[1]}?"
    return "I'm not sure what this is."


def _headline(result: SearchResult, page: int) -> str:
    wanted = result.constraints.describe()
    photo = result.classification is not None
    if page:
        return "More like your photo:" if photo else f"More {wanted}:"
    seen = what_it_looks_like(result.classification) + " " if photo else ""  # type: ignore[arg-type]
    if result.relaxed:
        dropped = " or ".join(RELAXED_WORDS[r] for r in result.relaxed)
        if result.exact_matches:
            found = "like it" if photo else wanted
            return (f"{seen}I found {result.exact_matches} {found}; after those come the "
                    f"closest matches outside {dropped}:")
        if photo:
            return f"{seen}Nothing matched everything you asked for, so here are the closest:"
        return f"I couldn't find {wanted}. Here are the closest matches outside {dropped}:"
    if photo:
        return f"{seen}Here are similar products:"
    return f"Here are some {wanted}:" if wanted != "products" else "Here's what I found:"


def run_search(
    shop: Services, dispatcher: CollectingDispatcher, tracker: Tracker, query: str,
    constraints: SearchConstraints, page: int = 0, photo_ref: str | None = None,
) -> list[dict[str, Any]]:
    """Search (by photo when ``photo_ref`` names a stored upload), reply, and set the slots
    the next turn builds on."""
    photo = None
    if photo_ref is not None:
        photo_events = _photo_query(shop, dispatcher, tracker, photo_ref)
        if not isinstance(photo_events, PhotoQuery):
            return photo_events
        photo = photo_events
    size = shop.settings.search_page_size
    try:
        result = shop.search.search(query, k=size, offset=page * size, constraints=constraints,
                                    photo=photo)
    except Exception:
        logger.exception("search failed for %s on %r", short(tracker.sender_id), query[:200])
        dispatcher.utter_message(text=BROKEN_PHOTO_TEXT if photo else BROKEN_TEXT)
        return []
    ref = photo_ref if photo else None
    if not page:  # a new search, not "show more"
        shop.log_search(tracker.sender_id, query, result, photo is not None)
    if not result.products:
        if page:
            dispatcher.utter_message(text="That's everything like it I have." if photo else
                                     "That's everything I have for that search. "
                                     "Try changing the colour, brand or budget.")
            return []
        if photo:
            dispatcher.utter_message(text=f"{what_it_looks_like(result.classification)} "
                                          "I couldn't find anything like it in the catalog, "
                                          "sorry.")  # type: ignore[arg-type]
            return [SlotSet("photo_ref", ref)]
        dispatcher.utter_message(
            text="Sorry, I couldn't find any products matching that. "
            "Try describing it differently, e.g. 'black heels under 1500'.")
        return [SlotSet("photo_ref", None), SlotSet("search_query", query),
                SlotSet("shown_products", [])]
    if photo and result.classification is not None:
        logger.info("photo %s: %s", ref, result.classification.as_dict())
    say_products(dispatcher, _headline(result, page), result.products,
                 query=query or ("photo" if photo else ""), start=result.offset + 1)
    shop.log_event(tracker.sender_id, result.ids, EventType.SHOWN)
    filters = result.constraints
    if photo and not filters.article_types and result.classification is not None:
        # Later turns keep the kind of product the photo showed.
        filters = SearchConstraints.from_dict(
            {**filters.to_dict(), "article_types": predicted_types(result.classification)})
    return [
        SlotSet("photo_ref", ref),
        SlotSet("search_query", query or None),
        SlotSet("search_filters", filters.to_dict()),
        SlotSet("shown_products", result.ids),
        SlotSet("search_page", float(page)),
    ]


def _photo_query(shop: Services, dispatcher: CollectingDispatcher, tracker: Tracker,
                 ref: str) -> PhotoQuery | list[dict[str, Any]]:
    """The stored photo encoded for the search, or the events after saying why not."""
    path = shop.uploads.path(ref)
    if path is None:
        logger.warning("photo message from %s without a usable upload ref %r",
                       short(tracker.sender_id), str(ref)[:80])
        dispatcher.utter_message(text=NO_PHOTO)
        return [SlotSet("photo_ref", None)]
    try:
        image = load_image(path, max_bytes=shop.settings.max_upload_bytes,
                           max_pixels=shop.settings.max_image_pixels)
    except ImageRejected as rejected:
        shop.uploads.delete(ref)  # never keep what isn't a usable picture
        dispatcher.utter_message(text=rejected.message)
        return [SlotSet("photo_ref", None)]
    try:
        return PhotoQuery.from_image(image, shop.image_classifier)
    except Exception:
        logger.exception("photo model failed for %s", short(tracker.sender_id))
        dispatcher.utter_message(text=BROKEN_PHOTO_TEXT)
        return []


def new_search(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
    """A search from this message, keeping who the shopper said they shop for."""
    text = latest_text(tracker).strip()
    if not text:
        dispatcher.utter_message(text="Tell me what you're looking for, e.g. 'red dresses'.")
        return []
    shop = services()
    try:
        constraints = shop.search.understand(text, entities(tracker))
        previous = tracker.get_slot("search_filters")
        if previous:  # keep what the shopper said about themselves (for men, for women)
            constraints = new_search_constraints(SearchConstraints.from_dict(previous),
                                                 constraints)
    except Exception:
        logger.exception("product search failed for %r", text[:200])
        dispatcher.utter_message(text=BROKEN_TEXT)
        return []
    filled: list[str] = []
    try:  # a fresh search: what the query leaves open comes from the profile
        profile = shop.records.profiles.get(tracker.sender_id)
        constraints, filled = with_profile_defaults(constraints, profile)
    except Exception:
        logger.exception("profile unavailable for %s", short(tracker.sender_id))
    events = run_search(shop, dispatcher, tracker, text, constraints)
    if filled and any(e.get("name") == "shown_products" and e.get("value") for e in events):
        dispatcher.utter_message(text="(I used your saved " + " and ".join(filled)
                                 + " preference; say e.g. 'for men' or 'any price' to "
                                 "change it.)")
    return events


class ActionSearchProducts(ShopAction):
    """A product request: a new search, or, when the message only changes what the active
    search asks for ("in red", "something under 2000", "not Nike"), that search refined."""

    def name(self) -> str:
        return "action_search_products"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
        if search_follow_up(tracker) == "refine":
            return refine_search(dispatcher, tracker)
        return new_search(dispatcher, tracker)


class ActionPhotoSearch(ShopAction):
    """A photo with or without words: what it looks like, and the products like it."""

    def name(self) -> str:
        return "action_photo_search"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
        upload = ((tracker.latest_message or {}).get("metadata") or {}).get("upload") or {}
        ref = upload.get("ref") if isinstance(upload, dict) else None
        typed = str(upload.get("text") or "")[:500] if isinstance(upload, dict) else ""
        if not isinstance(ref, str):
            logger.warning("photo message from %s without an upload ref",
                           short(tracker.sender_id))
            dispatcher.utter_message(text=NO_PHOTO)
            return []
        shop = services()
        try:
            constraints = shop.search.understand(typed) if typed.strip() else \
                SearchConstraints()
        except Exception:
            logger.exception("could not read %r typed with a photo", typed[:200])
            constraints = SearchConstraints()
        return run_search(shop, dispatcher, tracker, typed, constraints, photo_ref=ref)


def refine_search(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
    """The active search (words or photo) changed by this message, searched again."""
    text = latest_text(tracker).strip()
    previous = tracker.get_slot("search_filters")
    shop = services()
    photo_ref = tracker.get_slot("photo_ref")
    try:
        if not previous and not photo_ref:  # nothing to refine: a new search
            return run_search(shop, dispatcher, tracker, text,
                              shop.search.understand(text, entities(tracker)))
        shown = shop.store.get(shown_ids(tracker))
        constraints = refine_constraints(SearchConstraints.from_dict(previous), text,
                                         shop.store.vocab, shown, entities(tracker))
    except Exception:
        logger.exception("refining failed for %r", text[:200])
        dispatcher.utter_message(text=BROKEN_TEXT)
        return []
    query = tracker.get_slot("search_query") or ("" if photo_ref else text)
    return run_search(shop, dispatcher, tracker, query, constraints, photo_ref=photo_ref)


class ActionRefineSearch(ShopAction):
    """'cheaper ones', 'in blue', 'for women instead': change the last search and rerun it."""

    def name(self) -> str:
        return "action_refine_search"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
        if search_follow_up(tracker) == "new_search":  # "now show me watches"
            return new_search(dispatcher, tracker)
        return refine_search(dispatcher, tracker)


class ActionShowMore(ShopAction):
    """'show more': the next page of the last search."""

    def name(self) -> str:
        return "action_show_more"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
        previous = tracker.get_slot("search_filters")
        query = tracker.get_slot("search_query")
        photo_ref = tracker.get_slot("photo_ref")
        page = int(tracker.get_slot("search_page") or 0) + 1
        if not photo_ref and (not previous or not query):
            dispatcher.utter_message(text="Tell me what you're looking for first, "
                                          "e.g. 'white sneakers for men'.")
            return []
        return run_search(services(), dispatcher, tracker, query or "",
                          SearchConstraints.from_dict(previous), page=page, photo_ref=photo_ref)
