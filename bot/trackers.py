"""Rasa's SQL tracker store, made to say when a turn could not be kept.

Rasa wraps every tracker store in ``FailSafeTrackerStore``: when the database is away, a
failed load returns *no* conversation (the turn then runs as a brand-new conversation) and
a failed save goes to an in-process memory store and is forgotten, while the shopper is
answered as if all were well. With PostgreSQL restarting under several replicas that loses
turns the shopper saw answered, and starts conversations over mid-way.

This store (endpoints.yml: ``type: bot.trackers.ResilientSQLTrackerStore``) first retries
a failed load or save for a few seconds (a database restart or a dropped pooled connection
is usually over by then), and if the database is still away records the failure for the
turn in progress (:func:`watch_turn`), so the REST channel answers "send it again" instead
of replies the conversation did not keep.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from typing import Any

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy.exc import DBAPIError, OperationalError

logger = logging.getLogger(__name__)

RETRY_FOR_S = 6.0
_failures: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "shopbot_tracker_failures", default=None)


def watch_turn() -> list[str]:
    """Start collecting tracker-store failures for the turn about to run in this task;
    the returned list is non-empty afterwards if the turn was not loaded or not kept."""
    failures: list[str] = []
    _failures.set(failures)
    return failures


def _record(what: str) -> None:
    failures = _failures.get()
    if failures is not None:
        failures.append(what)


class ResilientSQLTrackerStore(SQLTrackerStore):
    """``SQLTrackerStore`` that retries through short outages and reports the rest."""

    async def _with_retries(self, what: str, attempt: Any) -> Any:
        deadline = time.monotonic() + RETRY_FOR_S
        delay = 0.2
        while True:
            try:
                return await attempt()
            except (OperationalError, DBAPIError) as error:
                if time.monotonic() + delay > deadline:
                    _record(what)
                    logger.error("tracker store: %s failed for %.0f s, giving up: %s", what,
                                 RETRY_FOR_S, str(error).splitlines()[0])
                    raise
                logger.warning("tracker store: %s failed, retrying: %s", what,
                               str(error).splitlines()[0])
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.5)

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        return await self._with_retries(
            "load", lambda: SQLTrackerStore.retrieve(self, sender_id))

    async def retrieve_full_tracker(self, conversation_id: str
                                    ) -> DialogueStateTracker | None:
        return await self._with_retries(
            "load", lambda: SQLTrackerStore.retrieve_full_tracker(self, conversation_id))

    async def save(self, tracker: DialogueStateTracker) -> None:
        if _failures.get():
            # The load failed, so Rasa ran this turn on an empty conversation: writing it
            # would splice a fresh conversation into the real one.
            raise RuntimeError(f"not saving {tracker.sender_id}: its conversation never "
                               "loaded this turn")
        await self._with_retries("save", lambda: SQLTrackerStore.save(self, tracker))
