"""A staff member's part in a conversation (human handoff), on Rasa's side.

The console (web server) posts to ``/webhooks/rest/staff`` with the internal secret:
``{"sender": ..., "events": [...]}``, where events are Rasa's ``pause``, ``resume`` and
``bot`` (a staff reply, ``metadata.staff`` naming who wrote it). They are appended to the
conversation under Rasa's lock for it, and the ``bot`` ones are sent to the shopper through
the output channel of the channel they last wrote from: the platform's API for Telegram,
Messenger, Slack and Twilio, the widget outbox for the web widget
(:class:`OutboxOutput`). While the conversation is paused Rasa stores what the shopper writes
and answers nothing, so the bot stays quiet until ``resume``.

This does what Rasa's own ``POST /conversations/<id>/tracker/events`` does, without turning
on Rasa's whole HTTP API (model upload, training, any tracker) beside the webhooks.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, OutputChannel
from rasa.shared.core.events import BotUttered, ConversationPaused, ConversationResumed, Event
from sanic import Sanic

from bot.trackers import watch_turn
from shopcore.ids import short
from shopcore.outbox import WidgetOutbox

logger = logging.getLogger(__name__)

ALLOWED_EVENTS = {"pause", "resume", "bot"}
MAX_TEXT_CHARS = 4000


class StaffEventsRefused(ValueError):
    """Events a staff request may not append (only pause, resume and text messages)."""


class OutboxOutput(OutputChannel):
    """The web widget's output channel for messages outside a turn: the widget outbox."""

    def __init__(self, outbox: WidgetOutbox) -> None:
        self.outbox = outbox

    @classmethod
    def name(cls) -> str:
        return "rest"

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        await asyncio.to_thread(self.outbox.put, recipient_id, message)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"text": text})


def parse_events(raw: Any) -> list[Event]:
    """Rasa events from the request, refusing anything but pause, resume and bot text."""
    if not isinstance(raw, list) or not raw or len(raw) > 10:
        raise StaffEventsRefused("events must be a list of 1 to 10 events")
    events: list[Event] = []
    for item in raw:
        kind = item.get("event") if isinstance(item, dict) else None
        if kind not in ALLOWED_EVENTS:
            raise StaffEventsRefused(f"event {str(kind)[:20]!r} is not allowed")
        if kind == "pause":
            events.append(ConversationPaused())
        elif kind == "resume":
            events.append(ConversationResumed())
        else:
            text, metadata = item.get("text"), item.get("metadata") or {}
            if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT_CHARS \
                    or not isinstance(metadata, dict):
                raise StaffEventsRefused("a bot event needs text (at most 4000 characters)")
            events.append(BotUttered(text, metadata={k: v for k, v in metadata.items()
                                                     if k in ("staff", "notice")}))
    return events


def output_for(app: Sanic, channel_name: str | None) -> OutputChannel | None:
    """The output channel of the input channel the shopper last wrote from, if it has one."""
    for channel in getattr(app.ctx, "input_channels", None) or []:
        if channel.name() == channel_name:
            return channel.get_output_channel()
    return None


async def append_staff_events(app: Sanic, sender: str, events: list[Event]) -> dict[str, Any]:
    """Append ``events`` to the conversation and send its messages; what happened (raises
    when the conversation could not be saved, so the console says so)."""
    agent = app.ctx.agent
    failures = watch_turn()
    async with agent.lock_store.lock(sender):
        tracker = await agent.processor.fetch_tracker_with_initial_session(sender)
        for event in events:
            tracker.update(event, agent.domain)
        channel = tracker.get_latest_input_channel()
        output = output_for(app, channel)
        await agent.processor.execute_side_effects(
            events, tracker, output or CollectingOutputChannel())
        await agent.tracker_store.save(tracker)
    if failures:
        raise RuntimeError("tracker store " + "/".join(failures) + " failed")
    logger.info("staff events %s for %s (channel %s, %s)",
                ",".join(type(e).__name__ for e in events), short(sender), channel,
                "delivered" if output else "no output channel")
    return {"channel": channel, "delivered": output is not None, "paused": tracker.is_paused()}
