"""What every shopbot input channel does the same way (this module imports Rasa).

A platform channel subclasses :class:`ShopInput` and supplies three things: ``parse`` (check
the request's signature, then turn it into :class:`Incoming` messages), ``deliver`` (send one
rendered reply through the platform API) and the names of its required credentials. The
base class does the rest:

- off until its required credentials are set (its webhook answers 404, Rasa still starts);
- refuses oversized bodies (413) and unsigned or forged requests (401/403) before parsing;
- answers the platform at once and handles messages in the background (Slack resends
  after 3 s), dropping re-deliveries;
- answers ``link`` / ``unlink`` itself and maps the sender to its linked id;
- fetches and stores photos (allow-listed hosts, size and pixel limits) and sends the bot
  ``/photo_upload`` with the upload ref, or tells the shopper why the photo was refused;
- replies through a :class:`ShopOutput` bound to the chat the message came from, which is
  not always the sender id Rasa knows the conversation by (after linking it is not).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.config import expand_credentials, missing
from bot.channels.inbound import Deduplicator, Incoming, too_long, typed_text
from bot.channels.render import Links, Reply
from shopcore.conversations import Purges
from shopcore.db import open_database
from shopcore.images import ImageRejected
from shopcore.links import LinkStore
from shopcore.settings import Settings, get_settings
from shopcore.uploads import PHOTO_MESSAGE, UploadStore, photo_metadata

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # webhook bodies are a few KB; photos come by URL, not inline
DECODES_AT_ONCE = 2  # photo decoding is CPU work: never more than this at a time
API_TIMEOUT_S = 30


class Refused(Exception):
    """A request that must not reach the bot; ``status`` is what the caller gets."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Parsed:
    """A verified request: what to answer the platform, and the messages in it."""

    def __init__(self, answer: HTTPResponse | None = None,
                 messages: list[Incoming] | None = None) -> None:
        self.answer = answer if answer is not None else response.json({"status": "ok"})
        self.messages = messages or []


class ShopOutput(OutputChannel):
    """Sends the bot's messages to one chat through its platform's API."""

    def __init__(self, channel: ShopInput, address: Any = None) -> None:
        self.channel = channel
        self.address = address

    def name(self) -> str:  # type: ignore[override] - Rasa calls it on instances too
        return self.channel.name()

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        address = self.address
        if address is None:  # proactive message (reminder, API): only our own sender ids
            address = self.channel.address_from_sender(recipient_id)
            if address is None:
                logger.warning("%s can't reach sender %r (not one of its chats)",
                               self.channel.name(), str(recipient_id)[:40])
                return
        reply = Reply.from_message(message, self.channel.links)
        if reply.unknown:
            logger.debug("%s drops a custom payload it can't show: %s", self.channel.name(),
                         sorted(reply.unknown)[:5])
        try:
            await self.channel.deliver(address, reply, message)
        except Exception:
            logger.exception("%s could not deliver a reply", self.channel.name())

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"text": text})


