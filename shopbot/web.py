"""The public web server: product grid and photos, the chat widget's API, and the messaging
platforms' webhooks. Everything else (Rasa, the action server) stays internal.

The widget talks only to this server: ``/api/chat`` passes the message on to Rasa's REST
channel with the internal secret, ``/api/upload`` takes shopper photos, ``/api/session``
tells who the shopper is, ``/api/config`` tells the widget the limits. The server decides
who the shopper is (:mod:`shopbot.identity`): a signed session cookie, or the shop
backend's customer token; a ``sender`` in a request body is ignored. Every shopper input is
checked here first (malformed JSON, huge messages, files that are not pictures, too many
requests) and refused with a clear JSON error and a log line. Shops that embed the widget on
their own site list that site's origin in ``cors_origins``; other origins get no CORS
headers, and their requests are refused. ``/webhooks/<platform>/webhook`` is passed through
to Rasa's channel for that platform (which checks the platform's signature), size-capped.
``/console`` is the staff console (:mod:`shopbot.console`), a sub-application with its own
sign-in, cookie and guard: nothing of the shoppers' identity counts there.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiohttp import BodyPartReader, web
from pydantic import BaseModel, Field, ValidationError

from retrieval.cards import product_card
from retrieval.catalog import Product
from retrieval.store import ProductStore, product_from_metadata
from shop.staff import display_name
from shop.tickets import TicketStore
from shopbot.identity import (
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    Shopper,
    TokenRejected,
    anonymous,
    client_address,
    demo,
    mint_cookie,
    new_session_id,
    read_cookie,
    verify_customer_token,
)
from shopcore.db import open_database
from shopcore.images import ImageRejected
from shopcore.keys import INTERNAL_HEADER, SENDER_HEADER, internal_secret, session_key
from shopcore.links import LinkStore
from shopcore.logs import setup_logging
from shopcore.outbox import WidgetOutbox
from shopcore.settings import PROJECT_ROOT, Settings, get_settings
from shopcore.uploads import (
    ACCEPTED_TYPES,
    PHOTO_MESSAGE,
    REF_PATTERN,
    UploadStore,
    photo_metadata,
    too_large_message,
)

logger = logging.getLogger("shopbot.web")

WEB_DIR = PROJECT_ROOT / "bot" / "web"
IMAGE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\.(jpg|jpeg|png|webp)$")
MAX_BODY_BYTES = 64 * 1024
SHOWCASE_POOL = 500

MULTIPART_SLACK = 16 * 1024  # boundaries and part headers on top of the file itself
SMALL_FIELD_BYTES = 4 * 1024  # any form field besides `file` (ignored, but bounded)
MAX_FORM_PARTS = 8
READ_CHUNK = 64 * 1024
# What the shopper reads while the assistant cannot answer (a replica restarting, a
# database briefly away): temporary, and sending again is the way on.
ONE_MOMENT = "One moment, please - the assistant is busy. Please send that again in a few seconds."
MESSAGING_CHANNELS = ("telegram", "messenger", "slack", "twilio", "signed")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "transfer-encoding", "upgrade", "content-length",
              INTERNAL_HEADER.lower()}
DECODES_AT_ONCE = 2  # photo decoding is CPU work: never more than this at a time
PRUNE_EVERY_S = 3600
CORS_PATHS = ("/api/", "/static/")
# ImageRejected reasons (shopcore.images) -> HTTP status; anything else is a plain 400.
REJECT_STATUS = {"too_large": 413, "too_many_pixels": 413, "not_an_image": 415,
                 "unsupported_format": 415, "animated": 415}

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
STORE: web.AppKey[ProductStore] = web.AppKey("store", ProductStore)
HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http", aiohttp.ClientSession)
SESSION_KEY: web.AppKey[bytes] = web.AppKey("session_key", bytes)
INTERNAL: web.AppKey[str] = web.AppKey("internal_secret", str)


class ChatRequest(BaseModel):
    """What the widget sends; any ``sender`` field is ignored (the server knows who)."""

    message: str
    upload: str | None = Field(default=None, pattern=REF_PATTERN.pattern)


class RateLimiter:
    """At most ``limit`` events per ``window`` seconds per key, in this process's memory."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[str, deque[float]] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if len(self._events) > 10_000:  # forget idle clients so memory stays bounded
            self._events = {k: v for k, v in self._events.items()
                            if v and now - v[-1] < self.window}
        events = self._events.setdefault(key, deque())
        while events and now - events[0] >= self.window:
            events.popleft()
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True


