"""Facebook Messenger: Meta's signed webhook (X-Hub-Signature-256), the Send API for replies.

Rasa's connector sends through ``fbmessenger`` (synchronous, graph.facebook.com only), so
this one is written on :class:`ShopInput` with aiohttp. Credentials: ``page_access_token``,
``app_secret`` (signs every webhook), ``verify_token`` (Meta's subscription handshake,
``GET /webhook?hub.mode=subscribe&hub.verify_token=...&hub.challenge=...``), optional
``api_base_url`` (default the Graph API) and ``media_hosts`` (where photo attachments may
be downloaded from; default Meta's CDN hosts).

Senders are ``messenger:<page-scoped id>``.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.base import Parsed, Refused, ShopInput
from bot.channels.config import parse_hosts
from bot.channels.inbound import Incoming
from bot.channels.photos import download
from bot.channels.render import Reply, messenger_messages
from bot.channels.signatures import verify_meta

DEFAULT_API = "https://graph.facebook.com/v19.0"
DEFAULT_MEDIA_HOSTS = "*.fbcdn.net, lookaside.fbsbx.com"
SIGNATURE_HEADER = "X-Hub-Signature-256"


class MessengerInput(ShopInput):
    REQUIRED = ("page_access_token", "app_secret", "verify_token")
    PREFIX = "messenger:"

    @classmethod
    def name(cls) -> str:
        return "messenger"

    def __init__(self, credentials: dict[str, str], **kwargs: Any) -> None:
        super().__init__(credentials, **kwargs)
        self.api = (credentials.get("api_base_url") or DEFAULT_API).rstrip("/")
        self.media_hosts = parse_hosts(credentials.get("media_hosts") or DEFAULT_MEDIA_HOSTS)

    def parse(self, request: Request) -> Parsed:
        if request.method == "GET":
            return Parsed(answer=self.subscribe(request))
        header = request.headers.get(SIGNATURE_HEADER)
        if not header:
            raise Refused(401, "missing X-Hub-Signature-256")
        if not verify_meta(request.body, header, self.credentials["app_secret"]):
            raise Refused(403, "bad X-Hub-Signature-256")
        try:
            payload = json.loads(request.body)
        except ValueError as error:
            raise Refused(400, "body is not JSON") from error
        if not isinstance(payload, dict) or payload.get("object") != "page":
            return Parsed()
        messages = []
        for entry in payload.get("entry") or []:
            for event in (entry.get("messaging") or []) if isinstance(entry, dict) else []:
                incoming = self.read_event(event) if isinstance(event, dict) else None
                if incoming:
                    messages.append(incoming)
        return Parsed(answer=response.text("EVENT_RECEIVED"), messages=messages)

    def subscribe(self, request: Request) -> HTTPResponse:
        """Meta's webhook handshake: echo the challenge when the verify token matches."""
        token = request.args.get("hub.verify_token", "")
        if request.args.get("hub.mode") == "subscribe" and hmac.compare_digest(
                token.encode(), self.credentials["verify_token"].encode()):
            return response.text(request.args.get("hub.challenge", ""))
        raise Refused(403, "wrong verify token")

    def read_event(self, event: dict[str, Any]) -> Incoming | None:
        psid = (event.get("sender") or {}).get("id")
        if not psid:
            return None
        sender = f"{self.PREFIX}{psid}"
        postback = event.get("postback")
        if isinstance(postback, dict) and postback.get("payload"):
            return Incoming(sender=sender, address=psid, text=str(postback["payload"]),
                            from_button=True, message_id=str(postback.get("mid") or ""))
        message = event.get("message")
        if not isinstance(message, dict) or message.get("is_echo"):
            return None
        message_id = str(message.get("mid") or "")
        quick = message.get("quick_reply")
        if isinstance(quick, dict) and quick.get("payload"):
            return Incoming(sender=sender, address=psid, text=str(quick["payload"]),
                            from_button=True, message_id=message_id)
        for attachment in message.get("attachments") or []:
            url = ((attachment or {}).get("payload") or {}).get("url")
            if attachment.get("type") == "image" and isinstance(url, str):
                return Incoming(sender=sender, address=psid, text=str(message.get("text") or ""),
                                photo=lambda url=url: download(
                                    self.session(), url, self.media_hosts,
                                    self.settings.max_upload_bytes),
                                message_id=message_id)
        if isinstance(message.get("text"), str):
            return Incoming(sender=sender, address=psid, text=message["text"],
                            message_id=message_id)
        return None

    async def deliver(self, address: Any, reply: Reply, message: dict[str, Any]) -> None:
        for body in messenger_messages(reply):
            await self.api_post(
                f"{self.api}/me/messages", "Send API",
                params={"access_token": self.credentials["page_access_token"]},
                json={"recipient": {"id": address}, "messaging_type": "RESPONSE",
                      "message": body})
