"""The shopper's remembered preferences: learned when stated, and "forget me".

"I'm a size 9", "I shop for women", "my budget is 2000", "I love Nike and blue" are stored
in the profile (search fills gender and budget from it, the cart picks the size). "Forget
me" asks first, then deletes profile, cart, tickets, browsing events and the conversation,
and says what it deleted and what it kept (orders, anonymised, for the shop's accounts).
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import AllSlotsReset
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.base import ShopAction
from actions.dialogue import latest_text
from actions.services import services
from shop.preferences import learn_from_text
from shopcore.ids import short

logger = logging.getLogger(__name__)


class ActionLearnProfile(ShopAction):
    def name(self) -> str:
        return "action_learn_profile"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
        shop = services()
        try:
            vocab = shop.store.vocab
        except Exception:
            logger.exception("catalog vocabulary unavailable; learning sizes and budget only")
            vocab = None
        learned = learn_from_text(latest_text(tracker), vocab)
        if learned.is_empty:
            dispatcher.utter_message(
                text="I can remember your sizes, who you shop for, your budget and favourite "
                "brands and colours, e.g. 'I'm a size 9' or 'my budget is 2000'.")
            return []
        try:
            shop.records.profiles.apply(tracker.sender_id, learned)
        except Exception:
            logger.exception("profile not saved for %s", short(tracker.sender_id))
            dispatcher.utter_message(text="Sorry, I couldn't save that just now.")
            return []
        dispatcher.utter_message(
            text=f"Got it, I'll remember: {learned.describe()}. I'll use it when you search "
            "and add to your cart. Say 'forget me' any time to delete it.")
        return []


class ActionForgetMe(ShopAction):
    """Runs after the shopper confirmed "forget me"."""

    def name(self) -> str:
        return "action_forget_me"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
        report = services().records.forget(tracker.sender_id)
        dispatcher.utter_message(text=report.message)
        return [AllSlotsReset()]
