"""What the end-to-end tests share: starting a stack, talking to it, reading the replies."""

from __future__ import annotations

import http.cookiejar
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval.catalog import Product, load_catalog
from retrieval.store import ProductStore
from shopbot.stack import Stack, free_port, train_bot
from shopcore.settings import PROJECT_ROOT, Settings, get_settings

Messages = list[dict[str, Any]]
PHOTO_TYPES = ("Tshirts", "Watches", "Casual Shoes", "Handbags", "Jeans", "Sunglasses")
PER_TYPE = 40
HELD_OUT = 3


@dataclass
class PhotoShop:
    """A running stack on a shop with real photos (or the sample catalog without them)."""

    stack: Stack
    store: ProductStore
    held_out: list[Product]  # products with photos that the store does not have
    photo: Path | None  # a catalog photo of a product in the store (a t-shirt)
    query: str  # a search that finds several products in this store
    allowed_origin_port: int  # the one other origin the web server lets embed the widget

    @property
    def uploads_dir(self) -> Path:
        return Path(self.stack.settings.uploads_dir)  # type: ignore[arg-type]


def build_photo_shop(root: Path, catalog: Path, images: Path
                     ) -> tuple[Path, list[Product], Path]:
    """Cut a shop with photos from the real catalog, ingest it and train its photo head with
    the installed ``shopbot`` command; returns the store, the held-out products and a
    t-shirt photo of the store."""
    present = {p.stem for p in images.glob("*.jpg")}
    products, _ = load_catalog(catalog)
    chosen: dict[str, list[Product]] = {t: [] for t in PHOTO_TYPES}
    for product in sorted(products, key=lambda p: int(p.id)):
        group = chosen.get(product.article_type)
        if group is not None and product.id in present and len(group) < PER_TYPE + HELD_OUT:
            group.append(product)
    shop = [p for group in chosen.values() for p in group[:PER_TYPE]]
    held_out = [p for group in chosen.values() for p in group[PER_TYPE:]]
    folder = root / "images"
    folder.mkdir()
    for product in shop:  # copies: the web server serves no link out of its photo folder
        shutil.copyfile(images / f"{product.id}.jpg", folder / f"{product.id}.jpg")
    sliced = root / "catalog.jsonl"
    sliced.write_text("".join(p.model_dump_json() + "\n" for p in shop), encoding="utf-8")
    store = root / "store"
    for args in (("ingest", str(sliced), "--images", str(folder), "--store", str(store)),
                 ("images", "train", "--images", str(folder), "--catalog", str(sliced),
                  "--store", str(store), "--views", "2")):
        done = shopbot(*args)
        assert done.returncode == 0, done.stderr[-3000:]
    tshirt = next(p for p in shop if p.article_type == "Tshirts")
    return store, held_out, folder / f"{tshirt.id}.jpg"


@contextmanager
def running_stack(settings: Settings, *, with_web: bool = True,
                  env: dict[str, str] | None = None) -> Iterator[Stack]:
    """A started stack on free loopback ports (``env``: extra variables for its processes,
    e.g. channel credentials); stopped when the block ends."""
    settings = settings.replace(rasa_port=free_port(), action_port=free_port(),
                                web_port=free_port())
    model = train_bot(Path(get_settings().models_dir))  # type: ignore[arg-type]
    stack = Stack(settings, model, with_web=with_web)
    saved = {name: os.environ.get(name) for name in env or {}}
    os.environ.update(env or {})  # the child processes inherit them
    try:
        stack.start()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    try:
        yield stack
    finally:
        stack.stop()


