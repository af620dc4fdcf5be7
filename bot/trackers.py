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

It also keeps the trackers it saved: Rasa's SQL store rebuilds the whole conversation from
its rows on every turn, so a turn's cost grew with the conversation (measured 117 ms at
turn 10, 247 ms at turn 190). A kept tracker is used again only while the database's last
event id for that conversation is still the one this process wrote (one indexed query); any
other writer (another replica, a forget-me purge) or a turn that failed after changing the
tracker makes it load from the database as before.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy.exc import DBAPIError, OperationalError

logger = logging.getLogger(__name__)

RETRY_FOR_S = 6.0
KEPT_CONVERSATIONS = 256  # trackers kept per process (the most recently saved)
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


@dataclass
class _Kept:
    tracker: DialogueStateTracker
    last_event_id: int
    events: int  # len(tracker.events) when kept: more means a turn changed it unsaved


class ResilientSQLTrackerStore(SQLTrackerStore):
    """``SQLTrackerStore`` that retries through short outages and reports the rest, and
    reuses the trackers it saved while nobody else has written their conversation."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kept: OrderedDict[str, _Kept] = OrderedDict()

    def _last_event_id(self, sender_id: str) -> int | None:
        with self.session_scope() as session:
            return session.query(sa.func.max(self.SQLEvent.id)).filter(
                self.SQLEvent.sender_id == sender_id).scalar()

    def _keep(self, tracker: DialogueStateTracker) -> None:
        last = self._last_event_id(tracker.sender_id)
        if last is None:
            self._kept.pop(tracker.sender_id, None)
            return
        self._kept[tracker.sender_id] = _Kept(tracker, last, len(tracker.events))
        self._kept.move_to_end(tracker.sender_id)
        while len(self._kept) > KEPT_CONVERSATIONS:
            self._kept.popitem(last=False)

    def _reusable(self, sender_id: str) -> DialogueStateTracker | None:
        kept = self._kept.pop(sender_id, None)  # handed out once: Rasa changes it
        if kept is None or len(kept.tracker.events) != kept.events:
            return None
        if self._last_event_id(sender_id) != kept.last_event_id:
            return None
        return kept.tracker

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
        async def load() -> DialogueStateTracker | None:
            return self._reusable(sender_id) or await SQLTrackerStore.retrieve(self, sender_id)

        return await self._with_retries("load", load)

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
        try:
            self._keep(tracker)
        except (OperationalError, DBAPIError):
            self._kept.pop(tracker.sender_id, None)  # saved; only the shortcut is lost
