"""A generic signed webhook, for platforms shopbot doesn't ship a channel for.

Your bridge POSTs ``{"sender": "...", "message": "...", "message_id": "..."}`` (message_id
optional, drops re-deliveries) to ``/webhooks/signed/webhook`` with::

    X-Shopbot-Timestamp: <unix seconds>
    X-Shopbot-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + body, key = secret>

and gets ``202 {"status": "accepted"}``. The bot's replies are POSTed, one per message and
signed the same way, to the ``callback_url`` from credentials.yml (never a URL from the
request: that would let anyone make the server call anywhere)::

    {"recipient_id": "<sender as you sent it>", "text": ..., "buttons": [...],
     "custom": {"type": "product_cards", "products": [{..., "image_url": absolute,
                "url": product page}]}}

Senders are ``signed:<sender>``. Credentials: ``secret``, ``callback_url``.
"""

from __future__ import annotations

import json
from typing import Any

from sanic import response
from sanic.request import Request

from bot.channels.base import Parsed, Refused, ShopInput
from bot.channels.inbound import Incoming
from bot.channels.render import Reply, webhook_message
from bot.channels.signatures import sign_shopbot, verify_shopbot
from shopcore.ids import valid_id


class SignedWebhookInput(ShopInput):
    REQUIRED = ("secret", "callback_url")
    PREFIX = "signed:"

    @classmethod
    def name(cls) -> str:
        return "signed"

    def problems(self, credentials: dict[str, str]) -> list[str]:
        problems = super().problems(credentials)
        callback = credentials.get("callback_url", "")
        if callback and not callback.startswith(("https://", "http://")):
            problems.append("callback_url (an http(s) URL)")
        return problems

    def parse(self, request: Request) -> Parsed:
        timestamp = request.headers.get("X-Shopbot-Timestamp")
        signature = request.headers.get("X-Shopbot-Signature")
        if not timestamp or not signature:
            raise Refused(401, "missing X-Shopbot-Timestamp or X-Shopbot-Signature")
        if not verify_shopbot(request.body, timestamp, signature, self.credentials["secret"]):
            raise Refused(403, "bad or stale signature")
        try:
            payload = json.loads(request.body)
        except ValueError as error:
            raise Refused(400, "body is not JSON") from error
        if not isinstance(payload, dict):
            raise Refused(400, 'send {"sender": "...", "message": "..."}')
        sender, text = payload.get("sender"), payload.get("message")
        if not valid_id(sender) or len(str(sender)) > 100 or not isinstance(text, str):
            raise Refused(400, 'send {"sender": "<id, at most 100 characters>", '
                               '"message": "<text>"}')
        incoming = Incoming(sender=f"{self.PREFIX}{sender}", address=sender, text=text,
                            message_id=str(payload.get("message_id") or "")[:100])
        return Parsed(answer=response.json({"status": "accepted"}, status=202),
                      messages=[incoming])

    async def deliver(self, address: Any, reply: Reply, message: dict[str, Any]) -> None:
        out = webhook_message(message, self.links)
        if not out:
            return
        body = json.dumps({"recipient_id": address, **out}, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json",
                   **sign_shopbot(self.credentials["secret"], body)}
        await self.api_post(self.credentials["callback_url"], "callback", data=body,
                            headers=headers)
