"""Photo search: "I want shoes like these" with a photo attached.

Every channel stores the photo under ``uploads_dir`` and sends only its reference in the
message metadata (``{"upload": {"ref": "<random>.jpg", "text": "<what was typed>"}}``),
never the picture itself. This action checks the file, says what it sees with honest
confidence, and shows the catalog products that look most like it within what the shopper
typed ("like this but in black", "cheaper"). Files that are not usable pictures are deleted.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import services
from actions.replies import product_list
from recsys.events import EventType
from retrieval.cards import cards_payload
from retrieval.images import Classification, ImageRejected, find_similar, load_image
from retrieval.query import SearchConstraints
from shopbot.settings import get_settings
from shopbot.uploads import UploadStore

logger = logging.getLogger(__name__)

NO_PHOTO = "I didn't receive a photo. Please attach a picture of what you're looking for."


def upload_path(ref: object) -> Path | None:
    """The stored upload a reference names, or None for anything that isn't one of ours
    (odd names and path tricks never reach the file system)."""
    settings = get_settings()
    store = UploadStore(settings.uploads_dir, settings.max_upload_bytes,
                        settings.max_image_pixels)
    return store.path(ref) if isinstance(ref, str) else None


def type_phrase(article_type: str) -> str:
    """'Casual Shoes' -> 'casual shoes', 'Tshirts' -> 't-shirts' for a sentence."""
    return {"Tshirts": "t-shirts"}.get(article_type, article_type.lower())


def what_it_looks_like(classification: Classification) -> str:
    if classification.confident and classification.article_type:
        colour = classification.colour.lower() if classification.colour_score >= 0.5 else ""
        words = (colour, type_phrase(classification.article_type))
        return f"Looks like {' '.join(w for w in words if w)}."
    guesses = [type_phrase(label) for label, _ in classification.top[:2] if label]
    if len(guesses) == 2:
        return f"I'm not sure what this is - is it {guesses[0]} or {guesses[1]}?"
    return "I'm not sure what this is."


class ActionPhotoSearch(Action):
    def name(self) -> str:
        return "action_photo_search"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        upload = ((tracker.latest_message or {}).get("metadata") or {}).get("upload") or {}
        ref = upload.get("ref") if isinstance(upload, dict) else None
        typed = str(upload.get("text") or "")[:500] if isinstance(upload, dict) else ""
        path = upload_path(ref)
        if path is None:
            logger.warning("photo message from %s without a usable upload ref %r",
                           tracker.sender_id, str(ref)[:80])
            dispatcher.utter_message(text=NO_PHOTO)
            return []
        return photo_reply(dispatcher, tracker, path, typed, SearchConstraints())


def photo_reply(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    path: Path,
    typed: str,
    base: SearchConstraints,
    page: int = 0,
) -> list[dict[str, Any]]:
    """Classify the photo, find look-alikes under ``base`` plus what was typed, reply.

    Refinements ("cheaper", "in black") and "show more" come back here with the photo's
    reference, so later turns keep ranking by the picture, not by words."""
    settings = get_settings()
    try:
        image = load_image(path, max_bytes=settings.max_upload_bytes,
                           max_pixels=settings.max_image_pixels)
    except ImageRejected as rejected:
        path.unlink(missing_ok=True)  # never keep what isn't a usable picture
        dispatcher.utter_message(text=rejected.message)
        return [SlotSet("photo_ref", None)]
    try:
        search = services.product_search()
        constraints = _merged(base, search.understand(typed) if typed.strip() else None)
        size = settings.search_page_size
        result = find_similar(search.store, image, k=size * (page + 1),
                              constraints=constraints, classifier=services.image_classifier())
        products = search.store.get(result.ids[size * page:])
    except Exception:
        logger.exception("photo search failed for %s", tracker.sender_id)
        dispatcher.utter_message(text="Sorry, I can't look at photos right now. "
                                      "Try describing what you want instead.")
        return []
    logger.info("photo %s: %s", path.name, result.classification.as_dict())
    headline = what_it_looks_like(result.classification)
    if not products:
        ending = ("That's everything like it I have." if page else
                  "I couldn't find anything like it in the catalog, sorry.")
        dispatcher.utter_message(text=f"{headline} {ending}")
        return [SlotSet("photo_ref", path.name)]
    if page:
        headline = "More like your photo:"
    elif result.relaxed:
        headline += " Nothing matched everything you asked for, so here are the closest:"
    else:
        headline += " Here are similar products:"
    dispatcher.utter_message(text=f"{headline}\n{product_list(products, start=size * page + 1)}",
                             json_message=cards_payload(products, query=typed or "photo"))
    services.log_event(tracker.sender_id, [p.id for p in products], EventType.SHOWN)
    filters = SearchConstraints(article_types=result.filters.get("article_types") or [],
                                colours=constraints.colours, genders=constraints.genders,
                                brands=constraints.brands, min_price=constraints.min_price,
                                max_price=constraints.max_price)
    return [
        SlotSet("photo_ref", path.name),
        SlotSet("search_query", typed or None),
        SlotSet("search_filters", filters.to_dict()),
        SlotSet("shown_products", [p.id for p in products]),
        SlotSet("search_page", float(page)),
    ]


def _merged(base: SearchConstraints, typed: SearchConstraints | None) -> SearchConstraints:
    """What the shopper typed with the photo wins over what was active before."""
    if typed is None:
        return base
    merged = SearchConstraints.from_dict({**base.to_dict(), **typed.to_dict()})
    merged.prefer_cheap = typed.prefer_cheap or base.prefer_cheap
    return merged