class Limits:
    """The rate limits of one app: chats and uploads per session, and everything per client
    address (through a trusted proxy, the address it reports)."""

    def __init__(self, settings: Settings) -> None:
        self.chats = RateLimiter(settings.chats_per_minute)
        self.uploads = RateLimiter(settings.uploads_per_minute)
        self.addresses = RateLimiter(settings.requests_per_address_minute)
        self.sessions = RateLimiter(30)  # new sessions per client address per minute

    def allow(self, limiter: RateLimiter, session: str, address: str) -> bool:
        return limiter.allow(session) and self.addresses.allow(address)


LIMITS: web.AppKey[Limits] = web.AppKey("limits", Limits)


class Uploads:
    """Upload handling state of one app: the store, the decode slots."""

    def __init__(self, store: UploadStore) -> None:
        self.store = store
        self.decoding = asyncio.Semaphore(DECODES_AT_ONCE)
        self.pruned_at = 0.0

    def prune_now_and_then(self) -> None:
        if time.monotonic() - self.pruned_at >= PRUNE_EVERY_S:
            self.pruned_at = time.monotonic()
            self.store.prune()


UPLOADS: web.AppKey[Uploads] = web.AppKey("uploads", Uploads)


class Handoffs:
    """What the widget's poll reads about a human handoff: the messages a person sent the
    conversation (the outbox Rasa's REST channel writes) and who holds it. The shop database
    is opened on the first poll, not at start."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stores: tuple[LinkStore, WidgetOutbox, TicketStore] | None = None
        self._lock = threading.Lock()

    def stores(self) -> tuple[LinkStore, WidgetOutbox, TicketStore]:
        with self._lock:
            if self._stores is None:
                database = open_database(self.settings.shop_database_url)
                self._stores = LinkStore(database), WidgetOutbox(database), TicketStore(database)
            return self._stores

    def updates(self, sender: str, after: int | None) -> dict[str, Any]:
        """New messages from a person (none when ``after`` is None: a page just opened
        starts from the newest), the newest id, the name of who holds the chat, and whether
        a ticket waits for a person (the widget keeps polling only while one waits or
        holds the chat)."""
        links, outbox, tickets = self.stores()
        conversation = links.canonical(sender)  # a linked chat's messages go to its id
        open_ticket, holder = tickets.handoff_state(conversation)
        state = {"with_person": display_name(holder) if holder else None,
                 "waiting": open_ticket and holder is None}
        if after is None:
            return {"messages": [], "last": outbox.last_id(conversation), **state}
        messages = outbox.since(conversation, after)
        return {"messages": [{k: v for k, v in m.items() if k != "id"} for m in messages],
                "last": messages[-1]["id"] if messages else after, **state}

    def holder(self, sender: str) -> str | None:
        links, _, tickets = self.stores()
        return tickets.holder(links.canonical(sender))


HANDOFFS: web.AppKey[Handoffs] = web.AppKey("handoffs", Handoffs)


class UploadRefused(Exception):
    """An upload request refused before its picture is decoded."""

    def __init__(self, status: int, message: str, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.message = message
        self.why = why


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


# -- who is asking -------------------------------------------------------------------------

def remote_address(request: web.Request) -> str:
    """The client's address (through a configured trusted proxy, the one it reports)."""
    settings = request.app[SETTINGS]
    return client_address(request.remote, request.headers.get("X-Forwarded-For"),
                          settings.trusted_proxies)


def _https(request: web.Request) -> bool:
    settings = request.app[SETTINGS]
    if settings.secure_cookies or request.secure:
        return True
    return (request.remote in settings.trusted_proxies
            and request.headers.get("X-Forwarded-Proto", "").lower() == "https")


def identify(request: web.Request) -> tuple[Shopper, bool]:
    """The shopper and whether their session cookie must be (re)set; raises TokenRejected
    for a bad customer token (refused, never downgraded to anonymous)."""
    settings = request.app[SETTINGS]
    authorization = request.headers.get("Authorization", "")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenRejected("send the customer token as 'Authorization: Bearer <token>'")
        return verify_customer_token(token.strip(), settings.customer_token_secret,
                                     max_lifetime_s=settings.customer_token_max_s), False
    shopper = read_cookie(request.app[SESSION_KEY], request.cookies.get(SESSION_COOKIE),
                          demo_mode=settings.demo)
    if shopper is not None:
        return shopper, False
    if request.cookies.get(SESSION_COOKIE):
        logger.info("refused session cookie from %s (bad signature, expired or demo off); "
                    "new anonymous session", remote_address(request))
    return anonymous(new_session_id()), True


