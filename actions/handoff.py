"""Human handoff: a support ticket with the conversation so far, and what happens next."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import services
from shopbot.shopdb import short

logger = logging.getLogger(__name__)

TRANSCRIPT_EVENTS = 400  # the ticket store keeps the newest turns; no need to read more


def transcript(tracker: Tracker) -> list[dict[str, Any]]:
    """User and bot texts of the conversation, oldest first, with their timestamps."""
    turns = []
    for event in tracker.events[-TRANSCRIPT_EVENTS:]:
        role = event.get("event")
        if role in ("user", "bot") and event.get("text"):
            turns.append({"role": role, "text": event["text"], "ts": event.get("timestamp")})
    return turns


def handoff_reason(tracker: Tracker) -> str:
    """The shopper's own words: the latest message that isn't a button payload."""
    for event in reversed(tracker.events):
        text = str(event.get("text") or "") if event.get("event") == "user" else ""
        if text and not text.startswith("/"):
            return text
    return ""


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        intent = str(((tracker.latest_message or {}).get("intent") or {}).get("name") or "")
        try:
            outcome = services.ticket_store().create(
                tracker.sender_id, handoff_reason(tracker), transcript(tracker), intent)
        except Exception:
            logger.exception("handoff ticket failed for %s", short(tracker.sender_id))
            dispatcher.utter_message(
                text="Sorry, I couldn't pass this on just now. Please contact our support "
                "team directly (say 'contact customer service' for the details).")
            return []
        if intent == "complaint":
            dispatcher.utter_message(text="I'm sorry about this.")
        dispatcher.utter_message(text=outcome.message)
        return []
