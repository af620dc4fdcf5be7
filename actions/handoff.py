"""Human handoff: a support ticket with the conversation so far, and what happens next."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.base import ShopAction
from actions.replies import hand_off
from actions.services import services


class ActionHandoff(ShopAction):
    def name(self) -> str:
        return "action_handoff"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
        hand_off(dispatcher, tracker, services())
        return []
