"""The demo page server: static files, product API, photos, the chat proxy's input checks,
photo uploads, the widget's config and CORS."""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from retrieval.store import ProductStore
from shopbot.stack import free_port, process_env
from shopbot.web import INTERNAL, LIMITS, ONE_MOMENT, RateLimiter, create_app
from shopcore.settings import Settings
from shopcore.uploads import REF_PATTERN, UploadStore
from tests.conftest import REAL_IMAGES

SHOP = "https://shop.example"


@pytest.fixture
def uploads_dir(tmp_path: Path) -> Path:
    return tmp_path / "uploads"


@pytest.fixture
async def client(sample_store: ProductStore, uploads_dir: Path) -> AsyncIterator[TestClient]:
    # No Rasa listens on this port: the proxy must say so instead of failing.
    settings = Settings(store_dir=sample_store.store_dir, rasa_port=free_port(),
                        uploads_dir=uploads_dir, max_upload_bytes=10 * 1024 * 1024,
                        max_image_pixels=40_000_000, cors_origins=[SHOP])
    async with TestClient(TestServer(create_app(settings, sample_store))) as test_client:
        yield test_client


async def test_index_and_static_files(client: TestClient) -> None:
    index = await client.get("/")
    assert index.status == 200 and "<html" in (await index.text()).lower()
    script = await client.get("/static/demo.js")
    assert script.status == 200


async def test_products_api(client: TestClient) -> None:
    response = await client.get("/api/products?limit=7")
    payload = await response.json()
    assert len(payload["products"]) == 7 and payload["total"] > 100
    types = [card["article_type"] for card in payload["products"]]
    assert len(set(types)) == 7, "the grid shows the range, one product per type"
    assert (await client.get("/api/products?limit=abc")).status == 400


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("not json", 400),
        ('{"sender": "a"}', 400),
        ('{"message": "hi\\u0000there"}', 400),
        ('{"message": "\\ud800"}', 400),
        ('{"message": {"text": "hi"}}', 400),
        ('{"sender": "a", "message": 5}', 400),
        ('{"sender": "a", "message": "   "}', 400),
        ('[1, 2]', 400),
    ],
)
async def test_chat_rejects_malformed_payloads(client: TestClient, body: str, status: int) -> None:
    response = await client.post("/api/chat", data=body,
                                 headers={"Content-Type": "application/json"})
    assert response.status == status
    assert (await response.json())["error"]


async def test_chat_rejects_huge_messages(client: TestClient) -> None:
    long = await client.post("/api/chat", json={"sender": "a", "message": "x" * 5000})
    assert long.status == 413 and "too long" in (await long.json())["error"]
    huge = await client.post("/api/chat", json={"sender": "a", "message": "x" * 200_000})
    assert huge.status == 413


async def test_chat_with_rasa_down_answers_clearly(client: TestClient) -> None:
    response = await client.post("/api/chat", json={"sender": "a", "message": "hello"})
    assert response.status == 503
    assert (await response.json())["error"] == ONE_MOMENT


async def test_images_are_served_only_from_the_store_folder(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "42.jpg").write_bytes(b"\xff\xd8\xff\xe0fakejpeg")
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    store = ProductStore(tmp_path / "store")
    store.write_meta(images_dir=str(photos))
    app = create_app(Settings(store_dir=store.store_dir), store)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/images/42.jpg")).status == 200
        assert (await client.get("/images/43.jpg")).status == 404
        assert (await client.get("/images/..%2Fsecret.jpg")).status == 404
        assert (await client.get("/images/x.exe")).status == 404


# -- photo uploads ------------------------------------------------------------------------------


def photo_bytes(fmt: str = "JPEG", size: tuple[int, int] = (640, 480), mode: str = "RGB") -> bytes:
    """A small but real picture: a gradient with a block, so it is not one flat colour."""
    image = Image.linear_gradient("L").resize(size).convert(mode)
    image.paste((200, 30, 30) if mode == "RGB" else (200, 30, 30, 255),
                (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose header claims 10 gigapixels, in a few dozen bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))


