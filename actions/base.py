"""What every shopbot action shares: its work runs in a worker thread.

Rasa's action server answers every shopper on one event loop. Product search, the
recommender, the photo model and the shop database all block (Chroma, torch, ONNX, SQL), so
an action that called them inside ``async def run`` would stall every other shopper for as
long. A :class:`ShopAction` writes its work as a plain method, :meth:`act`, and ``run`` hands
it to a thread.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict


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
        return await asyncio.to_thread(self.act, dispatcher, tracker, domain)
