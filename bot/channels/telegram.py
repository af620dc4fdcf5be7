"""Telegram: Bot API webhook with its secret token, replies through a configurable API URL.

Rasa's own Telegram connector asks Telegram who it is on every update (``getMe``), sets the
webhook at start-up and talks to api.telegram.org only, so this one is written on
:class:`ShopInput` with plain aiohttp calls instead. Credentials (credentials.yml):
``access_token``, ``secret_token`` (the one given to ``setWebhook``), optional
``api_base_url`` (a self-hosted Bot API server or a test fake) and ``media_hosts`` (hosts
photos may be downloaded from; default: the API host).

Senders are ``telegram:<user id>`` (not the chat id, so shoppers in a group chat each keep
their own cart); replies go to the chat.
"""

from __future__ import annotations

import json
from typing import Any

from sanic.request import Request

from bot.channels.base import Parsed, Refused, ShopInput
from bot.channels.config import host_of, parse_hosts
from bot.channels.inbound import Incoming
from bot.channels.photos import download, too_large
from bot.channels.render import Reply, telegram_calls
from bot.channels.signatures import verify_telegram
from shopcore.images import ImageRejected

DEFAULT_API = "https://api.telegram.org"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class TelegramInput(ShopInput):
    REQUIRED = ("access_token", "secret_token")
    PREFIX = "telegram:"

    @classmethod
    def name(cls) -> str:
        return "telegram"

    def __init__(self, credentials: dict[str, str], **kwargs: Any) -> None:
        super().__init__(credentials, **kwargs)
        self.token = credentials.get("access_token", "")
        self.api = (credentials.get("api_base_url") or DEFAULT_API).rstrip("/")
        self.media_hosts = parse_hosts(credentials.get("media_hosts", "")) or (host_of(self.api),)

    def method_url(self, method: str) -> str:
        return f"{self.api}/bot{self.token}/{method}"

    def parse(self, request: Request) -> Parsed:
        header = request.headers.get(SECRET_HEADER)
        if not header:
            raise Refused(401, "missing secret token")
        if not verify_telegram(header, self.credentials["secret_token"]):
            raise Refused(403, "wrong secret token")
        try:
            update = json.loads(request.body)
        except ValueError as error:
            raise Refused(400, "body is not JSON") from error
        if not isinstance(update, dict):
            raise Refused(400, "body is not a Telegram update")
        incoming = self.read_update(update)
        return Parsed(messages=[incoming] if incoming else [])

    def read_update(self, update: dict[str, Any]) -> Incoming | None:
        update_id = f"update:{update.get('update_id')}"
        query = update.get("callback_query")
        if isinstance(query, dict):
            chat = ((query.get("message") or {}).get("chat") or {}).get("id")
            user = (query.get("from") or {}).get("id")
            if chat is None or user is None:
                return None
            self.spawn(self.api_post(self.method_url("answerCallbackQuery"),
                                     "answerCallbackQuery",
                                     json={"callback_query_id": query.get("id")}))
            return Incoming(sender=f"{self.PREFIX}{user}", address=chat,
                            text=str(query.get("data") or ""), from_button=True,
                            message_id=update_id)
        message = update.get("message")  # edits are ignored: the bot answered the original
        if not isinstance(message, dict):
            return None
        chat = (message.get("chat") or {}).get("id")
        user = (message.get("from") or {}).get("id", chat)
        if chat is None or user is None:
            return None
        incoming = Incoming(sender=f"{self.PREFIX}{user}", address=chat, message_id=update_id)
        photo_id = self.photo_file_id(message)
        if photo_id:
            incoming.text = str(message.get("caption") or "")
            incoming.photo = lambda: self.fetch_file(photo_id)
        elif isinstance(message.get("text"), str):
            incoming.text = message["text"]
        else:
            return None  # stickers, voice, locations...: nothing the bot can use
        return incoming

    def photo_file_id(self, message: dict[str, Any]) -> str:
        """The largest photo size within the byte limit (Telegram sends several)."""
        sizes = [s for s in message.get("photo") or [] if isinstance(s, dict) and s.get("file_id")]
        if sizes:
            limit = self.settings.max_upload_bytes
            fitting = [s for s in sizes if (s.get("file_size") or 0) <= limit]
            chosen = max(fitting or sizes, key=lambda s: (s.get("width") or 0) *
                         (s.get("height") or 0))
            return str(chosen["file_id"])
        document = message.get("document")
        if isinstance(document, dict) and str(document.get("mime_type", "")).startswith("image/"):
            return str(document.get("file_id") or "")
        return ""

    async def fetch_file(self, file_id: str) -> bytes:
        info = await self.api_post(self.method_url("getFile"), "getFile",
                                   json={"file_id": file_id})
        result = (info or {}).get("result") or {}
        path = result.get("file_path")
        if not path:
            raise ImageRejected("download_failed", "I couldn't fetch that photo - "
                                "please send it again.")
        if (result.get("file_size") or 0) > self.settings.max_upload_bytes:
            raise too_large(self.settings.max_upload_bytes)
        url = f"{self.api}/file/bot{self.token}/{path}"
        return await download(self.session(), url, self.media_hosts, self.settings.max_upload_bytes)

    def address_from_sender(self, sender: str) -> Any:
        """The private chat of ``telegram:<user id>`` (a user's private chat has their id),
        as the number Telegram's chat ids are."""
        user = super().address_from_sender(sender)
        return int(user) if isinstance(user, str) and user.lstrip("-").isdigit() else user

    async def deliver(self, address: Any, reply: Reply, message: dict[str, Any]) -> None:
        for method, params in telegram_calls(reply, address):
            sent = await self.api_post(self.method_url(method), method, json=params)
            if sent is None and method == "sendPhoto" and params.get("caption"):
                # Telegram could not fetch the photo URL: the card still shows, as text.
                text = {k: v for k, v in params.items() if k not in ("photo", "caption")}
                await self.api_post(self.method_url("sendMessage"), "sendMessage",
                                    json={**text, "text": params["caption"]})
