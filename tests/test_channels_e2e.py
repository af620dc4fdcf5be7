"""End to end: real-format signed webhooks posted into the running Rasa server, the bot's
outbound API calls caught by a fake of every platform's API on loopback.

The channels' API base URLs and photo hosts point at the fake (the same settings a
self-hosted gateway would use); everything else - signature checks, rendering, photo
downloads and storage, linking, the bot and the action server - is the real thing.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from PIL import Image

from bot.channels.signatures import (
    meta_signature,
    sign_shopbot,
    slack_signature,
    twilio_signature,
    verify_shopbot,
)
from retrieval.catalog import load_catalog
from retrieval.ingest import ingest_catalog
from retrieval.store import ProductStore
from shopbot.stack import RASA_VENV, Stack, rasa_env
from shopcore.settings import PROJECT_ROOT, Settings
from tests.e2e import internal_headers, running_stack

pytestmark = pytest.mark.e2e

PUBLIC = "https://shop.example"
TG_TOKEN = "123456:test-bot-token"
TG_SECRET = "telegram-secret-token"
FB_PAGE_TOKEN = "page-token"
FB_APP_SECRET = "meta-app-secret"
FB_VERIFY = "meta-verify-token"
SLACK_TOKEN = "xoxb-test"
SLACK_SECRET = "slack-signing-secret"
TW_SID = "AC" + "1" * 32
TW_TOKEN = "twilio-auth-token"
TW_NUMBER = "+15550000000"
HOOK_SECRET = "generic-webhook-secret"
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
QUIET_S = 2.5  # a turn is over when its chat got no new call for this long
TURN_TIMEOUT_S = 120


@dataclass
class Call:
    """One request the bot made to a platform API."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)