class ShopInput(InputChannel):
    """Base of the platform channels; see the module docstring for what it takes care of."""

    REQUIRED: tuple[str, ...] = ()
    PREFIX = ""  # sender id namespace, e.g. "telegram:"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        return cls(expand_credentials(credentials))

    def __init__(self, credentials: dict[str, str], settings: Settings | None = None) -> None:
        self.credentials = credentials
        self.settings = settings or get_settings()
        self.links = Links(self.settings.public_url or "", self.settings.product_link)
        self.photos = UploadStore.from_settings(self.settings)
        self.missing = self.problems(credentials)
        self.link_store = None if self.missing else \
            LinkStore(open_database(self.settings.shop_database_url))
        self.purges = None if self.missing else Purges.from_settings(self.settings)
        self.dedup = Deduplicator()
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._decoding: asyncio.Semaphore | None = None
        if self.missing:
            logger.info("%s channel is off: set %s in credentials.yml (or the variables it "
                        "names)", self.name(), ", ".join(self.missing))
        else:
            logger.info("%s channel is on", self.name())
        if not self.settings.public_url:
            logger.info("%s: SHOPBOT_PUBLIC_URL is unset, so product photos and links are "
                        "left out of replies", self.name())

    @property
    def enabled(self) -> bool:
        return not self.missing

    def problems(self, credentials: dict[str, str]) -> list[str]:
        """What keeps the channel off: its required credentials that are empty."""
        return missing(credentials, self.REQUIRED)

    # -- what a platform supplies ---------------------------------------------------------

    def parse(self, request: Request) -> Parsed:
        """Verify ``request`` (raise Refused) and return its messages."""
        raise NotImplementedError

    async def deliver(self, address: Any, reply: Reply, message: dict[str, Any]) -> None:
        """Send one bot message to ``address``."""
        raise NotImplementedError

    def address_from_sender(self, sender: str) -> Any:
        """Where to send a message for a sender id of ours (proactive messages); None if not."""
        if self.PREFIX and isinstance(sender, str) and sender.startswith(self.PREFIX):
            return sender[len(self.PREFIX):]
        return None

    def get_output_channel(self) -> OutputChannel:
        return ShopOutput(self)

    # -- shared machinery -----------------------------------------------------------------

    def session(self) -> aiohttp.ClientSession:
        """One client session per event loop, for API calls and photo downloads."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=API_TIMEOUT_S))
            self._session_loop = loop
        return self._session

    async def api_post(self, url: str, what: str, **kwargs: Any) -> dict[str, Any] | None:
        """POST to the platform API; the JSON answer, or None (logged) when it failed."""
        try:
            async with self.session().post(url, **kwargs) as answer:
                body = await answer.read()
                try:
                    data = await answer.json(content_type=None) if body else {}
                except ValueError:
                    data = {}
                if answer.status >= 400:
                    logger.error("%s %s failed: HTTP %d %s", self.name(), what, answer.status,
                                 body[:300].decode(errors="replace"))
                    return None
                return data if isinstance(data, dict) else {}
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:  # noqa: UP041 - 3.10
            logger.error("%s %s failed: %r", self.name(), what, error)
            return None

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> Blueprint:
        hook = Blueprint(f"shopbot_{self.name()}_webhook", inspect.getmodule(self).__name__)

        @hook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok" if self.enabled else "off"})

        @hook.route("/webhook", methods=["GET", "POST"])
        async def webhook(request: Request) -> HTTPResponse:
            return await self.receive(request, on_new_message)

        @hook.listener("after_server_stop")
        async def close(*_: Any) -> None:
            if self._session is not None and not self._session.closed:
                await self._session.close()

        return hook

    async def receive(
        self, request: Request, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> HTTPResponse:
        if not self.enabled:
            return response.json({"error": f"the {self.name()} channel is not configured"},
                                 status=404)
        if len(request.body or b"") > MAX_BODY_BYTES:
            logger.info("%s refused a %d-byte request", self.name(), len(request.body))
            return response.json({"error": "request too large"}, status=413)
        try:
            parsed = self.parse(request)
        except Refused as refused:
            logger.warning("%s refused a request from %s: %s", self.name(),
                           request.remote_addr or request.ip, refused.reason)
            return response.json({"error": refused.reason}, status=refused.status)
        for incoming in parsed.messages:
            if self.dedup.seen(incoming.message_id):
                logger.info("%s dropped a re-delivered message %s", self.name(),
                            incoming.message_id[:60])
                continue
            self.spawn(self.handle(incoming, on_new_message))
        return parsed.answer

    def spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def handle(
        self, incoming: Incoming, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> None:
        """One message, in the background: link commands, photos, then the bot."""
        output = ShopOutput(self, incoming.address)
        try:
            if not incoming.photo and self.link_store is not None:
                answer = await asyncio.to_thread(self.link_store.handle, incoming.sender,
                                                 incoming.text)
                if answer is not None:
                    await output.send_response(incoming.sender, {"text": answer})
                    return
            sender = incoming.sender if self.link_store is None else \
                await asyncio.to_thread(self.link_store.canonical, incoming.sender)
            metadata = {**incoming.metadata, "channel_sender": incoming.sender}
            if incoming.photo is not None:
                ref = await self.store_photo(incoming, output)
                if ref is None:
                    return
                text = PHOTO_MESSAGE
                metadata.update(photo_metadata(ref, incoming.text))
            else:
                text = incoming.text.strip() if incoming.from_button else \
                    typed_text(incoming.text)
                if len(text) > self.settings.max_message_chars:
                    await output.send_response(
                        incoming.sender, {"text": too_long(self.settings.max_message_chars)})
                    return
                if not text:
                    return
            await on_new_message(UserMessage(text, output, sender, input_channel=self.name(),
                                             metadata=metadata))
            if self.purges is not None:  # Rasa has saved the turn by now
                await asyncio.to_thread(self.purges.run)
        except Exception:
            logger.exception("%s failed to handle a message from %r", self.name(),
                             incoming.sender[:40])

    async def store_photo(self, incoming: Incoming, output: ShopOutput) -> str | None:
        """Fetch and store the photo; its ref, or None after telling the shopper why not."""
        assert incoming.photo is not None
        if self._decoding is None:
            self._decoding = asyncio.Semaphore(DECODES_AT_ONCE)
        try:
            data = await incoming.photo()
            async with self._decoding:
                ref = await asyncio.to_thread(self.photos.save, data)
        except ImageRejected as rejected:
            logger.info("%s photo from %r refused: %s", self.name(), incoming.sender[:40],
                        rejected.reason)
            await output.send_response(incoming.sender, {"text": rejected.message})
            return None
        logger.info("%s stored photo %s from %r", self.name(), ref, incoming.sender[:40])
        return ref
