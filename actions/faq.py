"""Shop-policy answers: a named intent gets its entry of bot/policy.yml, any other shop
question the entry closest in meaning; when nothing is close enough, offer a person."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.base import ShopAction
from actions.dialogue import latest_intent, latest_text
from actions.replies import offer_a_person
from retrieval.policy import PolicyError, current_policy, current_retriever

logger = logging.getLogger(__name__)

UNSURE_TEXT = "I'm not sure — would you like me to connect you with a person?"
BROKEN_TEXT = ("Sorry, I can't look up our shop policies right now. Would you like me to "
               "connect you with a person?")


class ActionAnswerFaq(ShopAction):
    """Answers policy intents (delivery_period, check_refund_policy...) and the generic faq."""

    def name(self) -> str:
        return "action_answer_faq"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
        intent, text = latest_intent(tracker), latest_text(tracker)
        try:
            policy = current_policy()
            entry = policy.for_intent(intent)
            if entry is None:
                match = current_retriever().best(text)
                if match is None:
                    logger.info("no policy entry close enough for %r (intent %s)", text, intent)
                    return offer_a_person(dispatcher, UNSURE_TEXT)
                entry = match.entry
                logger.info("policy entry %s for %r at %.2f", entry.id, text, match.score)
        except PolicyError as error:
            logger.error("shop policy unusable: %s", error)
            return offer_a_person(dispatcher, BROKEN_TEXT)
        dispatcher.utter_message(text=policy.answer(entry))
        return []
