"""Hostile input against the running bot: malformed and hostile requests to ``/api/chat``,
``/api/upload`` and every messaging webhook (through the public web server), and bad images.

Nothing may crash or answer 5xx, every process must still answer afterwards, and refused
requests must write nothing (shop database, Rasa's tracker store, uploads folder).

``SHOPBOT_FUZZ_REQUESTS`` (default 10,000) and ``SHOPBOT_FUZZ_IMAGES`` (default 1,000) set
the counts; the payloads come from a fixed seed, so a failure replays. The run's numbers
are written to ``$SHOPBOT_FUZZ_REPORT`` when set (one JSON line).
"""

from __future__ import annotations

import io
import json
import os
import random
import sqlite3
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from bot.channels.signatures import sign_shopbot
from shopbot.stack import Stack
from shopbot.web import unreadable
from shopcore.db import metadata, open_database
from shopcore.settings import Settings
from tests.e2e import Browser, running_stack, say, texts
from tests.test_channels_e2e import (
    HOOK_SECRET,
    PUBLIC,
    TG_SECRET,
    FakePlatforms,
    channel_env,
    store_with_photos,  # noqa: F401 - the fixture this module's stack uses
)

pytestmark = pytest.mark.e2e

REQUESTS = int(os.environ.get("SHOPBOT_FUZZ_REQUESTS", "10000"))
IMAGES = int(os.environ.get("SHOPBOT_FUZZ_IMAGES", "1000"))
SEED = 20261205
WORKERS = 8
CHANNELS = ("telegram", "messenger", "slack", "twilio", "signed")

UNICODE = ["\u202etxet desrever", "\u200b\u200c\u200d\ufeff", "e\u0301" * 300, "🧥" * 400,
           "\U0001f9d1\u200d\U0001f9af", "Ω≈ç√∫", "\ufffd\ufffe", "ｓｈｏｅｓ", "\u0000",
           "\x1b[31mred", "𝕣𝕖𝕕 𝕕𝕣𝕖𝕤𝕤", "ا" * 50, "\r\n\r\n", "%s%n%x", "{{7*7}}",
           "'; DROP TABLE orders; --", "<script>alert(1)</script>", "../../etc/passwd",
           "\ud800", "\udfff"]


@dataclass(frozen=True)
class Probe:
    """One request and what it is: refused (must write nothing) or not."""

    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    refused: bool = True  # False: authentic but meaningless (a platform gets 200, ignored)