def set_session_cookie(request: web.Request, response: web.StreamResponse,
                       shopper: Shopper) -> None:
    """The signed session cookie: HttpOnly, SameSite (None only for allowed embedding sites
    over https, which browsers require), Secure over https."""
    secure = _https(request)
    cross_site = bool(request.app[SETTINGS].cors_origins) and secure
    response.set_cookie(SESSION_COOKIE, mint_cookie(request.app[SESSION_KEY], shopper),
                        max_age=SESSION_MAX_AGE_S, path="/", httponly=True, secure=secure,
                        samesite="None" if cross_site else "Lax")


def token_refused(request: web.Request, rejected: TokenRejected) -> web.Response:
    logger.warning("refused customer token from %s: %s", remote_address(request), rejected)
    return error(401, "Your login has expired or is not valid - please sign in again.")


def shopper_view(shopper: Shopper) -> dict[str, Any]:
    """What the page may know about its own session (the session id stays in the cookie)."""
    return {"kind": shopper.kind,
            "customer": shopper.sender.partition(":")[2] if shopper.authenticated else None}


async def session(request: web.Request) -> web.Response:
    """GET: who the server thinks this browser is (and a session cookie if it has none)."""
    try:
        shopper, fresh = identify(request)
    except TokenRejected as rejected:
        return token_refused(request, rejected)
    response = web.json_response(shopper_view(shopper))
    if fresh:
        set_session_cookie(request, response, shopper)
    return response


async def new_session(request: web.Request) -> web.Response:
    """POST: start over as a new anonymous visitor (the widget's "new conversation")."""
    if not request.app[LIMITS].sessions.allow(remote_address(request)):
        return error(429, "Too many new conversations - please wait a minute.")
    shopper = anonymous(new_session_id())
    response = web.json_response(shopper_view(shopper))
    set_session_cookie(request, response, shopper)
    return response


async def demo_session(request: web.Request) -> web.Response:
    """POST, demo mode only: chat as the demo shopper, who has seeded orders."""
    if not request.app[SETTINGS].demo:
        raise web.HTTPNotFound()
    shopper = demo(new_session_id())
    response = web.json_response(shopper_view(shopper))
    set_session_cookie(request, response, shopper)
    return response


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(WEB_DIR / "index.html")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def widget_config(request: web.Request) -> web.Response:
    """What the widget checks on its side before sending anything."""
    settings = request.app[SETTINGS]
    return web.json_response({
        "max_upload_bytes": settings.max_upload_bytes,
        "accepted_types": list(ACCEPTED_TYPES),
        "max_message_chars": settings.max_message_chars,
        "demo": settings.demo,
    })


async def products(request: web.Request) -> web.Response:
    try:
        limit = max(1, min(int(request.query.get("limit", "24")), 100))
    except ValueError:
        return error(400, "limit must be a number")
    store = request.app[STORE]
    result = store.collection.get(limit=SHOWCASE_POOL, include=["metadatas"])
    pool = [product_from_metadata(m) for m in result["metadatas"] or [] if m and "record" in m]
    return web.json_response({"products": [product_card(p).to_dict()
                                           for p in showcase(pool, limit)],
                              "total": store.count()})


def showcase(products: list[Product], limit: int) -> list[Product]:
    """A grid that shows the range: one product per article type in turn, photos first."""
    by_type: dict[str, list[Product]] = {}
    for product in sorted(products, key=lambda p: not p.image):
        by_type.setdefault(product.article_type, []).append(product)
    picked: list[Product] = []
    while len(picked) < limit and any(by_type.values()):
        for group in by_type.values():
            if group and len(picked) < limit:
                picked.append(group.pop(0))
    return picked


async def image(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    images_dir = request.app[STORE].images_dir
    if not IMAGE_NAME.match(name) or images_dir is None:
        raise web.HTTPNotFound()
    path = (images_dir / name).resolve()
    if path.parent != images_dir.resolve() or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})


