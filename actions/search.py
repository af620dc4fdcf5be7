"""Product search action: understand the request, search the catalog, reply with cards."""

from __future__ import annotations

import logging
import os
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import services
from actions.photo import photo_reply, upload_path
from actions.replies import product_list
from recsys.events import EventType
from retrieval.cards import cards_payload
from retrieval.query import SearchConstraints
from retrieval.refine import refine_constraints
from retrieval.search import SearchResult
from shopbot.profile import with_profile_defaults
from shopbot.settings import get_settings

logger = logging.getLogger(__name__)

RELAXED_WORDS = {
    "price": "that price range",
    "usage": "that style",
    "colour": "that colour",
    "brand": "that brand",
    "gender": "that gender",
}


def _headline(result: SearchResult) -> str:
    wanted = result.constraints.describe()
    if result.relaxed:
        dropped = " or ".join(RELAXED_WORDS[r] for r in result.relaxed)
        if result.exact_matches:
            return (f"I found {result.exact_matches} {wanted}; after those come the closest "
                    f"matches outside {dropped}:")
        return f"I couldn't find {wanted}. Here are the closest matches outside {dropped}:"
    return f"Here are some {wanted}:" if wanted != "products" else "Here's what I found:"


def reply_with_results(
    dispatcher: CollectingDispatcher, tracker: Tracker, result: SearchResult, query: str,
    page: int,
) -> list[dict[str, Any]]:
    """Text + product cards for a result page, and the slots the next turn builds on."""
    if not result.products:
        if page:
            dispatcher.utter_message(text="That's everything I have for that search. "
                                          "Try changing the colour, brand or budget.")
            return []
        dispatcher.utter_message(
            text="Sorry, I couldn't find any products matching that. "
            "Try describing it differently, e.g. 'black heels under 1500'."
        )
        return [SlotSet("photo_ref", None), SlotSet("search_query", query),
                SlotSet("shown_products", [])]
    headline = _headline(result) if not page else f"More {result.constraints.describe()}:"
    dispatcher.utter_message(
        text=headline + "\n" + product_list(result.products, start=result.offset + 1),
        json_message=cards_payload(result.products, query=query),
    )
    services.log_event(tracker.sender_id, result.ids, EventType.SHOWN)
    return [
        SlotSet("photo_ref", None),
        SlotSet("search_query", query),
        SlotSet("search_filters", result.constraints.to_dict()),
        SlotSet("shown_products", result.ids),
        SlotSet("search_page", float(page)),
    ]


def search_failed(dispatcher: CollectingDispatcher, text: str) -> list[dict[str, Any]]:
    logger.exception("product search failed for %r", text[:200])
    dispatcher.utter_message(
        text="Sorry, product search isn't working right now. Please try again shortly."
    )
    return []


class ActionSearchProducts(Action):
    def name(self) -> str:
        return "action_search_products"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        message = tracker.latest_message or {}
        text = (message.get("text") or "").strip()
        if not text:
            dispatcher.utter_message(text="Tell me what you're looking for, e.g. 'red dresses'.")
            return []
        try:
            search = services.product_search()
            constraints = search.understand(text, message.get("entities"))
            filled: list[str] = []
            try:  # a fresh search: what the query leaves open comes from the profile
                profile = services.profile_store().get(tracker.sender_id)
                constraints, filled = with_profile_defaults(constraints, profile)
            except Exception:
                logger.exception("profile unavailable for %s", tracker.sender_id)
            result = search.search(text, k=get_settings().search_page_size,
                                   constraints=constraints)
        except Exception:
            return search_failed(dispatcher, text)
        events = reply_with_results(dispatcher, tracker, result, text, page=0)
        if filled and result.products:
            dispatcher.utter_message(text="(I used your saved " + " and ".join(filled)
                                     + " preference; say e.g. 'for men' or 'any price' to "
                                     "change it.)")
        return events


class ActionRefineSearch(Action):
    """'cheaper ones', 'in blue', 'for women instead': change the last search and rerun it."""

    def name(self) -> str:
        return "action_refine_search"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        message = tracker.latest_message or {}
        text = (message.get("text") or "").strip()
        previous = tracker.get_slot("search_filters")
        query = tracker.get_slot("search_query") or text
        try:
            search = services.product_search()
            if not previous:  # nothing to refine: treat it as a new search
                result = search.search(text, k=get_settings().search_page_size,
                                       entities=message.get("entities"))
                return reply_with_results(dispatcher, tracker, result, text, page=0)
            shown = search.store.get(tracker.get_slot("shown_products") or [])
            constraints = refine_constraints(
                SearchConstraints.from_dict(previous), text, search.store.vocab, shown,
                message.get("entities"),
            )
            photo = upload_path(tracker.get_slot("photo_ref"))
            if photo is not None:  # "like this but in black": still ranked by the photo
                return photo_reply(dispatcher, tracker, photo, "", constraints)
            result = search.search(query, k=get_settings().search_page_size,
                                   constraints=constraints)
        except Exception:
            return search_failed(dispatcher, text)
        return reply_with_results(dispatcher, tracker, result, query, page=0)


class ActionShowMore(Action):
    """'show more': the next page of the last search."""

    def name(self) -> str:
        return "action_show_more"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        previous = tracker.get_slot("search_filters")
        query = tracker.get_slot("search_query")
        page = int(tracker.get_slot("search_page") or 0) + 1
        photo = upload_path(tracker.get_slot("photo_ref"))
        if photo is not None:
            return photo_reply(dispatcher, tracker, photo, "",
                               SearchConstraints.from_dict(previous), page=page)
        if not previous or not query:
            dispatcher.utter_message(text="Tell me what you're looking for first, "
                                          "e.g. 'white sneakers for men'.")
            return []
        size = get_settings().search_page_size
        try:
            result = services.product_search().search(
                query, k=size, offset=page * size,
                constraints=SearchConstraints.from_dict(previous),
            )
        except Exception:
            return search_failed(dispatcher, query)
        return reply_with_results(dispatcher, tracker, result, query, page=page)


# Warm up inside Sanic's worker process only (the stack sets SHOPBOT_WARM_UP): the parent
# process never serves, and touching the model there would pin multiprocessing to "fork".
if os.environ.get("SHOPBOT_WARM_UP") == "1" and os.environ.get("SANIC_WORKER_NAME"):
    services.warm_up()