def post_json(url: str, payload: Any, timeout: float = 120,
              headers: dict[str, str] | None = None,
              opener: urllib.request.OpenerDirector | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
    try:
        with (opener or urllib.request.build_opener()).open(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, _json_or_text(error.read())


def _json_or_text(body: bytes) -> Any:
    """An error body: JSON when it is (our servers' errors), else the text (a plain 404)."""
    try:
        return json.loads(body or b"null")
    except ValueError:
        return body.decode(errors="replace")


def internal_headers(stack: Stack) -> dict[str, str]:
    """What the web server shows Rasa's REST channel (tests stand in for the web server)."""
    return {"X-Shopbot-Internal": stack.settings.internal_secret or ""}


def say(stack: Stack, sender: str, text: str, metadata: dict[str, Any] | None = None
        ) -> Messages:
    """One turn over Rasa's (internal) REST webhook as ``sender``; the bot's messages."""
    payload: dict[str, Any] = {"sender": sender, "message": text}
    if metadata:
        payload["metadata"] = metadata
    status, messages = post_json(f"{stack.rasa_url}/webhooks/rest/webhook", payload,
                                 headers=internal_headers(stack))
    assert status == 200, messages
    return messages


class Browser:
    """One browser: a cookie jar, so the web server's session cookie comes back each time."""

    def __init__(self) -> None:
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies))

    def post(self, url: str, payload: Any,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return post_json(url, payload, headers=headers, opener=self.opener)

    def get(self, url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(url, headers=headers or {})
        try:
            with self.opener.open(request, timeout=60) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


_BROWSERS: dict[tuple[str, str], Browser] = {}


def browser(stack: Stack, name: str) -> Browser:
    """The browser called ``name`` on this stack's web server (made on first use)."""
    return _BROWSERS.setdefault((stack.web_url, name), Browser())


def chat(stack: Stack, shopper: str, text: str, upload: str | None = None) -> Messages:
    """One turn through the web server's /api/chat, as the widget in browser ``shopper``
    sends it (its session cookie decides who it is)."""
    payload: dict[str, Any] = {"message": text}
    if upload:
        payload["upload"] = upload
    status, reply = browser(stack, shopper).post(f"{stack.web_url}/api/chat", payload)
    assert status == 200, reply
    return reply["messages"] if isinstance(reply, dict) else reply


def upload(stack: Stack, data: bytes, name: str = "photo.jpg",
           content_type: str = "image/jpeg") -> tuple[int, Any]:
    """A photo to /api/upload as the widget sends it (multipart, field ``file``)."""
    boundary = "shopbot-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{name}\"\r\nContent-Type: {content_type}\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"{stack.web_url}/api/upload", data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def texts(messages: Messages) -> str:
    return "\n".join(m.get("text") or "" for m in messages)


def cards(messages: Messages) -> list[dict[str, Any]]:
    return [c for m in messages if (m.get("custom") or {}).get("type") == "product_cards"
            for c in m["custom"]["products"]]


def card_ids(messages: Messages) -> list[str]:
    return [c["id"] for c in cards(messages)]


def cart_of(messages: Messages) -> dict[str, Any] | None:
    found = [m["custom"] for m in messages if (m.get("custom") or {}).get("type") == "cart"]
    return found[-1] if found else None


def shopbot(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """The installed ``shopbot`` command, as a user runs it."""
    command = [str(PROJECT_ROOT / ".venv" / "bin" / "shopbot"), *args]
    return subprocess.run(command, cwd=cwd or PROJECT_ROOT, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def refinement_conversation(stack: Stack, store: ProductStore, sender: str) -> None:
    """Search, page, refine price and colour, open one product, compare two - over REST."""
    first = cards(say(stack, sender, "show me red dresses"))
    assert len(first) == 5
    assert all(p.base_colour == "Red" and p.article_type == "Dresses"
               for p in store.get([c["id"] for c in first]))

    more = say(stack, sender, "show me more")
    more_cards = cards(more)
    assert more_cards and not {c["id"] for c in more_cards} & {c["id"] for c in first}
    assert all(c["article_type"] == "Dresses" for c in more_cards)

    cheaper = say(stack, sender, "cheaper ones")
    cheap_cards = cards(cheaper)
    median = sorted(c["final_price"] for c in more_cards)[len(more_cards) // 2]
    assert cheap_cards and all(c["colour"] == "Red" for c in cheap_cards)
    assert cheap_cards[0]["final_price"] < median

    blue = cards(say(stack, sender, "in blue"))
    assert blue and all(c["article_type"] == "Dresses" for c in blue)
    assert all("Blue" in c["colour"] for c in blue[:1])

    details = say(stack, sender, "tell me about the second one")
    (opened,) = cards(details)
    assert opened["id"] == blue[1]["id"]
    assert "Price:" in texts(details)

    compared = say(stack, sender, "compare the first two")
    assert [c["id"] for c in cards(compared)] == [c["id"] for c in blue[:2]]
    assert "Cheapest:" in texts(compared)
