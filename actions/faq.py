"""Shop-policy answers: a named intent gets its entry of bot/policy.yml, any other shop
question the entry closest in meaning; when nothing is close enough, offer a person."""

from __future__ import annotations

import logging
import os
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from retrieval.policy import PolicyError, current_policy, current_retriever

logger = logging.getLogger(__name__)

UNSURE_TEXT = "I'm not sure — would you like me to connect you with a person?"
BROKEN_TEXT = ("Sorry, I can't look up our shop policies right now. Would you like me to "
               "connect you with a person?")
# Payloads are intents, so the choice works whatever the shopper's wording would be.
HUMAN_BUTTONS = [
    {"title": "Yes, connect me", "payload": "/contact_human_agent"},
    {"title": "No, thanks", "payload": "/deny"},
]


def offer_a_person(dispatcher: CollectingDispatcher, text: str = UNSURE_TEXT) -> list[Any]:
    dispatcher.utter_message(text=text, buttons=HUMAN_BUTTONS)
    return []


class ActionAnswerFaq(Action):
    """Answers policy intents (delivery_period, check_refund_policy...) and the generic faq."""

    def name(self) -> str:
        return "action_answer_faq"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        message = tracker.latest_message or {}
        intent = (message.get("intent") or {}).get("name") or ""
        text = message.get("text") or ""
        try:
            policy = current_policy()
            entry = policy.for_intent(intent)
            if entry is None:
                match = current_retriever().best(text)
                if match is None:
                    logger.info("no policy entry close enough for %r (intent %s)", text, intent)
                    return offer_a_person(dispatcher)
                entry = match.entry
                logger.info("policy entry %s for %r at %.2f", entry.id, text, match.score)
        except PolicyError as error:
            logger.error("shop policy unusable: %s", error)
            return offer_a_person(dispatcher, BROKEN_TEXT)
        dispatcher.utter_message(text=policy.answer(entry))
        return []


def warm_up() -> None:
    """Load the policy and encode its questions before the first shopper asks."""
    try:
        count = len(current_retriever().policy.entries)
        logger.info("shop policy ready: %d entries", count)
    except Exception:  # the server must still start; the action answers politely
        logger.exception("shop policy failed to load")


# Same guard as actions/search.py: only inside Sanic's worker process.
if os.environ.get("SHOPBOT_WARM_UP") == "1" and os.environ.get("SANIC_WORKER_NAME"):
    warm_up()
