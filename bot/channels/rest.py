"""Rasa's REST channel (what the web server passes the widget's messages to), plus linking.

Same URL (``/webhooks/rest/webhook``), same request (``{"sender", "message", "metadata"}``)
and same answer (the list of bot messages) as Rasa's ``rest`` channel. It is internal: only
callers that show the internal secret (header ``X-Shopbot-Internal``, which the web server
adds after deciding who the shopper is) are served; anyone else gets 401, so a sender id in
a request from outside never reaches the bot. Two additions:

- ``link`` / ``link <code>`` / ``unlink`` are answered here, and a linked sender's messages
  reach the bot under the id of the chat it was linked to (see ``shopcore.links``); only a
  request marked ``"authenticated": true`` (a signed-in customer) may redeem a code;
- sender ids that look like another channel's (``telegram:...``) are refused, so nobody
  can read a Telegram shopper's cart by posting their id here;
- ``/webhooks/rest/staff`` lets the staff console pause a conversation, send the shopper a
  person's replies and resume the bot (:mod:`bot.channels.staff`); messages sent outside a
  turn reach the widget through the outbox (:meth:`LinkingRestInput.get_output_channel`).
"""

from __future__ import annotations

import asyncio
import copy
import hmac
import logging
from asyncio import CancelledError
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.staff import (
    OutboxOutput,
    StaffEventsRefused,
    append_staff_events,
    parse_events,
)
from bot.trackers import watch_turn
from shopcore.conversations import Purges
from shopcore.db import open_database
from shopcore.ids import is_channel_sender, valid_id
from shopcore.keys import INTERNAL_HEADER, internal_secret
from shopcore.links import LinkStore
from shopcore.outbox import WidgetOutbox
from shopcore.settings import Settings, get_settings

logger = logging.getLogger(__name__)



class LinkingRestInput(RestInput):
    """``rest`` with link commands and sender mapping; no streaming (nothing here uses it)."""

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> LinkingRestInput:
        return cls()

    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or get_settings()
        database = open_database(settings.shop_database_url)
        self.link_store = LinkStore(database)
        self.outbox = WidgetOutbox(database)
        self.purges = Purges.from_settings(settings)
        self.secret = internal_secret(settings).encode()

    def trusted(self, request: Request) -> bool:
        shown = (request.headers.get(INTERNAL_HEADER) or "").encode()
        return hmac.compare_digest(shown, self.secret)

    def get_output_channel(self) -> OutboxOutput:
        """Messages outside a turn (a staff member's) go to the widget's outbox."""
        return OutboxOutput(self.outbox)

    @staticmethod
    def not_answered() -> HTTPResponse:
        """A turn that failed part-way (a store was away) may not have been saved, so none
        of the replies it collected is sent: the caller tells the shopper to send it again,
        and an answer the shopper saw is always one the conversation kept."""
        return response.json({"error": "the message could not be handled; send it again"},
                             status=503)

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[None]]
    ) -> Blueprint:
        hook = Blueprint("shopbot_rest_webhook", __name__)

        @hook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @hook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not self.trusted(request):
                logger.warning("rest refused a request without the internal secret from %s",
                               request.ip)
                return response.json({"error": "not allowed"}, status=401)
            try:
                payload = request.json
            except Exception:  # noqa: BLE001 - Sanic raises its own error type for bad JSON
                payload = None
            if not isinstance(payload, dict):
                return response.json({"error": 'send {"sender": "...", "message": "..."}'},
                                     status=400)
            sender, text = payload.get("sender"), payload.get("message")
            if not valid_id(sender) or not isinstance(text, str | type(None)):
                return response.json({"error": "sender must be a short id, message text"},
                                     status=400)
            if is_channel_sender(sender):
                logger.warning("rest refused sender id %r (another channel's)", sender[:40])
                return response.json({"error": "that sender id belongs to another channel"},
                                     status=403)
            answer = await asyncio.to_thread(self.link_store.handle, sender, text,
                                             may_redeem=payload.get("authenticated") is True)
            if answer is not None:
                return response.json([{"recipient_id": sender, "text": answer}])
            metadata = payload.get("metadata")
            collector = CollectingOutputChannel()
            failures = watch_turn()
            try:
                canonical = await asyncio.to_thread(self.link_store.canonical, sender)
                await on_new_message(UserMessage(
                    text, collector, canonical,
                    input_channel=payload.get("input_channel") or self.name(),
                    metadata=metadata if isinstance(metadata, dict) else None))
            except CancelledError:
                logger.error("rest message timed out: %r", copy.deepcopy(text)[:100])
                return self.not_answered()
            except Exception:
                logger.exception("rest message failed: %r", str(text)[:100])
                return self.not_answered()
            if failures:  # Rasa's fail-safe store swallowed it: the turn was not kept
                logger.error("rest message not kept (tracker store %s failed): %r",
                             "/".join(failures), str(text)[:100])
                return self.not_answered()
            await asyncio.to_thread(self.purges.run)  # Rasa has saved the turn by now
            return response.json(collector.messages)

        @hook.route("/staff", methods=["POST"])
        async def staff(request: Request) -> HTTPResponse:
            if not self.trusted(request):
                logger.warning("rest refused a staff request without the internal secret "
                               "from %s", request.ip)
                return response.json({"error": "not allowed"}, status=401)
            try:
                payload = request.json
            except Exception:  # noqa: BLE001 - Sanic's own error type for bad JSON
                payload = None
            sender = payload.get("sender") if isinstance(payload, dict) else None
            if not valid_id(sender):
                return response.json({"error": "sender must be a short id"}, status=400)
            try:
                events = parse_events(payload.get("events"))
            except StaffEventsRefused as refused:
                return response.json({"error": str(refused)}, status=400)
            try:
                done = await append_staff_events(request.app, sender, events)
            except Exception:
                logger.exception("staff events for a conversation failed")
                return self.not_answered()
            return response.json(done)

        return hook
