"""Twilio SMS and WhatsApp: signed form webhooks, replies through the Messages API.

Twilio signs each webhook (``X-Twilio-Signature``) over the URL *it* called plus the form
fields, so behind a proxy or tunnel set ``webhook_url`` to the public URL configured in
the Twilio console (otherwise the URL this server saw is used). Rasa's connector uses the
synchronous ``twilio`` client against api.twilio.com only; this one uses aiohttp.
Credentials: ``account_sid``, ``auth_token``, optional ``twilio_number`` (sender when the
webhook doesn't say which number was written to), ``webhook_url``, ``api_base_url`` and
``media_hosts`` (where MMS/WhatsApp photos may be fetched from, following Twilio's
redirect to its CDN; the account credentials go to the first host only).

Senders are ``twilio:<From>``, e.g. ``twilio:whatsapp:+15551234567`` or ``twilio:+1555...``;
replies go from the number the shopper wrote to. SMS has no buttons or cards: products are
numbered lines with links (see ``render.sms_text``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from sanic import response
from sanic.request import Request

from bot.channels.base import Parsed, Refused, ShopInput
from bot.channels.config import parse_hosts
from bot.channels.inbound import Incoming
from bot.channels.photos import download
from bot.channels.render import Reply, sms_messages
from bot.channels.signatures import verify_twilio

DEFAULT_API = "https://api.twilio.com"
DEFAULT_MEDIA_HOSTS = "api.twilio.com, *.twiliocdn.com"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class TwilioInput(ShopInput):
    REQUIRED = ("account_sid", "auth_token")
    PREFIX = "twilio:"

    @classmethod
    def name(cls) -> str:
        return "twilio"

    def __init__(self, credentials: dict[str, str], **kwargs: Any) -> None:
        super().__init__(credentials, **kwargs)
        self.api = (credentials.get("api_base_url") or DEFAULT_API).rstrip("/")
        self.media_hosts = parse_hosts(credentials.get("media_hosts") or DEFAULT_MEDIA_HOSTS)
        self.auth = aiohttp.BasicAuth(credentials.get("account_sid", ""),
                                      credentials.get("auth_token", ""))

    def parse(self, request: Request) -> Parsed:
        signature = request.headers.get("X-Twilio-Signature")
        if not signature:
            raise Refused(401, "missing X-Twilio-Signature")
        fields = parse_qsl(request.body.decode(errors="replace"), keep_blank_values=True)
        url = self.credentials.get("webhook_url") or request.url
        if not verify_twilio(url, fields, signature, self.credentials["auth_token"]):
            raise Refused(403, "bad X-Twilio-Signature")
        form = dict(fields)
        shopper, ours = form.get("From", ""), form.get("To", "")
        answer = response.text(EMPTY_TWIML, content_type="text/xml")
        if not shopper:
            return Parsed(answer=answer)
        incoming = Incoming(sender=f"{self.PREFIX}{shopper}",
                            address=(shopper, ours or self.credentials.get("twilio_number", "")),
                            text=form.get("Body", ""),
                            message_id=form.get("MessageSid", ""))
        media = self.photo_url(form)
        if media:
            incoming.photo = lambda: download(self.session(), media, self.media_hosts,
                                              self.settings.max_upload_bytes, auth=self.auth)
        elif not incoming.text.strip():
            return Parsed(answer=answer)
        return Parsed(answer=answer, messages=[incoming])

    @staticmethod
    def photo_url(form: dict[str, str]) -> str:
        """The first image among the message's media (voice notes and videos are skipped)."""
        try:
            count = min(int(form.get("NumMedia") or 0), 10)
        except ValueError:
            return ""
        for index in range(count):
            if form.get(f"MediaContentType{index}", "").startswith("image/"):
                return form.get(f"MediaUrl{index}", "")
        return ""

    def address_from_sender(self, sender: str) -> Any:
        shopper = super().address_from_sender(sender)
        number = self.credentials.get("twilio_number", "")
        if not shopper or not number:
            return None
        if shopper.startswith("whatsapp:") and not number.startswith("whatsapp:"):
            number = f"whatsapp:{number}"
        return (shopper, number)

    async def deliver(self, address: Any, reply: Reply, message: dict[str, Any]) -> None:
        shopper, ours = address
        url = f"{self.api}/2010-04-01/Accounts/{self.credentials['account_sid']}/Messages.json"
        for fields in sms_messages(reply):
            await self.api_post(url, "Messages API", auth=self.auth,
                                data={"To": shopper, "From": ours, **fields})
