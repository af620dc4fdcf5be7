"""The shopper's remembered preferences: learned when stated, and "forget me".

"I'm a size 9", "I shop for women", "my budget is 2000", "I love Nike and blue" are stored
in the profile (search fills gender and budget from it, the cart picks the size). "Forget
me" asks first, then deletes profile, cart, tickets, browsing events and the conversation,
and says what it deleted and what it kept (orders, anonymised, for the shop's accounts).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import AllSlotsReset
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import services
from actions.orders import latest_text
from shopbot.privacy import forget_shopper, purge_tracker_later
from shopbot.profile import learn_from_text
from shopbot.settings import get_settings
from shopbot.shopdb import short

logger = logging.getLogger(__name__)

# The delayed tracker purges still running; a task nobody references may be collected.
_PURGES: set[asyncio.Task[int]] = set()


class ActionLearnProfile(Action):
    def name(self) -> str:
        return "action_learn_profile"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        text = latest_text(tracker)
        try:
            vocab = services.product_search().store.vocab
        except Exception:
            logger.exception("catalog vocabulary unavailable; learning sizes and budget only")
            vocab = None
        learned = learn_from_text(text, vocab)
        if learned.is_empty:
            dispatcher.utter_message(
                text="I can remember your sizes, who you shop for, your budget and favourite "
                "brands and colours, e.g. 'I'm a size 9' or 'my budget is 2000'.")
            return []
        try:
            services.profile_store().apply(tracker.sender_id, learned)
        except Exception:
            logger.exception("profile not saved for %s", short(tracker.sender_id))
            dispatcher.utter_message(text="Sorry, I couldn't save that just now.")
            return []
        dispatcher.utter_message(
            text=f"Got it, I'll remember: {learned.describe()}. I'll use it when you search "
            "and add to your cart. Say 'forget me' any time to delete it.")
        return []


class ActionForgetMe(Action):
    """Runs after the shopper confirmed "forget me"."""

    def name(self) -> str:
        return "action_forget_me"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        sender = tracker.sender_id
        tracker_db = get_settings().tracker_db
        report = forget_shopper(
            sender, orders=services.order_store(), cart=services.cart_store(),
            profile=services.profile_store(), tickets=services.ticket_store(),
            events=services.event_log(), links=services.link_store(), tracker_db=tracker_db)
        # Rasa saves this very turn after the reply; delete it again once it has.
        task = asyncio.create_task(purge_tracker_later(tracker_db, sender))
        _PURGES.add(task)
        task.add_done_callback(_PURGES.discard)
        dispatcher.utter_message(text=report.message)
        return [AllSlotsReset()]