def _bad_filename(name: str) -> bool:
    """Browsers send a bare file name; a path in it means a hand-made request."""
    return any(any(c in form for c in "/\\\x00") or form.strip() in {".", ".."}
               for form in (name, unquote(name))) or len(name) > 255


async def _read_bounded(part: BodyPartReader, cap: int, status: int, message: str) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(READ_CHUNK):
        data += chunk
        if len(data) > cap:
            raise UploadRefused(status, message, f"part {part.name!r} over {cap} bytes")
    return bytes(data)


async def _read_photo_field(request: web.Request, limit: int) -> bytes:
    """The bytes of the form field ``file``, read in chunks and refused past ``limit``."""
    try:
        reader = await request.multipart()
        for _ in range(MAX_FORM_PARTS):
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise UploadRefused(400, "Please send one photo in the form field 'file'.",
                                    "nested multipart")
            if part.name != "file":
                await _read_bounded(part, SMALL_FIELD_BYTES, 413, "That request is too large.")
                continue
            filename = part.filename or ""
            if _bad_filename(filename):
                raise UploadRefused(400, "That file name isn't allowed - please pick the photo "
                                    "again.", f"file name {filename[:80]!r}")
            declared = (part.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if declared and not declared.startswith("image/") \
                    and declared != "application/octet-stream":
                raise UploadRefused(415, "That file isn't a picture - please send a JPEG, PNG, "
                                    "WebP or GIF photo.", f"declared type {declared[:60]!r}")
            return await _read_bounded(part, limit, 413, too_large_message(limit))
    except ValueError as exc:  # aiohttp's word for a malformed multipart body
        raise UploadRefused(400, "Please send the photo as a form upload in the field 'file'.",
                            f"malformed multipart: {exc}") from exc
    raise UploadRefused(400, "No photo found - please send it in the form field 'file'.",
                        "no 'file' field")


async def upload(request: web.Request) -> web.Response:
    """Store a shopper photo and answer its ref: ``{"ref": "<32 hex>.jpg"}`` (201)."""
    settings = request.app[SETTINGS]
    uploads = request.app[UPLOADS]
    remote = remote_address(request)
    limit = settings.max_upload_bytes
    try:
        shopper, _ = identify(request)
    except TokenRejected as rejected:
        return token_refused(request, rejected)
    try:
        if not request.app[LIMITS].allow(request.app[LIMITS].uploads, shopper.sender, remote):
            raise UploadRefused(429, "That's a lot of photos at once - please wait a minute "
                                "and try again.", "rate limit")
        if request.content_type != "multipart/form-data":
            raise UploadRefused(415, "Please send the photo as multipart/form-data in the "
                                "field 'file'.", f"content type {request.content_type!r}")
        if request.content_length is not None and \
                request.content_length > limit + MULTIPART_SLACK:
            raise UploadRefused(413, too_large_message(limit),
                                f"Content-Length {request.content_length}")
        data = await _read_photo_field(request, limit)
    except UploadRefused as refused:
        logger.info("refused upload from %s: %s", remote, refused.why)
        return error(refused.status, refused.message)
    try:
        async with uploads.decoding:
            ref = await asyncio.to_thread(uploads.store.save, data)
    except ImageRejected as rejected:
        logger.info("refused upload from %s: %s (%d bytes)", remote, rejected.reason, len(data))
        return error(REJECT_STATUS.get(rejected.reason, 400), rejected.message)
    logger.info("stored upload %s (%d bytes) from %s", ref, len(data), remote)
    uploads.prune_now_and_then()
    return web.json_response({"ref": ref}, status=201)


async def chat(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    remote = remote_address(request)
    try:
        shopper, fresh = identify(request)
    except TokenRejected as rejected:
        return token_refused(request, rejected)
    if not request.app[LIMITS].allow(request.app[LIMITS].chats, shopper.sender, remote):
        logger.info("chat rate limit for %s from %s", shopper.kind, remote)
        return error(429, "That's a lot of messages at once - please wait a moment.")
    if request.content_type != "application/json":
        return error(415, "Please send the message as JSON (Content-Type: application/json).")
    try:
        payload = await request.json()
        chat_request = ChatRequest.model_validate(payload)
    except (ValueError, ValidationError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: JSON nested thousands deep ("[[[[...") is not a chat message.
        logger.info("rejected chat payload from %s: %s", remote,
                    " ".join(str(exc).split())[:200])
        return error(400, "Please send JSON like {\"message\": \"...\"}.")
    text = chat_request.message.strip()
    if not text and not chat_request.upload:
        return error(400, "Your message is empty.")
    if len(text) > settings.max_message_chars:
        logger.info("rejected %d-char message from %s", len(text), remote)
        return error(
            413, f"That message is too long; please keep it under "
                 f"{settings.max_message_chars} characters."
        )
    if unreadable(text):
        logger.info("rejected message with control or surrogate characters from %s", remote)
        return error(400, "Your message has characters I can't read.")
    rasa_payload: dict[str, Any] = {"sender": shopper.sender, "message": text,
                                    "authenticated": shopper.authenticated}
    if chat_request.upload:
        if request.app[UPLOADS].store.path(chat_request.upload) is None:
            logger.info("unknown upload ref %s from %s", chat_request.upload, remote)
            return error(400, "That photo is no longer available - please send it again.")
        rasa_payload.update(message=PHOTO_MESSAGE,
                            metadata=photo_metadata(chat_request.upload, text))
        logger.info("photo %s from a %s shopper goes to the bot", chat_request.upload,
                    shopper.kind)
    url = f"http://{settings.host}:{settings.rasa_port}/webhooks/rest/webhook"
    # The sender header lets a balancer keep one conversation on one Rasa replica.
    headers = {INTERNAL_HEADER: request.app[INTERNAL], SENDER_HEADER: shopper.sender}
    try:
        async with request.app[HTTP].post(url, json=rasa_payload, headers=headers) as answer:
            if answer.status != 200:
                logger.error("rasa answered HTTP %s for a %s shopper", answer.status,
                             shopper.kind)
                return error(502, ONE_MOMENT)
            messages = await answer.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        logger.error("rasa unreachable at %s: %r", url, exc)
        return error(503, ONE_MOMENT)
    if not messages:
        if await asyncio.to_thread(request.app[HANDOFFS].holder, shopper.sender):
            # A person has the conversation: the bot is quiet, they answer by the outbox.
            messages = []
        else:
            logger.warning("rasa returned no messages for %r", rasa_payload["message"][:100])
            messages = [{"text": ONE_MOMENT}]
    for message in messages:  # the shopper's own id is none of the page's business
        if isinstance(message, dict):
            message.pop("recipient_id", None)
    response = web.json_response(messages)
    if fresh:
        set_session_cookie(request, response, shopper)
    return response


async def chat_updates(request: web.Request) -> web.Response:
    """GET /api/chat/updates?after=<id>: what a person from the shop wrote this shopper since
    message ``after`` (the widget polls; without ``after``, only where to start), and who
    they are talking with. A browser without a session has no conversation yet."""
    raw = request.query.get("after")
    if raw is not None and not (raw.isascii() and raw.isdigit() and len(raw) < 19):
        return error(400, "after must be a message id")
    try:
        shopper, fresh = identify(request)
    except TokenRejected as rejected:
        return token_refused(request, rejected)
    if fresh:
        return web.json_response({"messages": [], "last": 0, "with_person": None,
                                  "waiting": False})
    updates = await asyncio.to_thread(request.app[HANDOFFS].updates, shopper.sender,
                                      None if raw is None else int(raw))
    return web.json_response(updates)


def unreadable(text: str) -> bool:
    """Control characters (other than line breaks and tabs) and lone surrogates: nothing a
    keyboard types, and the latter can't even be stored."""
    return any((ord(c) < 32 and c not in "\n\r\t") or 0xD800 <= ord(c) <= 0xDFFF
               or c == "\x7f" for c in text)


async def messaging_webhook(request: web.Request) -> web.StreamResponse:
    """A messaging platform's webhook, passed to Rasa's channel for it (which checks the
    platform's signature) with the body byte for byte and the Host the platform used (Twilio
    signs the URL); bodies over the cap are refused before Rasa sees them."""
    settings = request.app[SETTINGS]
    channel = request.match_info["channel"]
    if channel not in MESSAGING_CHANNELS:
        raise web.HTTPNotFound()
    cap = settings.max_webhook_bytes
    if request.content_length is not None and request.content_length > cap:
        logger.info("refused %d-byte %s webhook from %s", request.content_length, channel,
                    remote_address(request))
        return error(413, "That request is too large.")
    body = bytearray()
    while chunk := await request.content.read(READ_CHUNK):
        body += chunk
        if len(body) > cap:
            logger.info("refused oversized %s webhook from %s", channel,
                        remote_address(request))
            return error(413, "That request is too large.")
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    url = (f"http://{settings.host}:{settings.rasa_port}/webhooks/{channel}/webhook"
           f"{'?' + request.query_string if request.query_string else ''}")
    try:
        async with request.app[HTTP].request(request.method, url, data=bytes(body),
                                             headers=headers) as answer:
            data = await answer.read()
            return web.Response(body=data, status=answer.status,
                                content_type=answer.content_type or "text/plain")
    except (aiohttp.ClientError, TimeoutError) as exc:
        logger.error("rasa unreachable for the %s webhook: %r", channel, exc)
        return error(503, "Temporarily unavailable.")


def _cors_headers(origin: str, preflight: bool = False) -> dict[str, str]:
    headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
               "Access-Control-Allow-Credentials": "true"}
    if preflight:
        headers.update({"Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                        "Access-Control-Allow-Headers": "Content-Type, Accept, Authorization",
                        "Access-Control-Max-Age": "600"})
    return headers


def _same_origin(request: web.Request, origin: str) -> bool:
    return origin.partition("://")[2].rstrip("/") == request.host


@web.middleware
async def cors(request: web.Request, handler: Any) -> web.StreamResponse:
    """CORS for the widget's API and files, only for the origins in ``cors_origins``."""
    if not request.path.startswith(CORS_PATHS):
        return await handler(request)
    origin = request.headers.get("Origin")
    allowed_origins = {o.rstrip("/") for o in request.app[SETTINGS].cors_origins}
    allowed = origin is not None and origin in allowed_origins
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        if not allowed:
            logger.info("refused CORS preflight from origin %r for %s", origin, request.path)
            return error(403, "This site is not allowed to use the shopping assistant.")
        assert origin is not None
        return web.Response(status=204, headers=_cors_headers(origin, preflight=True))
    if request.method == "POST" and origin is not None and not allowed \
            and not _same_origin(request, origin):
        # A page elsewhere posting with the shopper's cookie (a form or a "simple" fetch).
        logger.info("refused %s from foreign origin %r", request.path, origin[:100])
        return error(403, "This site is not allowed to use the shopping assistant.")
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if allowed and origin:
            exc.headers.update(_cors_headers(origin))
        raise
    if allowed and origin:
        response.headers.update(_cors_headers(origin))
    return response


@web.middleware
async def too_large(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        logger.info("rejected oversized request from %s", request.remote)
        return error(413, "That request is too large.")


async def _client(app: web.Application) -> AsyncIterator[None]:
    app[HTTP] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    yield
    await app[HTTP].close()


async def _prune_uploads(app: web.Application) -> None:
    app[UPLOADS].prune_now_and_then()


def create_app(
    settings: Settings | None = None, store: ProductStore | None = None
) -> web.Application:
    settings = settings or get_settings()
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[cors, too_large])
    app[SETTINGS] = settings
    app[STORE] = store or ProductStore.from_settings(settings)
    app[UPLOADS] = Uploads(UploadStore.from_settings(settings))
    app[LIMITS] = Limits(settings)
    app[HANDOFFS] = Handoffs(settings)
    app[SESSION_KEY] = session_key(settings)
    app[INTERNAL] = internal_secret(settings)
    app.cleanup_ctx.append(_client)
    app.on_startup.append(_prune_uploads)
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/config", widget_config)
    app.router.add_get("/api/products", products)
    app.router.add_get("/api/session", session)
    app.router.add_post("/api/session/new", new_session)
    app.router.add_post("/api/session/demo", demo_session)
    app.router.add_post("/api/chat", chat)
    app.router.add_get("/api/chat/updates", chat_updates)
    for method in ("GET", "POST"):
        app.router.add_route(method, "/webhooks/{channel}/webhook", messaging_webhook)
    app.router.add_post("/api/upload", upload)
    app.router.add_get("/images/{name}", image)
    app.router.add_static("/static/", WEB_DIR)
    from shopbot.console import PREFIX, console_app  # staff only: its own guard (see there)

    app.add_subapp(PREFIX, console_app(settings, app[STORE]))
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the shopbot demo page.")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    setup_logging(True)
    settings = get_settings()
    web.run_app(create_app(settings), host=settings.web_host,
                port=args.port or settings.web_port,
                print=None)


if __name__ == "__main__":
    main()