def form(data: bytes, filename: str = "photo.jpg",
         content_type: str = "image/jpeg") -> aiohttp.FormData:
    body = aiohttp.FormData()
    body.add_field("file", data, filename=filename, content_type=content_type)
    return body


def stored(uploads_dir: Path) -> list[Path]:
    return sorted(uploads_dir.iterdir()) if uploads_dir.is_dir() else []


@pytest.mark.parametrize(("fmt", "mode", "content_type"),
                         [("JPEG", "RGB", "image/jpeg"), ("PNG", "RGBA", "image/png"),
                          ("WEBP", "RGB", "image/webp")])
async def test_upload_stores_a_reencoded_copy_under_a_random_name(
    client: TestClient, uploads_dir: Path, fmt: str, mode: str, content_type: str
) -> None:
    response = await client.post("/api/upload", data=form(
        photo_bytes(fmt, (2400, 1800), mode), "my holiday.jpg", content_type))
    assert response.status == 201, await response.text()
    ref = (await response.json())["ref"]
    assert REF_PATTERN.match(ref)
    (path,) = stored(uploads_dir)
    assert path.name == ref
    with Image.open(path) as saved:
        assert saved.format == "JPEG" and max(saved.size) == 1024
        assert not saved.getexif(), "EXIF (GPS) is never kept"
    second = await client.post("/api/upload", data=form(photo_bytes(), "my holiday.jpg"))
    assert (await second.json())["ref"] != ref, "names are random, never the client's"


@pytest.mark.skipif(not REAL_IMAGES.is_dir(), reason=f"no catalog photos at {REAL_IMAGES}")
async def test_upload_accepts_a_real_catalog_photo(client: TestClient, uploads_dir: Path) -> None:
    photo = next(REAL_IMAGES.glob("*.jpg"))
    response = await client.post("/api/upload", data=form(photo.read_bytes(), photo.name))
    assert response.status == 201
    assert stored(uploads_dir)[0].name == (await response.json())["ref"]


