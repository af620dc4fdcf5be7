"""Slack: Events API and interactivity (button clicks) on one signed URL, replies by Web API.

Every request carries ``X-Slack-Signature`` over ``v0:<timestamp>:<body>`` with the signing
secret and a timestamp that must be under five minutes old. Slack resends an event when the
answer takes over 3 s, so the base class answers first and works in the background; the
``event_id`` drops re-deliveries. Credentials: ``bot_token`` (``xoxb-...``),
``signing_secret``, optional ``api_base_url`` (default https://slack.com/api).

Senders are ``slack:<team>:<user>``; replies go to the channel (or DM) the message came from.
Only direct messages and mentions of the bot are answered; bot messages (ours included)
and edits are ignored.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import parse_qsl

from sanic import response
from sanic.request import Request

from bot.channels.base import Parsed, Refused, ShopInput
from bot.channels.inbound import Incoming
from bot.channels.render import Reply, slack_messages
from bot.channels.signatures import verify_slack

logger = logging.getLogger(__name__)

DEFAULT_API = "https://slack.com/api"
MENTION = re.compile(r"<@[A-Z0-9]+>")


def slack_unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class SlackInput(ShopInput):
    REQUIRED = ("bot_token", "signing_secret")
    PREFIX = "slack:"

    @classmethod
    def name(cls) -> str:
        return "slack"

    def __init__(self, credentials: dict[str, str], **kwargs: Any) -> None:
        super().__init__(credentials, **kwargs)
        self.api = (credentials.get("api_base_url") or DEFAULT_API).rstrip("/")

    def parse(self, request: Request) -> Parsed:
        timestamp = request.headers.get("X-Slack-Request-Timestamp")
        signature = request.headers.get("X-Slack-Signature")
        if not timestamp or not signature:
            raise Refused(401, "missing Slack signature")
        if not verify_slack(request.body, timestamp, signature,
                            self.credentials["signing_secret"]):
            raise Refused(403, "bad or stale Slack signature")
        if request.content_type.startswith("application/x-www-form-urlencoded"):
            form = dict(parse_qsl(request.body.decode(errors="replace"), keep_blank_values=True))
            try:
                payload = json.loads(form.get("payload", ""))
            except ValueError as error:
                raise Refused(400, "interaction without a JSON payload") from error
            incoming = self.read_interaction(payload) if isinstance(payload, dict) else None
            return Parsed(answer=response.empty(status=200), messages=[incoming] if incoming
                          else [])
        try:
            payload = json.loads(request.body)
        except ValueError as error:
            raise Refused(400, "body is not JSON") from error
        if not isinstance(payload, dict):
            raise Refused(400, "body is not a Slack event")
        if payload.get("type") == "url_verification":
            return Parsed(answer=response.json({"challenge": payload.get("challenge", "")}))
        incoming = self.read_event(payload) if payload.get("type") == "event_callback" else None
        return Parsed(messages=[incoming] if incoming else [])

    def read_event(self, payload: dict[str, Any]) -> Incoming | None:
        event = payload.get("event")
        if not isinstance(event, dict) or event.get("type") not in ("message", "app_mention"):
            return None
        if event.get("bot_id") or event.get("subtype"):
            return None  # our own replies, edits, joins...
        if event.get("type") == "message" and event.get("channel_type") not in ("im", None):
            return None  # in channels, only mentions (they arrive as app_mention)
        user, channel = event.get("user"), event.get("channel")
        text = event.get("text")
        if not user or not channel or not isinstance(text, str):
            return None
        team = payload.get("team_id") or event.get("team") or ""
        return Incoming(sender=f"{self.PREFIX}{team}:{user}", address=channel,
                        text=slack_unescape(MENTION.sub("", text)).strip(),
                        message_id=str(payload.get("event_id") or ""))

    def read_interaction(self, payload: dict[str, Any]) -> Incoming | None:
        if payload.get("type") != "block_actions":
            return None
        actions = payload.get("actions") or []
        value = actions[0].get("value") if actions and isinstance(actions[0], dict) else None
        user = (payload.get("user") or {}).get("id")
        team = (payload.get("team") or {}).get("id") or ""
        channel = (payload.get("channel") or {}).get("id")
        if not value or not user or not channel:
            return None  # link buttons carry no value: Slack opened the page
        action_ts = actions[0].get("action_ts")
        return Incoming(sender=f"{self.PREFIX}{team}:{user}", address=channel, text=str(value),
                        from_button=True,
                        message_id=f"action:{user}:{action_ts}" if action_ts else "")

    def address_from_sender(self, sender: str) -> Any:
        """Outside a turn (a staff member's reply), the user's direct messages with the app:
        chat.postMessage takes a user id as the channel for that."""
        team_user = super().address_from_sender(sender)
        user = team_user.rpartition(":")[2] if isinstance(team_user, str) else ""
        return user or None

    async def deliver(self, address: Any, reply: Reply, message: dict[str, Any]) -> None:
        headers = {"Authorization": f"Bearer {self.credentials['bot_token']}"}
        for body in slack_messages(reply):
            answer = await self.api_post(f"{self.api}/chat.postMessage", "chat.postMessage",
                                         headers=headers, json={"channel": address, **body})
            if answer is not None and not answer.get("ok", False):
                logger.error("slack chat.postMessage refused: %s", str(answer.get("error"))[:100])