@pytest.fixture(scope="module")
def fuzz_stack(store_with_photos: Path,  # noqa: F811 - the imported fixture
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack with every messaging channel configured (against fake platform APIs) and the
    rate limits out of the way, so every hostile request reaches the code it attacks."""
    fake = FakePlatforms()
    fake.start()
    settings = Settings(store_dir=store_with_photos, var_dir=tmp_path_factory.mktemp("fuzz"),
                        public_url=PUBLIC, chats_per_minute=10**7, uploads_per_minute=10**7,
                        requests_per_address_minute=10**7)
    try:
        with running_stack(settings, env=channel_env(fake)) as stack:
            yield stack
    finally:
        fake.stop()


def _json_variants(rng: random.Random) -> bytes:
    """A body that is not an acceptable chat request."""
    choice = rng.randrange(12)
    if choice == 0:
        return rng.randbytes(rng.randrange(1, 400))
    if choice == 1:
        return b'{"message": "unterminated'
    if choice == 2:
        return json.dumps({"message": rng.choice([None, 5, 1.5, True, [], {}, ["x"]])}).encode()
    if choice == 3:
        return json.dumps([{"message": "hi"}]).encode()
    if choice == 4:
        return json.dumps({"message": "x" * rng.randrange(2001, 60_000)}).encode()
    if choice == 5:
        return json.dumps({"message": "", "upload": rng.choice(
            ["../../etc/passwd", "0" * 32 + ".jpg", "x", 7, None, "a" * 500])}).encode()
    if choice == 6:
        return b"[" * rng.randrange(1000, 60_000)
    if choice == 7:
        return json.dumps({"text": "hi"}).encode()
    if choice == 8:
        return ('{"message": "' + "\\u0000" * rng.randrange(1, 50) + '"}').encode()
    if choice == 9:
        return ('{"message": "' + rng.choice(["\\ud800", "\\udfff", "a\\udc00b"]) + '"}'
                ).encode()
    if choice == 10:
        return b"\xff\xfe" + "{\"message\": \"hi\"}".encode("utf-16-le")
    return b""


def chat_probes(rng: random.Random, n: int) -> Iterator[Probe]:
    for _ in range(n):
        kind = rng.randrange(10)
        headers = {"Content-Type": "application/json"}
        if kind == 0:  # a JSON-looking message with the wrong content type
            yield Probe("POST", "/api/chat", b'{"message": "hi"}',
                        {"Content-Type": rng.choice(["text/plain", "application/x-www-form-"
                                                     "urlencoded", "multipart/form-data"])})
        elif kind == 1:  # a forged, expired or malformed customer token
            token = rng.choice(["A" * rng.randrange(1, 6000), "a.b.c", "",
                                "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."])
            yield Probe("POST", "/api/chat", b'{"message": "show my orders"}',
                        {**headers, "Authorization": rng.choice(["Bearer ", "Basic ", ""])
                         + token or "Bearer"})
        elif kind == 2:  # a foreign page posting with the shopper's cookie
            yield Probe("POST", "/api/chat", b'{"message": "cancel my order"}',
                        {**headers, "Origin": "https://evil.example"})
        else:
            yield Probe("POST", "/api/chat", _json_variants(rng), headers)


def upload_probes(rng: random.Random, n: int) -> Iterator[Probe]:
    for _ in range(n):
        boundary = "fuzz" + str(rng.randrange(10**6))
        kind = rng.randrange(6)
        if kind == 0:
            body, ctype = rng.randbytes(rng.randrange(0, 3000)), f"multipart/form-data; " \
                f"boundary={boundary}"
        elif kind == 1:
            body, ctype = b"file=abc", "application/x-www-form-urlencoded"
        elif kind == 2:  # a file field with a path for a name
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                    f"filename=\"../../{rng.randrange(99)}.jpg\"\r\nContent-Type: image/jpeg"
                    f"\r\n\r\nxx\r\n--{boundary}--\r\n").encode()
            ctype = f"multipart/form-data; boundary={boundary}"
        elif kind == 3:  # no file field, many parts
            body = "".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"f{i}\""
                           f"\r\n\r\nv\r\n" for i in range(20)).encode() + \
                f"--{boundary}--\r\n".encode()
            ctype = f"multipart/form-data; boundary={boundary}"
        elif kind == 4:  # declared as a document
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                    f"filename=\"a.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4"
                    f"\r\n--{boundary}--\r\n").encode()
            ctype = f"multipart/form-data; boundary={boundary}"
        else:  # an unterminated multipart body
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                    f"filename=\"a.jpg\"\r\n\r\n").encode() + rng.randbytes(100)
            ctype = f"multipart/form-data; boundary={boundary}"
        yield Probe("POST", "/api/upload", body, {"Content-Type": ctype})


def webhook_probes(rng: random.Random, n: int) -> Iterator[Probe]:
    """Forged or missing signatures on every platform, and well-signed nonsense where the
    test knows the secret (Telegram's header token, the generic HMAC webhook)."""
    for _ in range(n):
        channel = rng.choice(CHANNELS)
        path = f"/webhooks/{channel}/webhook"
        body = rng.choice([rng.randbytes(rng.randrange(0, 500)), b"{}", b"[]", b"null",
                           json.dumps({"message": {"chat": {"id": "x"}, "text": 5}}).encode(),
                           json.dumps({"object": "page", "entry": "x"}).encode(),
                           b"From=%2B1&Body=hi", ("{\"text\": \"" + rng.choice(UNICODE)
                                                  + "\"}").encode(errors="surrogatepass")])
        headers = {"Content-Type": rng.choice(["application/json",
                                               "application/x-www-form-urlencoded"])}
        forged = rng.random() < 0.7
        if channel == "telegram":
            headers["X-Telegram-Bot-Api-Secret-Token"] = "guess" if forged else TG_SECRET
            if not forged:  # signed, but not an update Telegram would send
                body = json.dumps({"update_id": "x", "message": rng.choice(
                    [None, 5, {"chat": None}, {"chat": {"id": []}, "text": {}}])}).encode()
        elif channel == "messenger":
            headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64
        elif channel == "slack":
            headers.update({"X-Slack-Request-Timestamp": str(int(time.time())),
                            "X-Slack-Signature": "v0=" + "f" * 64})
        elif channel == "twilio":
            headers["X-Twilio-Signature"] = "bm90IGEgc2lnbmF0dXJl"
        elif forged:
            headers.update({"X-Shopbot-Timestamp": str(int(time.time())),
                            "X-Shopbot-Signature": "sha256=" + "1" * 64})
        else:  # signed nonsense for the generic webhook: wrong types inside
            body = json.dumps({"sender": rng.choice([None, 5, "", "x" * 500, ["a"]]),
                               "message": rng.choice([None, 7, {"a": 1}])}).encode()
            headers.update(sign_shopbot(HOOK_SECRET, body))
        authentic = not forged and channel in ("telegram", "signed")
        yield Probe(rng.choice(["POST", "POST", "POST", "GET"]) if not authentic else "POST",
                    path, body, headers, refused=not authentic)


def oversized_probes() -> Iterator[Probe]:
    """Bodies over every cap, sent whole (the caps must refuse, not buffer forever)."""
    big = b"x" * (3 * 1024 * 1024)
    yield Probe("POST", "/api/chat", big, {"Content-Type": "application/json"})
    for channel in CHANNELS:
        yield Probe("POST", f"/webhooks/{channel}/webhook", big,
                    {"Content-Type": "application/json"})


def bad_images(rng: random.Random, n: int) -> Iterator[tuple[bytes, str]]:
    """Pictures that must be refused: damaged, lying about their type, bombs, animations."""
    def encoded(fmt: str, size: tuple[int, int] = (64, 48), **kw: object) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", size, (rng.randrange(256), 90, 40)).save(buffer, fmt, **kw)
        return buffer.getvalue()

    jpeg, png, webp = encoded("JPEG"), encoded("PNG"), encoded("WEBP")
    frames = [Image.new("RGB", (32, 32), c) for c in ("red", "blue")]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    bomb = png[:16] + (60000).to_bytes(4, "big") + (60000).to_bytes(4, "big") + png[24:]
    for i in range(n):
        kind = i % 8
        if kind == 0:
            data = jpeg[: rng.randrange(2, len(jpeg) // 2)]
        elif kind == 1:
            data = png[: rng.randrange(8, len(png) // 2)]
        elif kind == 2:
            data = webp[: rng.randrange(12, len(webp) // 2)]
        elif kind == 3:
            data = b"\xff\xd8\xff\xe0" + rng.randbytes(rng.randrange(10, 4000))
        elif kind == 4:
            data = bomb
        elif kind == 5:
            data = gif.getvalue()
        elif kind == 6:
            data = rng.choice([b"", b"GIF89a", b"<svg xmlns='http://www.w3.org/2000/svg'/>",
                               b"%PDF-1.7\n", b"PK\x03\x04" + rng.randbytes(50)])
        else:
            data = rng.randbytes(rng.randrange(1, 5000))
        yield data, rng.choice(["photo.jpg", "photo.png", "x.webp", "a.gif"])


def _multipart(data: bytes, name: str) -> tuple[bytes, str]:
    boundary = "fuzz-image-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{name}\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def send(base: str, probe: Probe) -> int:
    request = urllib.request.Request(base + probe.path, data=probe.body or None,
                                     headers=probe.headers, method=probe.method)
    if probe.method == "GET":
        request = urllib.request.Request(base + probe.path + "?hub.mode=subscribe&"
                                         "hub.verify_token=guess&hub.challenge=1",
                                         headers=probe.headers, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        error.read()
        return error.code
    except (ConnectionError, urllib.error.URLError) as error:
        # A server may close on a body over its cap before reading it all: that's a refusal
        # only for the oversized probes (checked by the caller), never a crash.
        return -1 if "reset" in str(error).lower() or "broken pipe" in str(error).lower() \
            else -2


def written(stack: Stack) -> dict[str, int]:
    """Row counts of every shop table, Rasa's tracker events, and the stored photos."""
    database = open_database(stack.settings.shop_database_url)
    counts = {}
    with database.read() as conn:
        for table in metadata.sorted_tables:
            counts[table.name] = conn.execute(select(func.count()).select_from(table)).scalar()
    tracker = Path(stack.settings.tracker_db)  # type: ignore[arg-type]
    if tracker.is_file():
        with sqlite3.connect(tracker) as db:
            counts["tracker events"] = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    uploads = Path(stack.settings.uploads_dir)  # type: ignore[arg-type]
    counts["uploads"] = len(list(uploads.glob("*"))) if uploads.is_dir() else 0
    return counts


def all_answer(stack: Stack) -> None:
    for url in (f"{stack.web_url}/healthz", f"{stack.rasa_url}/",
                f"{stack.action_url}/health"):
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200, url
    for service in stack.services:
        assert service.alive(), f"{service.name} died:\n{service.log_tail()}"


def test_hostile_requests_and_bad_images_change_nothing(fuzz_stack: Stack) -> None:
    stack = fuzz_stack
    say(stack, "fuzz-warm-up", "hello")  # the tracker table exists from here on
    rng = random.Random(SEED)
    image_share = IMAGES
    rest = max(REQUESTS - IMAGES, 0)
    probes = [*chat_probes(rng, rest * 4 // 10), *upload_probes(rng, rest * 2 // 10),
              *webhook_probes(rng, rest - rest * 4 // 10 - rest * 2 // 10)]
    for data, name in bad_images(rng, image_share):
        body, ctype = _multipart(data, name)
        probes.append(Probe("POST", "/api/upload", body, {"Content-Type": ctype}))
    rng.shuffle(probes)
    oversized = list(oversized_probes())

    before = written(stack)
    started = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        statuses = list(pool.map(lambda p: send(stack.web_url, p), probes))
        big = list(pool.map(lambda p: send(stack.web_url, p), oversized))
    seconds = time.perf_counter() - started
    by_status = Counter(statuses)
    report = {"requests": len(probes) + len(oversized), "images": image_share,
              "statuses": dict(sorted(by_status.items())), "oversized": big,
              "5xx": sum(v for k, v in by_status.items() if k >= 500),
              "seconds": round(seconds, 1)}
    if os.environ.get("SHOPBOT_FUZZ_REPORT"):
        Path(os.environ["SHOPBOT_FUZZ_REPORT"]).write_text(json.dumps(report) + "\n")
    print(json.dumps(report))

    assert report["5xx"] == 0, report
    unclear = [(p.path, s) for p, s in zip(probes, statuses, strict=True)
               if (p.refused and not 400 <= s < 500) or s < 0]
    assert not unclear, unclear[:20]  # every hostile probe is refused, clearly
    assert all(s == 413 or s == -1 for s in big), report
    all_answer(stack)
    assert written(stack) == before, "a refused request wrote something"
    # Odd but readable text is a message: answered, never a 5xx; then the bot still works.
    shopper = Browser()
    odd = [shopper.post(f"{stack.web_url}/api/chat", {"message": text})[0] for text in UNICODE]
    assert all(status in (200, 400) for status in odd), odd
    assert odd.count(400) == sum(1 for t in UNICODE if unreadable(t) or not t.strip()), odd
    assert "dress" in texts(say(stack, "fuzz-after", "show me red dresses")).lower()
    all_answer(stack)
