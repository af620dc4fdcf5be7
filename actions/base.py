"""What every shopbot action shares: its work runs in a worker thread.

Rasa's action server answers every shopper on one event loop. Product search, the
recommender, the photo model and the shop database all block (Chroma, torch, ONNX, SQL), so
an action that called them inside ``async def run`` would stall every other shopper for as
long. A :class:`ShopAction` writes its work as a plain method, :meth:`act`, and ``run`` hands
it to a thread.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.replies import offer_to_resume
from shopcore.ids import short

ACTION_LISTEN = "action_listen"
# When a server behind the actions is briefly away (a database restart, say): the shopper
# hears that it is temporary, and repeating the message is the way on.
ONE_MOMENT_TEXT = ("One moment, please - part of the shop is briefly unavailable. "
                   "Please send that again in a few seconds.")

logger = logging.getLogger(__name__)


class ShopAction(Action, ABC):
    """An action whose work (:meth:`act`) runs off the event loop."""

    @abstractmethod
    def name(self) -> str:
        """The action's name in domain.yml (abstract: the base is never registered)."""

    @abstractmethod
    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
        """Reply through ``dispatcher``; return the events (slot changes) to apply."""

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[dict[str, Any]]:
        try:
            events = await asyncio.to_thread(self.act, dispatcher, tracker, domain)
        except Exception:  # a server the action needs is down (database, Chroma, ...)
            logger.exception("%s failed for %s", self.name(), short(tracker.sender_id))
            dispatcher.utter_message(text=ONE_MOMENT_TEXT)
            return []  # nothing remembered about a turn that did not happen
        if self.name().startswith("action_ask_"):  # a form's question, asked by the form
            return events
        paused = tracker.get_slot("paused_flow")
        if paused:  # this request interrupted a form (actions/orders.py): offer to go back
            events = [*events, *offer_to_resume(dispatcher, paused)]
        if handed_over(tracker) and not any(e.get("event") == "followup" for e in events):
            # No rule knows what follows a handed-over turn, so say it: wait for the shopper.
            events = [*events, FollowupAction(ACTION_LISTEN)]
        return events


def handed_over(tracker: Tracker) -> bool:
    """Whether this action runs because the fallback or a form handed it the turn (the
    action before it in this turn is one of those), rather than by a rule for the intent."""
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return False
        if event.get("event") == "action" and event.get("name") != ACTION_LISTEN:
            name = str(event.get("name") or "")
            return name == "action_fallback" or name.endswith("_form")
    return False