BAD_UPLOADS = {
    "zero bytes": (b"", "photo.jpg", "image/jpeg", 400, "empty"),
    "text file": (b"just some text, not a picture\n" * 20, "notes.txt", "text/plain", 415,
                  "isn't a picture"),
    "text named .jpg": (b"just some text, not a picture\n" * 20, "photo.jpg", "image/jpeg", 415,
                        "picture"),
    "truncated jpeg": (photo_bytes()[:3000], "photo.jpg", "image/jpeg", 400, "damaged"),
    "decompression bomb": (png_bomb(), "bomb.png", "image/png", 413, "too large"),
    "bmp": (photo_bytes("BMP", (64, 64)), "photo.bmp", "image/bmp", 415, "JPEG, PNG"),
    "path traversal": (photo_bytes(), "../../etc/cron.d/x.jpg", "image/jpeg", 400, "file name"),
    "windows path": (photo_bytes(), "..\\..\\boot.jpg", "image/jpeg", 400, "file name"),
    "html declared": (photo_bytes(), "photo.jpg", "text/html", 415, "isn't a picture"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
async def test_bad_uploads_get_a_clear_error_and_nothing_is_stored(
    client: TestClient, uploads_dir: Path, tmp_path: Path, case: str
) -> None:
    data, filename, content_type, status, words = BAD_UPLOADS[case]
    before = set(tmp_path.rglob("*"))
    response = await client.post("/api/upload", data=form(data, filename, content_type))
    assert response.status == status
    assert words in (await response.json())["error"]
    assert stored(uploads_dir) == []
    assert {p for p in tmp_path.rglob("*") if p.is_file()} <= before


async def test_raw_path_in_file_name_is_refused(client: TestClient, uploads_dir: Path) -> None:
    """As a hand-made request sends it: the path unescaped in the header."""
    body = (b'--b0undary\r\nContent-Disposition: form-data; name="file"; '
            b'filename="../../../tmp/evil.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
            + photo_bytes() + b"\r\n--b0undary--\r\n")
    response = await client.post("/api/upload", data=body, headers={
        "Content-Type": "multipart/form-data; boundary=b0undary"})
    assert response.status == 400 and "file name" in (await response.json())["error"]
    assert stored(uploads_dir) == []


async def test_oversized_uploads_are_refused(client: TestClient, uploads_dir: Path) -> None:
    huge = os.urandom(1024) * 30 * 1024  # 30 MB
    declared = await client.post("/api/upload", data=form(huge))
    assert declared.status == 413 and "too large" in (await declared.json())["error"]

    async def chunks():  # no Content-Length: refused while streaming
        boundary = "b0undary"
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
               f"filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()
        for _ in range(30):
            yield os.urandom(1024 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    streamed = await client.post(
        "/api/upload", data=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
    assert streamed.status == 413 and "too large" in (await streamed.json())["error"]
    assert stored(uploads_dir) == []


@pytest.mark.parametrize(("body", "content_type", "status"), [
    ('{"file": "x"}', "application/json", 415),
    ("x", "image/jpeg", 415),
    ("--nope\r\n", "multipart/form-data; boundary=other", 400),
])
async def test_upload_needs_a_multipart_form(client: TestClient, uploads_dir: Path, body: str,
                                             content_type: str, status: int) -> None:
    response = await client.post("/api/upload", data=body, headers={"Content-Type": content_type})
    assert response.status == status and (await response.json())["error"]
    assert stored(uploads_dir) == []


async def test_upload_without_a_file_field(client: TestClient) -> None:
    body = aiohttp.FormData(default_to_multipart=True)
    body.add_field("text", "like this but in black")
    response = await client.post("/api/upload", data=body)
    assert response.status == 400 and "'file'" in (await response.json())["error"]
    body = aiohttp.FormData()
    body.add_field("photo", photo_bytes(), filename="a.jpg", content_type="image/jpeg")
    response = await client.post("/api/upload", data=body)
    assert response.status == 413, "other fields are small or refused"


async def test_uploads_are_rate_limited_per_client(client: TestClient) -> None:
    client.server.app[LIMITS].addresses = RateLimiter(2)  # no cookie: one address
    statuses = [(await client.post("/api/upload", data=form(photo_bytes()))).status
                for _ in range(3)]
    assert statuses == [201, 201, 429]


def test_upload_store_resolves_only_its_own_refs_and_prunes_old_ones(tmp_path: Path) -> None:
    store = UploadStore(tmp_path / "uploads", max_bytes=1 << 20, max_pixels=10_000_000)
    ref = store.save(photo_bytes())
    assert store.path(ref) == tmp_path / "uploads" / ref
    (tmp_path / "secret.jpg").write_bytes(b"x")
    for bad in ("../secret.jpg", "secret.jpg", ref.upper(), ref + "/", "", "a" * 32 + ".png"):
        assert store.path(bad) is None
    old = time.time() - 2 * 24 * 3600
    os.utime(store.path(ref), (old, old))
    fresh = store.save(photo_bytes())
    assert store.prune() == 1
    assert store.path(ref) is None and store.path(fresh) is not None
    assert store.delete(fresh) and not store.delete(fresh)


# -- chat with a photo ----------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["../../etc/passwd", "x.jpg", "0" * 32 + ".jpg", 5])
async def test_chat_refuses_bad_or_unknown_upload_refs(client: TestClient, ref: object) -> None:
    response = await client.post("/api/chat", json={"sender": "a", "message": "", "upload": ref})
    assert response.status == 400 and (await response.json())["error"]


async def test_chat_with_a_stored_upload_may_have_no_text(client: TestClient) -> None:
    ref = (await (await client.post("/api/upload", data=form(photo_bytes()))).json())["ref"]
    response = await client.post("/api/chat", json={"sender": "a", "message": "", "upload": ref})
    # Valid: it goes on to Rasa, which is not running here.
    assert response.status == 503


# -- widget config and CORS -----------------------------------------------------------------------


async def test_config_tells_the_widget_the_limits(client: TestClient) -> None:
    config = await (await client.get("/api/config")).json()
    assert config["max_upload_bytes"] == 10 * 1024 * 1024
    assert config["accepted_types"] == ["image/jpeg", "image/png", "image/webp", "image/gif"]
    assert config["max_message_chars"] > 0


async def test_cors_only_for_configured_origins(client: TestClient) -> None:
    allowed = await client.get("/api/config", headers={"Origin": SHOP})
    assert allowed.headers["Access-Control-Allow-Origin"] == SHOP
    widget = await client.get("/static/widget.js", headers={"Origin": SHOP})
    assert widget.status == 200 and widget.headers["Access-Control-Allow-Origin"] == SHOP
    error = await client.post("/api/chat", json={"sender": "a", "message": ""},
                              headers={"Origin": SHOP})
    assert error.status == 400 and error.headers["Access-Control-Allow-Origin"] == SHOP

    other = await client.get("/api/config", headers={"Origin": "https://evil.example"})
    assert other.status == 200 and "Access-Control-Allow-Origin" not in other.headers
    same_origin = await client.get("/api/config")
    assert "Access-Control-Allow-Origin" not in same_origin.headers
    page = await client.get("/", headers={"Origin": SHOP})
    assert "Access-Control-Allow-Origin" not in page.headers, "only the API and widget files"


async def test_cors_preflight(client: TestClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    allowed = await client.options("/api/chat", headers={"Origin": SHOP, **preflight})
    assert allowed.status == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == SHOP
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in allowed.headers["Access-Control-Allow-Headers"]
    refused = await client.options("/api/upload",
                                   headers={"Origin": "https://evil.example", **preflight})
    assert refused.status == 403 and "Access-Control-Allow-Origin" not in refused.headers


def test_stack_hands_env_file_secrets_to_its_processes(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Channel secrets kept in .env reach Rasa and the action server; exported ones win."""
    (tmp_path / ".env").write_text("TELEGRAM_TOKEN=from-file\nSLACK_TOKEN=file-slack\n")
    monkeypatch.setenv("SLACK_TOKEN", "exported")
    monkeypatch.delenv("TELEGRAM_TOKEN", raising=False)
    env = process_env(tmp_path)
    assert env["TELEGRAM_TOKEN"] == "from-file" and env["SLACK_TOKEN"] == "exported"
    assert "TELEGRAM_TOKEN" not in process_env(tmp_path / "no-such-dir")


# -- who the shopper is (the server decides; the page's word is never taken) -----------------

CUSTOMER_SECRET = "the-shop-backends-customer-token-key"
SEEN: aiohttp.web.AppKey[list[dict[str, object]]] = aiohttp.web.AppKey("seen", list)


@pytest.fixture
async def shop_client(sample_store: ProductStore, tmp_path: Path,
                      request: pytest.FixtureRequest) -> AsyncIterator[TestClient]:
    """The web app with a loopback "Rasa" that echoes who it was told the shopper is."""
    demo_mode = getattr(request, "param", True)
    seen: list[dict[str, object]] = []

    async def rasa(req: aiohttp.web.Request) -> aiohttp.web.Response:
        seen.append({"json": await req.json(), "secret": req.headers.get("X-Shopbot-Internal")})
        return aiohttp.web.json_response([{"recipient_id": (await req.json())["sender"],
                                           "text": "hi"}])

    fake = aiohttp.web.Application()
    fake.router.add_post("/webhooks/rest/webhook", rasa)
    async with TestServer(fake) as rasa_server:
        settings = Settings(var_dir=tmp_path, store_dir=sample_store.store_dir,
                            rasa_port=rasa_server.port, demo=demo_mode,
                            customer_token_secret=CUSTOMER_SECRET, cors_origins=[SHOP])
        app = create_app(settings, sample_store)
        app[SEEN] = seen
        async with TestClient(TestServer(app)) as test_client:
            yield test_client


def _told(client: TestClient) -> dict[str, object]:
    return client.server.app[SEEN][-1]


async def test_the_server_mints_the_session_and_ignores_the_body_sender(
        shop_client: TestClient) -> None:
    first = await shop_client.post("/api/chat",
                                   json={"sender": "demo-shopper", "message": "my orders"})
    assert first.status == 200
    cookie = first.cookies["shopbot_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    told = _told(shop_client)
    sender = told["json"]["sender"]  # type: ignore[index]
    assert sender.startswith("web:") and sender != "demo-shopper"
    assert told["json"]["authenticated"] is False  # type: ignore[index]
    assert told["secret"] == shop_client.server.app[INTERNAL]
    assert "recipient_id" not in (await first.json())[0], "the page never sees the id"
    again = await shop_client.post("/api/chat", json={"sender": "someone", "message": "hi"})
    assert again.status == 200 and "shopbot_session" not in again.cookies
    assert _told(shop_client)["json"]["sender"] == sender, "the cookie keeps the session"  # type: ignore[index]


async def test_a_tampered_cookie_gets_a_fresh_anonymous_session(shop_client: TestClient) -> None:
    await shop_client.post("/api/session/demo")
    assert (await (await shop_client.get("/api/session")).json())["kind"] == "demo"
    value = shop_client.session.cookie_jar.filter_cookies(
        shop_client.make_url("/"))["shopbot_session"].value
    shop_client.session.cookie_jar.clear()
    body, _, signature = value.rpartition(".")
    for forged in (body.replace(".d.", ".a.") + "." + signature, body + "." + "f" * 64):
        response = await shop_client.post("/api/chat", json={"message": "my orders"},
                                          cookies={"shopbot_session": forged})
        assert response.status == 200 and response.cookies["shopbot_session"].value != forged
        assert _told(shop_client)["json"]["sender"].startswith("web:")  # type: ignore[index]
        shop_client.session.cookie_jar.clear()


@pytest.mark.parametrize("shop_client", [False], indirect=True)
async def test_no_demo_shopper_outside_demo_mode(shop_client: TestClient) -> None:
    assert (await shop_client.post("/api/session/demo")).status == 404


async def test_customer_tokens_decide_the_customer_and_bad_ones_are_refused(
        shop_client: TestClient) -> None:
    import jwt

    def token(sub: str, exp_in: int, key: str = CUSTOMER_SECRET) -> dict[str, str]:
        raw = jwt.encode({"sub": sub, "exp": int(time.time()) + exp_in}, key, "HS256")
        return {"Authorization": f"Bearer {raw}"}

    ok = await shop_client.post("/api/chat", json={"sender": "customer:bob", "message": "hi"},
                                headers=token("ann", 600))
    assert ok.status == 200
    assert _told(shop_client)["json"] == {"sender": "customer:ann", "message": "hi",  # type: ignore[index]
                                          "authenticated": True}
    session = await shop_client.get("/api/session", headers=token("ann", 600))
    assert await session.json() == {"kind": "customer", "customer": "ann"}
    calls = len(shop_client.server.app[SEEN])
    for headers in (token("ann", -10), token("ann", 600, key="x" * 40), token("ann", 10**8),
                    {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic YTpi"}):
        refused = await shop_client.post("/api/chat", json={"message": "my orders"},
                                         headers=headers)
        assert refused.status == 401 and "sign in" in (await refused.json())["error"]
        assert (await shop_client.post("/api/upload", data=form(photo_bytes()),
                                       headers=headers)).status == 401
    assert len(shop_client.server.app[SEEN]) == calls, "nothing refused reached the bot"


async def test_posts_from_foreign_pages_are_refused(shop_client: TestClient) -> None:
    """A page elsewhere can post a form with the shopper's cookie; it must not act."""
    evil = await shop_client.post("/api/chat", data="message=cancel my order",
                                  headers={"Origin": "https://evil.example",
                                           "Content-Type": "application/x-www-form-urlencoded"})
    assert evil.status == 403
    plain = await shop_client.post("/api/chat", data='{"message": "hi"}',
                                   headers={"Content-Type": "text/plain"})
    assert plain.status == 415, "JSON only: a simple cross-site request can't be one"
    allowed = await shop_client.post("/api/chat", json={"message": "hi"},
                                     headers={"Origin": SHOP})
    assert allowed.status == 200
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"


async def test_chat_is_rate_limited_per_session(shop_client: TestClient) -> None:
    shop_client.server.app[LIMITS].chats = RateLimiter(3)
    statuses = [(await shop_client.post("/api/chat", json={"message": "hi"})).status
                for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
