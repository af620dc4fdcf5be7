"""The demo shop page: product grid, product photos and a chat proxy to Rasa's REST channel.

The proxy keeps Rasa on loopback (no CORS to open) and is where shopper input is checked
before it reaches the bot: malformed JSON, odd sender ids and huge messages get a clear
JSON error and a log line.
"""

from __future__ import annotations

import argparse
import logging
import re
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from retrieval.cards import product_card
from retrieval.catalog import Product
from retrieval.store import ProductStore, product_from_metadata
from shopbot.settings import PROJECT_ROOT, Settings, get_settings

logger = logging.getLogger("shopbot.web")

WEB_DIR = PROJECT_ROOT / "bot" / "web"
IMAGE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\.(jpg|jpeg|png|webp)$")
MAX_BODY_BYTES = 64 * 1024
SHOWCASE_POOL = 500

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
STORE: web.AppKey[ProductStore] = web.AppKey("store", ProductStore)
HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http", aiohttp.ClientSession)


class ChatRequest(BaseModel):
    sender: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    message: str = Field(min_length=1)


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(WEB_DIR / "index.html")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def products(request: web.Request) -> web.Response:
    try:
        limit = max(1, min(int(request.query.get("limit", "24")), 100))
    except ValueError:
        return error(400, "limit must be a number")
    store = request.app[STORE]
    result = store.collection.get(limit=SHOWCASE_POOL, include=["metadatas"])
    pool = [product_from_metadata(m) for m in result["metadatas"] or [] if m and "record" in m]
    return web.json_response({"products": [product_card(p) for p in showcase(pool, limit)],
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


async def chat(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    try:
        payload = await request.json()
        chat_request = ChatRequest.model_validate(payload)
    except (ValueError, ValidationError) as exc:
        logger.info("rejected chat payload from %s: %s", request.remote, str(exc)[:200])
        return error(400, "Please send JSON like {\"sender\": \"...\", \"message\": \"...\"}.")
    text = chat_request.message.strip()
    if not text:
        return error(400, "Your message is empty.")
    if len(text) > settings.max_message_chars:
        logger.info("rejected %d-char message from %s", len(text), chat_request.sender)
        return error(
            413, f"That message is too long; please keep it under "
                 f"{settings.max_message_chars} characters."
        )
    url = f"http://{settings.host}:{settings.rasa_port}/webhooks/rest/webhook"
    try:
        async with request.app[HTTP].post(
            url, json={"sender": chat_request.sender, "message": text}
        ) as response:
            if response.status != 200:
                logger.error("rasa answered HTTP %s for %s", response.status, chat_request.sender)
                return error(502, "The assistant had a problem answering. Please try again.")
            messages = await response.json()
    except (aiohttp.ClientError, TimeoutError) as exc:
        logger.error("rasa unreachable at %s: %r", url, exc)
        return error(503, "The assistant is not reachable right now. Please try again shortly.")
    if not messages:
        logger.warning("rasa returned no messages for %r", text[:100])
        messages = [{"recipient_id": chat_request.sender,
                     "text": "Sorry, something went wrong on my side. Please try again."}]
    return web.json_response(messages)


@web.middleware
async def too_large(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        logger.info("rejected oversized request from %s", request.remote)
        return error(413, "That request is too large.")


async def _client(app: web.Application) -> Any:
    app[HTTP] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    yield
    await app[HTTP].close()


def create_app(
    settings: Settings | None = None, store: ProductStore | None = None
) -> web.Application:
    settings = settings or get_settings()
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[too_large])
    app[SETTINGS] = settings
    app[STORE] = store or ProductStore.from_settings(settings)
    app.cleanup_ctx.append(_client)
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/products", products)
    app.router.add_post("/api/chat", chat)
    app.router.add_get("/images/{name}", image)
    app.router.add_static("/static/", WEB_DIR)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the shopbot demo page.")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = get_settings()
    web.run_app(create_app(settings), host=settings.host, port=args.port or settings.web_port,
                print=None)


if __name__ == "__main__":
    main()