def jpeg(size: tuple[int, int] = (320, 480), colour: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG")
    return buffer.getvalue()


class FakePlatforms:
    """Telegram, Meta, Slack, Twilio and a webhook receiver in one aiohttp app on loopback,
    in a thread of its own; every call is recorded, photos are served from ``files``."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.files: dict[str, bytes] = {}
        self.media_auth: list[str | None] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        app = web.Application()
        app.router.add_post("/tg/bot{token}/{method}", self._telegram)
        app.router.add_get("/tg/file/bot{token}/photos/{name}", self._telegram_file)
        app.router.add_post("/fb/me/messages", self._ok)
        app.router.add_post("/slack/chat.postMessage", self._slack)
        app.router.add_post("/twilio/2010-04-01/Accounts/{sid}/Messages.json", self._ok)
        app.router.add_get("/twilio-media/{name}", self._twilio_media)
        app.router.add_get("/media/{name}", self._media)
        app.router.add_post("/callback", self._ok)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        threading.Thread(target=self._loop.run_forever, daemon=True).start()

    def stop(self) -> None:
        async def shutdown() -> None:
            assert self._runner is not None
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _record(self, request: web.Request) -> Call:
        body = await request.read()
        call = Call(request.method, request.path, dict(request.query), dict(request.headers),
                    body)
        if request.content_type == "application/json":
            call.json = json.loads(body)
        elif request.content_type == "application/x-www-form-urlencoded":
            call.form = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
        with self._lock:
            self.calls.append(call)
        return call

    async def _ok(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"ok": True})

    async def _slack(self, request: web.Request) -> web.Response:
        call = await self._record(request)
        authorised = call.headers.get("Authorization") == f"Bearer {SLACK_TOKEN}"
        return web.json_response({"ok": authorised})

    async def _telegram(self, request: web.Request) -> web.Response:
        call = await self._record(request)
        if request.match_info["token"] != TG_TOKEN:
            return web.json_response({"ok": False, "description": "Unauthorized"}, status=401)
        if request.match_info["method"] == "getFile":
            file_id = call.json["file_id"]
            if file_id not in self.files:
                return web.json_response({"ok": False}, status=400)
            return web.json_response({"ok": True, "result": {
                "file_id": file_id, "file_path": f"photos/{file_id}",
                "file_size": len(self.files[file_id])}})
        return web.json_response({"ok": True, "result": {"message_id": len(self.calls)}})

    async def _telegram_file(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["name"])
        if request.match_info["token"] != TG_TOKEN or data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="image/jpeg")

    async def _twilio_media(self, request: web.Request) -> web.Response:
        """Like api.twilio.com: check the account's credentials, redirect to the CDN."""
        self.media_auth.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") is None:
            return web.Response(status=401)
        raise web.HTTPTemporaryRedirect(
            f"http://localhost:{self.port}/media/{request.match_info['name']}")

    async def _media(self, request: web.Request) -> web.Response:
        self.media_auth.append(request.headers.get("Authorization"))
        data = self.files.get(request.match_info["name"])
        return web.Response(body=data, content_type="image/jpeg") if data else \
            web.Response(status=404)

    # -- for the tests ------------------------------------------------------------------------

    def mark(self) -> int:
        with self._lock:
            return len(self.calls)

    def since(self, mark: int, match: Callable[[Call], bool]) -> list[Call]:
        with self._lock:
            return [c for c in self.calls[mark:] if match(c)]

    def turn(self, mark: int, match: Callable[[Call], bool],
             done: Callable[[list[Call]], bool] | None = None) -> list[Call]:
        """The calls matching ``match`` after ``mark``, once the bot has finished: when
        ``done`` holds, or (without ``done``) when no new call came for QUIET_S."""
        deadline = time.monotonic() + TURN_TIMEOUT_S
        count, changed = 0, time.monotonic()
        while time.monotonic() < deadline:
            calls = self.since(mark, match)
            if done is not None and done(calls):
                return calls
            if len(calls) != count:
                count, changed = len(calls), time.monotonic()
            elif done is None and calls and time.monotonic() - changed >= QUIET_S:
                return calls
            time.sleep(0.2)
        raise AssertionError(f"no complete reply within {TURN_TIMEOUT_S} s; got "
                             f"{[(c.path, c.json or c.form) for c in self.since(mark, match)]}")


@dataclass
class Channels:
    stack: Stack
    fake: FakePlatforms
    tracker_db: Path
    uploads_dir: Path

    @property
    def rasa(self) -> str:
        return self.stack.rasa_url

    @property
    def public(self) -> str:
        """The web server: the platforms reach Rasa's channels only through it."""
        return self.stack.web_url

    def events(self, sender: str) -> list[dict[str, Any]]:
        """The user messages Rasa stored for ``sender``."""
        with sqlite3.connect(self.tracker_db) as db:
            rows = db.execute("SELECT data FROM events WHERE sender_id = ? AND type_name = 'user'"
                              " ORDER BY id", (sender,)).fetchall()
        return [json.loads(row[0]) for row in rows]

    def wait_events(self, sender: str, count: int = 1) -> list[dict[str, Any]]:
        """The user messages of ``sender`` once there are ``count``: Rasa sends its replies
        before it saves the conversation."""
        deadline = time.monotonic() + 60
        while len(events := self.events(sender)) < count:
            assert time.monotonic() < deadline, f"{sender} has {len(events)} stored messages"
            time.sleep(0.2)
        return events


def channel_env(fake: FakePlatforms) -> dict[str, str]:
    """Every channel's credentials, as a shop puts them in .env, against the fake APIs."""
    return {
        "SHOPBOT_TELEGRAM_TOKEN": TG_TOKEN,
        "SHOPBOT_TELEGRAM_SECRET": TG_SECRET,
        "SHOPBOT_TELEGRAM_API_URL": f"{fake.url}/tg",
        "SHOPBOT_MESSENGER_PAGE_TOKEN": FB_PAGE_TOKEN,
        "SHOPBOT_MESSENGER_APP_SECRET": FB_APP_SECRET,
        "SHOPBOT_MESSENGER_VERIFY_TOKEN": FB_VERIFY,
        "SHOPBOT_MESSENGER_API_URL": f"{fake.url}/fb",
        "SHOPBOT_MESSENGER_MEDIA_HOSTS": "127.0.0.1",
        "SHOPBOT_SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SHOPBOT_SLACK_SIGNING_SECRET": SLACK_SECRET,
        "SHOPBOT_SLACK_API_URL": f"{fake.url}/slack",
        "SHOPBOT_TWILIO_ACCOUNT_SID": TW_SID,
        "SHOPBOT_TWILIO_AUTH_TOKEN": TW_TOKEN,
        "SHOPBOT_TWILIO_NUMBER": TW_NUMBER,
        "SHOPBOT_TWILIO_API_URL": f"{fake.url}/twilio",
        "SHOPBOT_TWILIO_MEDIA_HOSTS": "127.0.0.1, localhost",  # API host, "CDN" host
        "SHOPBOT_WEBHOOK_SECRET": HOOK_SECRET,
        "SHOPBOT_WEBHOOK_CALLBACK_URL": f"{fake.url}/callback",
    }


@pytest.fixture(scope="module")
def store_with_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample catalog with a photo per product, so cards carry image URLs."""
    images = tmp_path_factory.mktemp("catalog-photos")
    for product in load_catalog(None)[0]:
        (images / f"{product.id}.jpg").write_bytes(jpeg((60, 80), "gray"))
    store_dir = tmp_path_factory.mktemp("store-with-photos")
    ingest_catalog(ProductStore(store_dir), images_dir=images)
    return store_dir


@pytest.fixture(scope="module")
def channels(store_with_photos: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Channels]:
    run_dir = tmp_path_factory.mktemp("channels")
    fake = FakePlatforms()
    fake.start()
    env = channel_env(fake)
    settings = Settings(store_dir=store_with_photos, var_dir=run_dir, public_url=PUBLIC,
                        max_upload_bytes=MAX_UPLOAD_BYTES)
    try:
        with running_stack(settings, env=env) as stack:
            yield Channels(stack, fake, run_dir / "tracker.db", run_dir / "uploads")
    finally:
        fake.stop()


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# -- how each platform posts to the bot -----------------------------------------------------------

_update_ids = iter(range(1000, 10**6))


def telegram_update(user: int, text: str | None = None, **message: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"message_id": next(_update_ids), "date": int(time.time()),
                            "from": {"id": user, "is_bot": False, "first_name": "Asha"},
                            "chat": {"id": user, "type": "private"}, **message}
    if text is not None:
        body["text"] = text
    return {"update_id": next(_update_ids), "message": body}


def send_telegram(ch: Channels, update: dict[str, Any], secret: str | None = TG_SECRET
                  ) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return post(f"{ch.public}/webhooks/telegram/webhook", json.dumps(update).encode(), headers)


def send_messenger(ch: Channels, psid: str, message: dict[str, Any] | None = None,
                   postback: dict[str, Any] | None = None, secret: str = FB_APP_SECRET,
                   signed: bool = True) -> tuple[int, bytes]:
    event: dict[str, Any] = {"sender": {"id": psid}, "recipient": {"id": "PAGE"},
                             "timestamp": int(time.time() * 1000)}
    if message is not None:
        event["message"] = {"mid": f"m_{next(_update_ids)}", **message}
    if postback is not None:
        event["postback"] = {"mid": f"p_{next(_update_ids)}", **postback}
    body = json.dumps({"object": "page", "entry": [
        {"id": "PAGE", "time": 1, "messaging": [event]}]}).encode()
    headers = {"Content-Type": "application/json"}
    if signed:
        headers["X-Hub-Signature-256"] = meta_signature(secret, body)
    return post(f"{ch.public}/webhooks/messenger/webhook", body, headers)


def send_slack(ch: Channels, body: bytes, content_type: str = "application/json",
               secret: str = SLACK_SECRET, timestamp: int | None = None) -> tuple[int, bytes]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp,
               "X-Slack-Signature": slack_signature(secret, stamp, body)}
    return post(f"{ch.public}/webhooks/slack/webhook", body, headers)


def slack_message(user: str, text: str) -> bytes:
    return json.dumps({"type": "event_callback", "team_id": "T1", "event_id":
                       f"Ev{next(_update_ids)}", "event": {
                           "type": "message", "channel_type": "im", "user": user,
                           "channel": f"D{user}", "text": text, "ts": "1.0"}}).encode()


def send_twilio(ch: Channels, shopper: str, body: str = "", token: str = TW_TOKEN,
                to: str = TW_NUMBER, **extra: str) -> tuple[int, bytes]:
    url = f"{ch.public}/webhooks/twilio/webhook"
    fields = {"MessageSid": f"SM{next(_update_ids)}", "AccountSid": TW_SID, "From": shopper,
              "To": to, "Body": body, "NumMedia": "0", **extra}
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": twilio_signature(token, url, fields.items())}
    return post(url, urllib.parse.urlencode(fields).encode(), headers)


def send_signed(ch: Channels, sender: str, text: str, secret: str = HOOK_SECRET,
                now: float | None = None) -> tuple[int, bytes]:
    body = json.dumps({"sender": sender, "message": text}).encode()
    headers = {"Content-Type": "application/json", **sign_shopbot(secret, body, now)}
    return post(f"{ch.public}/webhooks/signed/webhook", body, headers)


def say_rest(ch: Channels, sender: str, text: str, authenticated: bool = False
             ) -> tuple[int, Any]:
    """A turn as the web server passes it on (internal secret; signed-in or not)."""
    status, body = post(f"{ch.rasa}/webhooks/rest/webhook",
                        json.dumps({"sender": sender, "message": text,
                                    "authenticated": authenticated}).encode(),
                        {"Content-Type": "application/json", **internal_headers(ch.stack)})
    return status, json.loads(body)


def to_chat(chat: int) -> Callable[[Call], bool]:
    return lambda c: c.path.startswith("/tg/") and (c.json or {}).get("chat_id") == chat


def telegram_text(calls: list[Call]) -> str:
    return "\n".join(c.json.get("text") or c.json.get("caption") or "" for c in calls)


def product_ids(calls: list[Call]) -> list[str]:
    """The products shown in Telegram card calls, from their "View" buttons."""
    return [m.group(1) for c in calls for row in c.json.get("reply_markup", {}).get(
        "inline_keyboard", []) for button in row
            if (m := re.fullmatch(re.escape(PUBLIC) + r"/\?product=(\w+)", button.get("url", "")))]


# -- the tests ------------------------------------------------------------------------------------

def test_unsigned_and_forged_requests_never_reach_the_bot(channels: Channels) -> None:
    ch = channels
    forged = telegram_update(666, "show me red dresses")
    assert send_telegram(ch, forged, secret=None)[0] == 401
    assert send_telegram(ch, forged, secret="guessed")[0] == 403
    assert send_messenger(ch, "666", {"text": "hi"}, signed=False)[0] == 401
    assert send_messenger(ch, "666", {"text": "hi"}, secret="guessed")[0] == 403
    event = slack_message("U666", "hi")
    assert post(f"{ch.public}/webhooks/slack/webhook", event,
                {"Content-Type": "application/json"})[0] == 401
    assert send_slack(ch, event, secret="guessed")[0] == 403
    assert send_slack(ch, event, timestamp=int(time.time()) - 600)[0] == 403, "a replay"
    assert send_twilio(ch, "+1666", "hi", token="guessed")[0] == 403
    assert post(f"{ch.public}/webhooks/twilio/webhook", b"From=%2B1666&Body=hi",
                {"Content-Type": "application/x-www-form-urlencoded"})[0] == 401
    assert send_signed(ch, "666", "hi", secret="guessed")[0] == 403
    assert send_signed(ch, "666", "hi", now=time.time() - 600)[0] == 403
    assert post(f"{ch.public}/webhooks/signed/webhook", b'{"sender": "666", "message": "hi"}',
                {"Content-Type": "application/json"})[0] == 401
    assert get(f"{ch.public}/webhooks/messenger/webhook?hub.mode=subscribe&"
               f"hub.verify_token=guessed&hub.challenge=42")[0] == 403

    # A genuine message on the same server is answered, so the forged ones had every chance.
    mark = ch.fake.mark()
    assert send_telegram(ch, telegram_update(667, "hello"))[0] == 200
    assert ch.fake.turn(mark, to_chat(667))
    forgers = ("telegram:666", "messenger:666", "slack:T1:U666", "twilio:+1666", "signed:666")
    assert ch.wait_events("telegram:667")
    assert all(ch.events(sender) == [] for sender in forgers)
    assert not ch.fake.since(0, to_chat(666))


def test_telegram_search_shows_photo_cards_with_detail_buttons(channels: Channels) -> None:
    ch = channels
    mark = ch.fake.mark()
    status, body = send_telegram(ch, telegram_update(1001, "show me red dresses"))
    assert (status, body) == (200, b'{"status":"ok"}')
    calls = ch.fake.turn(mark, to_chat(1001),
                         done=lambda calls: sum(c.path.endswith("/sendPhoto")
                                                for c in calls) >= 5)
    assert all(TG_TOKEN in c.path for c in calls)
    assert "red dresses" in telegram_text(calls).lower()
    photos = [c.json for c in calls if c.path.endswith("/sendPhoto")]
    assert len(photos) == 5
    shown = product_ids(calls)
    assert len(set(shown)) == 5
    first = photos[0]
    assert first["photo"] == f"{PUBLIC}/images/{shown[0]}.jpg"
    assert "₹" in first["caption"]
    details, view = first["reply_markup"]["inline_keyboard"][0]
    assert details == {"text": "Details", "callback_data": "tell me about the first one"}
    assert view == {"text": "View", "url": f"{PUBLIC}/?product={shown[0]}"}

    # Tapping "Details" on the second card opens that product.
    second = photos[1]["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    mark = ch.fake.mark()
    tap = {"update_id": next(_update_ids), "callback_query": {
        "id": "cb-1", "from": {"id": 1001, "is_bot": False, "first_name": "Asha"},
        "message": {"message_id": 5, "chat": {"id": 1001, "type": "private"}},
        "data": second}}
    assert send_telegram(ch, tap)[0] == 200
    calls = ch.fake.turn(mark, lambda c: c.path.startswith("/tg/"))
    assert any(c.path.endswith("/answerCallbackQuery") and c.json["callback_query_id"] == "cb-1"
               for c in calls)
    assert "Price:" in telegram_text(calls)
    assert product_ids(calls) == [shown[1]]


def test_telegram_redelivery_is_answered_once(channels: Channels) -> None:
    ch = channels
    update = telegram_update(1002, "hello")
    mark = ch.fake.mark()
    assert send_telegram(ch, update)[0] == 200
    assert send_telegram(ch, update)[0] == 200
    ch.fake.turn(mark, to_chat(1002))
    assert len(ch.wait_events("telegram:1002")) == 1


def test_messenger_handshake_search_and_postback(channels: Channels) -> None:
    ch = channels
    status, body = get(f"{ch.public}/webhooks/messenger/webhook?hub.mode=subscribe&"
                       f"hub.verify_token={FB_VERIFY}&hub.challenge=1158201444")
    assert (status, body) == (200, b"1158201444")

    def to_psid(c: Call) -> bool:
        return c.path == "/fb/me/messages" and c.json["recipient"]["id"] == "PSID-1"

    mark = ch.fake.mark()
    assert send_messenger(ch, "PSID-1", {"text": "show me red dresses"})[0] == 200
    calls = ch.fake.turn(mark, to_psid, done=lambda calls: any(
        "attachment" in c.json["message"] for c in calls))
    assert all(c.query == {"access_token": FB_PAGE_TOKEN} for c in calls)
    assert "red dresses" in calls[0].json["message"]["text"].lower()
    template = next(c.json["message"]["attachment"]["payload"] for c in calls
                    if "attachment" in c.json["message"])
    assert template["template_type"] == "generic" and len(template["elements"]) == 5
    first = template["elements"][0]
    assert first["image_url"].startswith(f"{PUBLIC}/images/") and "₹" in first["subtitle"]
    assert first["buttons"][0]["payload"] == "tell me about the first one"

    mark = ch.fake.mark()
    assert send_messenger(ch, "PSID-1", postback={
        "title": "Details", "payload": template["elements"][2]["buttons"][0]["payload"]})[0] == 200
    calls = ch.fake.turn(mark, to_psid)
    texts = " ".join(c.json["message"].get("text", "") for c in calls)
    assert "Price:" in texts
    (opened,) = [e for c in calls if "attachment" in c.json["message"]
                 for e in c.json["message"]["attachment"]["payload"]["elements"]]
    assert opened["title"] == template["elements"][2]["title"]


def test_slack_events_and_button_clicks(channels: Channels) -> None:
    ch = channels
    challenge = json.dumps({"type": "url_verification", "challenge": "abc123"}).encode()
    status, body = send_slack(ch, challenge)
    assert status == 200 and json.loads(body) == {"challenge": "abc123"}

    def to_dm(c: Call) -> bool:
        return c.path == "/slack/chat.postMessage" and c.json["channel"] == "DU1"

    mark = ch.fake.mark()
    assert send_slack(ch, slack_message("U1", "show me red dresses"))[0] == 200
    calls = ch.fake.turn(mark, to_dm, done=lambda calls: any("blocks" in c.json for c in calls))
    assert all(c.headers["Authorization"] == f"Bearer {SLACK_TOKEN}" for c in calls)
    assert "red dresses" in calls[0].json["text"].lower()
    blocks = next(c.json["blocks"] for c in calls if "blocks" in c.json)
    sections = [b for b in blocks if b["type"] == "section"]
    assert len(sections) == 5
    assert sections[0]["accessory"]["image_url"].startswith(f"{PUBLIC}/images/")
    button = next(b for b in blocks if b["type"] == "actions")["elements"][0]
    assert button["value"] == "tell me about the first one"

    # Our own message echoed back by Slack is ignored, not answered.
    echo = json.loads(slack_message("U1", "Here are red dresses"))
    echo["event"]["bot_id"] = "B1"
    mark = ch.fake.mark()
    assert send_slack(ch, json.dumps(echo).encode())[0] == 200

    click = {"type": "block_actions", "user": {"id": "U1"}, "team": {"id": "T1"},
             "channel": {"id": "DU1"}, "actions": [{"action_id": "details_1",
                                                    "value": button["value"],
                                                    "action_ts": "1700000000.1"}]}
    form = urllib.parse.urlencode({"payload": json.dumps(click)}).encode()
    assert send_slack(ch, form, content_type="application/x-www-form-urlencoded")[0] == 200
    calls = ch.fake.turn(mark, to_dm)
    assert "Price:" in " ".join(c.json["text"] for c in calls)
    assert len(ch.wait_events("slack:T1:U1", 2)) == 2, "the echo never reached the bot"


def test_twilio_sms_answers_faq_and_lists_products_with_links(channels: Channels) -> None:
    ch = channels
    shopper = "+15551230001"

    def to_shopper(c: Call) -> bool:
        return c.path.startswith("/twilio/") and c.form.get("To") == shopper

    mark = ch.fake.mark()
    status, body = send_twilio(ch, shopper, "how many days does delivery take?")
    assert status == 200 and b"<Response>" in body
    calls = ch.fake.turn(mark, to_shopper)
    assert calls[0].path == f"/twilio/2010-04-01/Accounts/{TW_SID}/Messages.json"
    assert calls[0].headers["Authorization"].startswith("Basic ")
    assert all(c.form["From"] == TW_NUMBER for c in calls)
    answer = " ".join(c.form["Body"] for c in calls).lower()
    assert "standard delivery takes" in answer and "business days" in answer

    mark = ch.fake.mark()
    send_twilio(ch, shopper, "show me red dresses")
    text = "\n".join(c.form["Body"] for c in ch.fake.turn(mark, to_shopper))
    lines = re.findall(r"^(\d)\. .+ - .*₹[\d,]+.*\n" + re.escape(PUBLIC) + r"/\?product=\w+$",
                       text, flags=re.MULTILINE)
    assert lines == ["1", "2", "3", "4", "5"], text

    # WhatsApp through Twilio: the reply goes out from the WhatsApp number written to.
    whatsapp = "whatsapp:+15551230002"
    mark = ch.fake.mark()
    send_twilio(ch, whatsapp, "hello", to="whatsapp:+14155238886")
    calls = ch.fake.turn(mark, lambda c: c.form.get("To") == whatsapp)
    assert calls[0].form["From"] == "whatsapp:+14155238886"


def test_signed_webhook_posts_signed_replies_to_the_callback(channels: Channels) -> None:
    ch = channels
    mark = ch.fake.mark()
    status, body = send_signed(ch, "bridge-user-1", "show me red dresses")
    assert status == 202 and json.loads(body) == {"status": "accepted"}
    calls = ch.fake.turn(mark, lambda c: c.path == "/callback", done=lambda calls: any(
        "custom" in c.json for c in calls))
    for call in calls:
        assert verify_shopbot(call.body, call.headers["X-Shopbot-Timestamp"],
                              call.headers["X-Shopbot-Signature"], HOOK_SECRET)
        assert call.json["recipient_id"] == "bridge-user-1"
    products = next(c.json["custom"]["products"] for c in calls if "custom" in c.json)
    assert len(products) == 5
    assert all(p["image_url"].startswith(f"{PUBLIC}/images/") for p in products)
    assert products[0]["url"] == f"{PUBLIC}/?product={products[0]['id']}"
    assert ch.wait_events("signed:bridge-user-1")


def _uploads(ch: Channels) -> set[str]:
    return {p.name for p in ch.uploads_dir.glob("*.jpg")} if ch.uploads_dir.is_dir() else set()


def _photo_event(ch: Channels, sender: str) -> dict[str, Any]:
    (event,) = [e for e in ch.wait_events(sender) if e["text"] == "/photo_upload"]
    return event["parse_data"]["metadata"]["upload"]


def _domain_has_photo_intent() -> bool:
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text())
    return "photo_upload" in [i if isinstance(i, str) else next(iter(i))
                              for i in domain.get("intents", [])]


def test_photos_reach_the_photo_search(channels: Channels) -> None:
    ch = channels
    before = _uploads(ch)

    # Telegram: the largest size is fetched through getFile from the API host.
    ch.fake.files["tg-photo-big"] = jpeg((1600, 1200), "red")
    ch.fake.files["tg-photo-small"] = jpeg((90, 67), "red")
    mark = ch.fake.mark()
    send_telegram(ch, telegram_update(2001, caption="like this but cheaper", photo=[
        {"file_id": "tg-photo-small", "file_unique_id": "s", "width": 90, "height": 67},
        {"file_id": "tg-photo-big", "file_unique_id": "b", "width": 1600, "height": 1200}]))
    replies = ch.fake.turn(mark, to_chat(2001))
    assert any(c.path.endswith("/getFile") and c.json == {"file_id": "tg-photo-big"}
               for c in ch.fake.since(mark, lambda c: True))
    upload = _photo_event(ch, "telegram:2001")
    assert upload["text"] == "like this but cheaper"
    assert upload["ref"] in _uploads(ch) - before
    with Image.open(ch.uploads_dir / upload["ref"]) as stored:
        assert stored.format == "JPEG" and max(stored.size) == 1024
    # Every product of this store has a photo, so the photo search always finds look-alikes
    # (relaxing the guessed type if it must) and Telegram shows them as photo cards.
    assert _domain_has_photo_intent()
    assert len(product_ids(replies)) == 5, telegram_text(replies)

    # Twilio (WhatsApp): the media URL needs the account's credentials and redirects to a CDN.
    ch.fake.files["ME1"] = jpeg((640, 480), "blue")
    ch.fake.media_auth.clear()
    mark = ch.fake.mark()
    send_twilio(ch, "whatsapp:+15551230003", "", NumMedia="1",
                MediaUrl0=f"{ch.fake.url}/twilio-media/ME1", MediaContentType0="image/jpeg")
    ch.fake.turn(mark, lambda c: c.form.get("To") == "whatsapp:+15551230003")
    assert ch.fake.media_auth[0].startswith("Basic ") and ch.fake.media_auth[1] is None
    assert _photo_event(ch, "twilio:whatsapp:+15551230003")["ref"] in _uploads(ch)

    # Messenger: the attachment URL is fetched from Meta's CDN (here the fake) ...
    ch.fake.files["fb-photo.jpg"] = jpeg((500, 500), "green")
    mark = ch.fake.mark()
    send_messenger(ch, "PSID-3", {"text": "in blue", "attachments": [{"type": "image", "payload": {
        "url": f"{ch.fake.url}/media/fb-photo.jpg"}}]})
    ch.fake.turn(mark, lambda c: c.path == "/fb/me/messages")
    upload = _photo_event(ch, "messenger:PSID-3")
    assert upload["text"] == "in blue" and upload["ref"] in _uploads(ch)

    # ... and never from a host off the allow-list.
    ch.fake.files["elsewhere.jpg"] = jpeg()
    ch.fake.media_auth.clear()
    stored = _uploads(ch)
    mark = ch.fake.mark()
    send_messenger(ch, "PSID-2", {"attachments": [{"type": "image", "payload": {
        "url": f"http://localhost:{ch.fake.port}/media/elsewhere.jpg"}}]})
    (refusal,) = ch.fake.turn(mark, lambda c: c.path == "/fb/me/messages")
    assert refusal.json["message"]["text"] == "I couldn't fetch that photo - please send it again."
    assert ch.fake.media_auth == [] and _uploads(ch) == stored
    assert ch.events("messenger:PSID-2") == []

    # Too large (the limit holds while downloading) or not a picture: told why, nothing kept.
    ch.fake.files["huge"] = os.urandom(MAX_UPLOAD_BYTES + 1024)
    ch.fake.files["text.jpg"] = b"this is not a picture at all" * 10
    for file_id, expected in (("huge", "too large"), ("text.jpg", "isn't a picture")):
        mark = ch.fake.mark()
        send_telegram(ch, telegram_update(2002, photo=[
            {"file_id": file_id, "file_unique_id": file_id, "width": 800, "height": 600}]))
        (reply,) = ch.fake.turn(mark, to_chat(2002))
        assert expected in reply.json["text"]
    assert _uploads(ch) == stored and ch.events("telegram:2002") == []
    assert not list(ch.uploads_dir.glob(".*.part"))


def test_linked_chats_share_one_conversation(channels: Channels) -> None:
    ch = channels
    status, answer = say_rest(ch, "web-linker", "link")
    assert status == 200
    code = re.search(r"\b(\d{6})\b", answer[0]["text"]).group(1)

    mark = ch.fake.mark()
    send_telegram(ch, telegram_update(3001, f"link {code}"))
    (linked,) = ch.fake.turn(mark, to_chat(3001))
    assert linked.json["text"].startswith("Linked!")

    # The web chat searches; the Telegram chat asks about what the web chat was shown.
    status, found = say_rest(ch, "web-linker", "show me red dresses")
    web_cards = [p for m in found if m.get("custom", {}).get("type") == "product_cards"
                 for p in m["custom"]["products"]]
    assert status == 200 and len(web_cards) == 5
    mark = ch.fake.mark()
    send_telegram(ch, telegram_update(3001, "tell me about the third one"))
    calls = ch.fake.turn(mark, to_chat(3001))
    assert product_ids(calls) == [web_cards[2]["id"]]
    web_texts = [e["text"] for e in ch.wait_events("web-linker", 2)]
    assert web_texts == ["show me red dresses", "tell me about the third one"], \
        "Telegram's message went to the web shopper's conversation (link commands never do)"
    assert ch.events("telegram:3001") == []

    mark = ch.fake.mark()
    send_telegram(ch, telegram_update(3001, "unlink"))
    (unlinked,) = ch.fake.turn(mark, to_chat(3001))
    assert "no longer linked" in unlinked.json["text"]
    mark = ch.fake.mark()
    send_telegram(ch, telegram_update(3001, "hello"))
    ch.fake.turn(mark, to_chat(3001))
    assert [e["text"] for e in ch.wait_events("telegram:3001")] == ["hello"]


def test_only_a_signed_in_web_chat_may_redeem_a_link_code(channels: Channels) -> None:
    """Redeeming makes the web chat act as the Telegram account: an anonymous web session
    (a cookie anyone holding it can replay) may not; a signed-in customer may."""
    ch = channels
    mark = ch.fake.mark()
    send_telegram(ch, telegram_update(3101, "link"))
    (issued,) = ch.fake.turn(mark, to_chat(3101))
    code = re.search(r"\b(\d{6})\b", issued.json["text"]).group(1)
    status, refused = say_rest(ch, "web:anonymous-visitor-1", f"link {code}")
    assert status == 200 and "sign in" in refused[0]["text"]
    status, linked = say_rest(ch, "customer:ann", f"link {code}", authenticated=True)
    assert status == 200 and linked[0]["text"].startswith("Linked!")
    # Linked, the web chat acts as that Telegram account - and only as that one.
    status, theirs = say_rest(ch, "customer:ann", "where is my order SB-100103?",
                              authenticated=True)
    assert status == 200 and "couldn't find order SB-100103" in theirs[0]["text"]
    codes = []
    for _ in range(6):  # issuing is limited too
        status, answer = say_rest(ch, "web:code-hoarder", "link")
        codes.append(answer[0]["text"])
    assert "link code is" in codes[0] and "several codes" in codes[-1]


def test_rest_refuses_other_channels_sender_ids(channels: Channels) -> None:
    forged = json.dumps({"sender": "telegram:1001", "message": "show my cart"}).encode()
    status, body = post(f"{channels.rasa}/webhooks/rest/webhook", forged,
                        {"Content-Type": "application/json", **internal_headers(channels.stack)})
    assert status == 403 and b"another channel" in body
    # Without the web server's secret nobody is served, whatever the sender...
    for headers in ({}, {"X-Shopbot-Internal": "guess"}):
        status, body = post(f"{channels.rasa}/webhooks/rest/webhook",
                            json.dumps({"sender": "web:x", "message": "show my cart"}).encode(),
                            {"Content-Type": "application/json", **headers})
        assert status == 401, body
    # ...and the public web server does not pass the REST channel through at all.
    status, _ = post(f"{channels.public}/webhooks/rest/webhook", forged,
                     {"Content-Type": "application/json"})
    assert status == 404
    status, answer = say_rest(channels, "plain-web-user", "hello")
    assert status == 200 and answer and answer[0]["recipient_id"] == "plain-web-user"


CHANNELS_ON = """
import json
from rasa.core.run import create_http_input_channels
channels = create_http_input_channels(None, "credentials.yml")
print(json.dumps({c.name(): getattr(c, "enabled", None) for c in channels}))
"""


def test_credentials_load_with_channels_off_until_configured(tmp_path: Path) -> None:
    """Rasa reads credentials.yml with no channel variables set (they are optional), and a
    channel with only some of its secrets stays off."""
    env = {k: v for k, v in rasa_env().items() if not k.startswith("SHOPBOT_")}
    env["SHOPBOT_TELEGRAM_TOKEN"] = TG_TOKEN  # no secret token: not enough
    env["SHOPBOT_WEBHOOK_SECRET"] = HOOK_SECRET
    env["SHOPBOT_WEBHOOK_CALLBACK_URL"] = "ftp://bridge.example/callback"  # not http(s)
    env["SHOPBOT_VAR_DIR"] = str(tmp_path)
    done = subprocess.run([str(RASA_VENV / "bin" / "python"), "-c", CHANNELS_ON],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    enabled = json.loads(done.stdout.strip().splitlines()[-1])
    # No socket.io channel: it would take any sender id from any browser.
    assert enabled == {"rest": None, "telegram": False, "messenger": False,
                       "slack": False, "twilio": False, "signed": False}


def staff_events(ch: Channels, sender: str, events: list[dict[str, Any]],
                 headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """What the console posts to Rasa's REST channel for a human handoff."""
    status, body = post(f"{ch.rasa}/webhooks/rest/staff",
                        json.dumps({"sender": sender, "events": events}).encode(),
                        {"Content-Type": "application/json",
                         **(internal_headers(ch.stack) if headers is None else headers)})
    return status, json.loads(body)


def stored_events(ch: Channels, sender: str) -> list[str]:
    with sqlite3.connect(ch.tracker_db) as db:
        return [row[0] for row in db.execute(
            "SELECT type_name FROM events WHERE sender_id = ? ORDER BY id", (sender,))]


def test_a_person_takes_over_a_telegram_chat_and_hands_it_back(channels: Channels) -> None:
    """Human handoff on a messaging platform: the person's messages reach the chat through
    the platform API, the bot says nothing while they hold it, and answers again after."""
    ch = channels
    chat, sender = 1050, "telegram:1050"
    mark = ch.fake.mark()
    assert send_telegram(ch, telegram_update(chat, "connect me to an agent"))[0] == 200
    assert "support team" in telegram_text(ch.fake.turn(mark, to_chat(chat)))
    ch.wait_events(sender)

    # Only the console (with the internal secret) may do this, and only these events.
    assert staff_events(ch, sender, [{"event": "pause"}], headers={})[0] == 401
    assert staff_events(ch, sender, [{"event": "action", "name": "action_restart"}])[0] == 400
    assert staff_events(ch, sender, [{"event": "bot", "text": ""}])[0] == 400

    mark = ch.fake.mark()
    status, done = staff_events(ch, sender, [
        {"event": "pause"},
        {"event": "bot", "text": "Hi, Ann here from the shop.", "metadata": {"staff": "Ann"}}])
    assert status == 200, done
    assert done == {"channel": "telegram", "delivered": True, "paused": True}
    calls = ch.fake.turn(mark, to_chat(chat))
    assert telegram_text(calls) == "Hi, Ann here from the shop."

    # Paused: the shopper's message is kept, the bot does not answer it.
    mark = ch.fake.mark()
    assert send_telegram(ch, telegram_update(chat, "show me red dresses"))[0] == 200
    ch.wait_events(sender, 2)
    assert stored_events(ch, sender)[-1] == "user"
    time.sleep(QUIET_S)
    assert ch.fake.since(mark, to_chat(chat)) == []

    status, done = staff_events(ch, sender, [
        {"event": "bot", "text": "Handing you back.", "metadata": {"staff": "Ann",
                                                                  "notice": True}},
        {"event": "resume"}])
    assert (status, done["paused"]) == (200, False)
    mark = ch.fake.mark()
    assert send_telegram(ch, telegram_update(chat, "show me red dresses"))[0] == 200
    calls = ch.fake.turn(mark, to_chat(chat),
                         done=lambda calls: any(c.path.endswith("/sendPhoto") for c in calls))
    assert "red dresses" in telegram_text(calls).lower()


def test_a_persons_reply_reaches_messenger_slack_and_twilio_shoppers(channels: Channels) -> None:
    """Each platform's output channel takes a staff reply outside any turn: Messenger by the
    page-scoped id, Slack in the user's direct messages with the app, Twilio from the shop's
    number (WhatsApp from its WhatsApp number)."""
    ch = channels
    cases = [
        ("messenger:PSID-77",
         lambda: send_messenger(ch, "PSID-77", {"text": "hello"}),
         lambda c: c.path == "/fb/me/messages" and c.json["recipient"]["id"] == "PSID-77",
         lambda c: c.json["message"]["text"]),
        ("slack:T1:U77", lambda: send_slack(ch, slack_message("U77", "hello")),
         lambda c: c.path == "/slack/chat.postMessage" and c.json["channel"] == "U77",
         lambda c: c.json["text"]),
        ("twilio:whatsapp:+15551230077",
         lambda: send_twilio(ch, "whatsapp:+15551230077", "hello", to="whatsapp:+14155238886"),
         lambda c: c.path.startswith("/twilio/") and c.form.get("To") ==
         "whatsapp:+15551230077", lambda c: c.form["Body"]),
    ]
    for sender, say_hello, to_shopper, text_of in cases:
        assert say_hello()[0] == 200
        ch.wait_events(sender)
        mark = ch.fake.mark()
        status, done = staff_events(ch, sender, [
            {"event": "bot", "text": f"Ann here, about {sender}.", "metadata": {"staff": "Ann"}}])
        assert status == 200 and done["delivered"] is True, (sender, done)
        calls = ch.fake.turn(mark, to_shopper)
        assert [text_of(c) for c in calls] == [f"Ann here, about {sender}."], sender
