"""Product search action: understand the request, search the catalog, reply with cards."""

from __future__ import annotations

import logging
import os
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import services
from actions.replies import product_list
from retrieval.cards import cards_payload
from retrieval.search import SearchResult
from shopbot.settings import get_settings

logger = logging.getLogger(__name__)

RELAXED_WORDS = {
    "price": "that price range",
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
        settings = get_settings()
        try:
            result = services.product_search().search(
                text, k=settings.search_page_size, entities=message.get("entities")
            )
        except Exception:
            logger.exception("product search failed for %r", text[:200])
            dispatcher.utter_message(
                text="Sorry, product search isn't working right now. Please try again shortly."
            )
            return []
        if not result.products:
            dispatcher.utter_message(
                text="Sorry, I couldn't find any products matching that. "
                "Try describing it differently, e.g. 'black heels under 1500'."
            )
            return [SlotSet("search_query", text), SlotSet("shown_products", [])]
        dispatcher.utter_message(
            text=_headline(result) + "\n" + product_list(result.products),
            json_message=cards_payload(result.products, query=text),
        )
        return [
            SlotSet("search_query", text),
            SlotSet("search_filters", result.constraints.to_dict()),
            SlotSet("shown_products", result.ids),
            SlotSet("search_page", 0.0),
        ]


# Warm up inside Sanic's worker process only (the stack sets SHOPBOT_WARM_UP): the parent
# process never serves, and touching the model there would pin multiprocessing to "fork".
if os.environ.get("SHOPBOT_WARM_UP") == "1" and os.environ.get("SANIC_WORKER_NAME"):
    services.warm_up()
