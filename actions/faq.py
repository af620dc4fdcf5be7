"""FAQ action: answer from the ResponseSelector's pick, or ask which topic when unsure."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

logger = logging.getLogger(__name__)

CONFIDENCE_THRESHOLD = 0.5
# Shown as quick replies when the selector is unsure; payloads are plain questions.
TOPIC_BUTTONS = [
    {"title": "Shipping & delivery", "payload": "How long does delivery take?"},
    {"title": "Returns & refunds", "payload": "What is your return policy?"},
    {"title": "Payment methods", "payload": "Which payment methods do you accept?"},
    {"title": "Sizes", "payload": "How do I find my size?"},
]


def selected_response(message: dict[str, Any]) -> tuple[str | None, float]:
    """The ``utter_faq/<topic>`` the ResponseSelector chose and its confidence."""
    selector = (message.get("response_selector") or {}).get("faq") or {}
    response = selector.get("response") or {}
    return response.get("utter_action"), float(response.get("confidence") or 0.0)


class ActionAnswerFaq(Action):
    def name(self) -> str:
        return "action_answer_faq"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        utter_action, confidence = selected_response(tracker.latest_message or {})
        known = utter_action and utter_action in (domain.get("responses") or {})
        if known and confidence >= CONFIDENCE_THRESHOLD:
            dispatcher.utter_message(response=utter_action)
            return []
        logger.info("faq unsure: %s at %.2f", utter_action, confidence)
        dispatcher.utter_message(
            text="I'm not sure which question you mean. Is it about one of these?",
            buttons=TOPIC_BUTTONS,
        )
        return []
