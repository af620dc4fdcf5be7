"""The messaging channels' own logic, without Rasa: signatures, rendering, linking, photos.

The Rasa side (webhooks posted into a running server, replies caught by a fake platform
API) is tested in test_channels_e2e.py.
"""

from __future__ import annotations

import io
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image

from bot.channels.config import expand, expand_credentials, host_allowed, missing
from bot.channels.inbound import Deduplicator, typed_text
from bot.channels.photos import download
from bot.channels.render import (
    Links,
    Reply,
    messenger_messages,
    slack_messages,
    sms_messages,
    sms_text,
    split_text,
    telegram_calls,
    webhook_message,
)
from bot.channels.signatures import (
    meta_signature,
    sign_shopbot,
    slack_signature,
    twilio_signature,
    verify_meta,
    verify_shopbot,
    verify_slack,
    verify_telegram,
    verify_twilio,
)
from shopcore.db import Database
from shopcore.images import ImageRejected
from shopcore.links import (
    ALREADY_LINKED,
    LINKED,
    MAX_FAILURES_GLOBAL,
    MAX_FAILURES_PER_SENDER,
    NOT_LINKED,
    TOO_MANY,
    UNLINKED,
    UNLINKED_OTHERS,
    WRONG_CODE,
    LinkStore,
    parse_command,
)
from shopcore.settings import Settings
from shopcore.uploads import UploadStore

REF = re.compile(r"^[0-9a-f]{32}\.jpg$")
SHOP = Links("https://shop.example", "https://shop.example/p/{id}")
CARDS = {"type": "product_cards", "intro": "Here are red dresses:", "products": [
    {"id": "101", "name": "Red Wrap Dress", "brand": "Vero Moda", "price": 1299,
     "final_price": 899, "discount_percent": 31, "colour": "Red", "article_type": "Dresses",
     "image_url": "/images/101.jpg"},
    {"id": "102", "name": "Maxi <Dress> & Belt", "brand": "Only", "price": 1999,
     "final_price": 1999, "discount_percent": 0, "image_url": None},
]}
# As the actions send it: the intro and product lines for plain channels, plus the cards.
SEARCH_MESSAGE = {"text": "Here are red dresses:\n"
                          "1. Red Wrap Dress - ₹899 (was ₹1,299, 31% off) · Red · id 101\n"
                          "2. Maxi <Dress> & Belt - ₹1,999 · id 102", "custom": CARDS}
SEEN_AUTH = web.AppKey("seen_auth", list)


# -- config -----------------------------------------------------------------------------------

def test_expand_uses_the_environment_and_shell_style_defaults() -> None:
    env = {"TOKEN": "abc", "EMPTY": ""}
    assert expand("${TOKEN}", env) == "abc"
    assert expand("${UNSET}", env) == ""
    assert expand("${UNSET:-https://api.telegram.org}", env) == "https://api.telegram.org"
    assert expand("${EMPTY:-fallback}", env) == "fallback"
    assert expand("Bearer ${TOKEN}", env) == "Bearer abc"
    assert expand("plain", env) == "plain" and expand(None, env) == ""
    block = expand_credentials({"token": "${TOKEN}", "port": 8443, "nested": {"x": 1}}, env)
    assert block == {"token": "abc", "port": "8443"}
    assert missing({"token": "abc", "secret": ""}, ("token", "secret")) == ["secret"]


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://api.telegram.org/file/bot1:x/photos/a.jpg", True),
    ("https://scontent.xx.fbcdn.net/v/t1/p.jpg", True),
    ("https://fbcdn.net/p.jpg", False),  # "*." means a subdomain
    ("https://evilfbcdn.net/p.jpg", False),
    ("https://fbcdn.net.evil.com/p.jpg", False),
    ("http://api.telegram.org/file/x.jpg", False),  # plain http only on loopback
    ("http://127.0.0.1:8123/file/x.jpg", True),
    ("https://user:pw@api.telegram.org/x.jpg", False),
    ("https://example.com/x.jpg", False),
    ("ftp://api.telegram.org/x.jpg", False),
    ("not a url", False),
])
def test_downloads_only_from_allow_listed_hosts(url: str, allowed: bool) -> None:
    hosts = ("api.telegram.org", "*.fbcdn.net", "127.0.0.1")
    assert host_allowed(url, hosts) is allowed


def test_channels_read_the_shared_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPBOT_PUBLIC_URL", "https://shop.example/")
    monkeypatch.setenv("SHOPBOT_DATABASE_URL", "sqlite:////tmp/s.db")
    settings = Settings()
    assert settings.product_link == "https://shop.example/?product={id}"
    assert settings.shop_database_url == "sqlite:////tmp/s.db"
    monkeypatch.setenv("SHOPBOT_MAX_UPLOAD_BYTES", "lots")
    with pytest.raises(ValueError):
        Settings()  # a bad number stops the process with the setting's name, not silently
    monkeypatch.delenv("SHOPBOT_MAX_UPLOAD_BYTES")
    monkeypatch.delenv("SHOPBOT_PUBLIC_URL")
    assert Settings().product_link == "", "no public URL, no product links"


# -- signatures -------------------------------------------------------------------------------

def test_twilio_signature_matches_twilios_documented_example() -> None:
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"), ("Digits", "1234"),
              ("From", "+12349013030"), ("To", "+18005551212")]
    assert twilio_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert verify_twilio(url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "12345")
    # Twilio sometimes signs with the default port spelled out.
    assert verify_twilio("https://mycompany.com:443/myapp.php?foo=1&bar=2", params,
                         "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "12345")
    assert not verify_twilio(url, [*params[:-1], ("To", "+10000000000")],
                             "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "12345")
    assert not verify_twilio(url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "54321")
    assert not verify_twilio(url, params, None, "12345")


def test_slack_signature_matches_slacks_documented_example() -> None:
    secret = "8f742231b10e8888abcd99yyyzzz85a5"
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
            b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
            b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
            b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id="
            b"398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert slack_signature(secret, "1531420618", body) == expected
    assert verify_slack(body, "1531420618", expected, secret, now=1531420618 + 60)
    assert not verify_slack(body, "1531420618", expected, secret, now=1531420618 + 301), \
        "a replay after five minutes is refused"
    assert not verify_slack(body + b"x", "1531420618", expected, secret, now=1531420618)
    assert not verify_slack(body, "soon", expected, secret)


def test_meta_telegram_and_shopbot_signatures() -> None:
    body = b'{"object":"page"}'
    header = meta_signature("app-secret", body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_meta(body, header, "app-secret")
    assert not verify_meta(body + b" ", header, "app-secret")
    assert not verify_meta(body, header, "other-secret")
    assert not verify_meta(body, header.replace("sha256=", "sha1="), "app-secret")

    assert verify_telegram("s3cret-token", "s3cret-token")
    assert not verify_telegram("s3cret-tokem", "s3cret-token")
    assert not verify_telegram(None, "s3cret-token")

    signed = sign_shopbot("hook-secret", body, now=1_700_000_000)
    timestamp, signature = signed["X-Shopbot-Timestamp"], signed["X-Shopbot-Signature"]
    assert verify_shopbot(body, timestamp, signature, "hook-secret", now=1_700_000_100)
    assert not verify_shopbot(body, timestamp, signature, "hook-secret", now=1_700_000_400)
    assert not verify_shopbot(b"{}", timestamp, signature, "hook-secret", now=1_700_000_000)
    assert not verify_shopbot(body, "1700000001", signature, "hook-secret", now=1_700_000_000)


def test_an_empty_secret_verifies_nothing() -> None:
    """A channel with a missing secret must be closed, not open."""
    body = b"{}"
    assert not verify_telegram("", "")
    assert not verify_meta(body, meta_signature("", body), "")
    assert not verify_slack(body, "1", slack_signature("", "1", body), "", now=1)
    assert not verify_twilio("https://x", [], twilio_signature("", "https://x", []), "")
    signed = sign_shopbot("", body, now=1)
    assert not verify_shopbot(body, signed["X-Shopbot-Timestamp"],
                              signed["X-Shopbot-Signature"], "", now=1)


# -- rendering --------------------------------------------------------------------------------

def test_telegram_shows_each_product_as_a_photo_with_buttons() -> None:
    calls = telegram_calls(Reply.from_message(SEARCH_MESSAGE, SHOP), 42)
    assert [method for method, _ in calls] == ["sendMessage", "sendPhoto", "sendMessage"]
    assert calls[0][1] == {"chat_id": 42, "text": "Here are red dresses:"}
    photo = calls[1][1]
    assert photo["photo"] == "https://shop.example/images/101.jpg"
    assert photo["caption"] == "Red Wrap Dress\nVero Moda · ₹899 (was ₹1,299, 31% off)"
    assert photo["reply_markup"]["inline_keyboard"] == [[
        {"text": "Details", "callback_data": "tell me about the first one"},
        {"text": "View", "url": "https://shop.example/p/101"}]]
    no_photo = calls[2][1]  # the second product has no picture: a text card
    assert no_photo["text"] == "Maxi <Dress> & Belt\nOnly · ₹1,999"
    assert no_photo["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == \
        "tell me about the second one"


def test_without_a_public_url_cards_have_no_photos_or_links() -> None:
    calls = telegram_calls(Reply.from_message(SEARCH_MESSAGE, Links()), 42)
    assert [method for method, _ in calls] == ["sendMessage"] * 3
    assert all(b.get("url") is None for _, p in calls[1:]
               for b in p["reply_markup"]["inline_keyboard"][0])


def test_telegram_buttons_fit_the_callback_limit() -> None:
    message = {"text": "Which topic?", "buttons": [
        {"title": "Shipping", "payload": "/delivery_period"},
        {"title": "Returns", "payload": "/check_refund_policy{\"x\": \"" + "y" * 80 + "\"}"},
        {"title": "", "payload": "/nothing"}]}
    (call,) = telegram_calls(Reply.from_message(message, SHOP), 7)
    keyboard = call[1]["reply_markup"]["inline_keyboard"]
    assert keyboard == [[{"text": "Shipping", "callback_data": "/delivery_period"}],
                        [{"text": "Returns", "callback_data": "Returns"}]]


def test_messenger_shows_products_as_a_generic_template() -> None:
    messages = messenger_messages(Reply.from_message(SEARCH_MESSAGE, SHOP))
    assert messages[0] == {"text": "Here are red dresses:"}
    template = messages[1]["attachment"]["payload"]
    assert template["template_type"] == "generic"
    first, second = template["elements"]
    assert first["image_url"] == "https://shop.example/images/101.jpg"
    assert first["subtitle"] == "Vero Moda · ₹899 (was ₹1,299, 31% off)"
    assert first["buttons"][0] == {"type": "postback", "title": "Details",
                                   "payload": "tell me about the first one"}
    assert first["default_action"]["url"] == "https://shop.example/p/101"
    assert "image_url" not in second

    quick = messenger_messages(Reply.from_message(
        {"text": "Pick one", "buttons": [{"title": "A very long button title indeed",
                                          "payload": "/faq"}]}, SHOP))
    (reply,) = quick
    assert reply["quick_replies"] == [{"content_type": "text", "title": "A very long button…",
                                       "payload": "/faq"}]
    assert len(reply["quick_replies"][0]["title"]) <= 20


def test_slack_shows_products_as_blocks_and_escapes_text() -> None:
    text_message, cards_message = slack_messages(Reply.from_message(SEARCH_MESSAGE, SHOP))
    assert text_message == {"text": "Here are red dresses:"}
    blocks = cards_message["blocks"]
    assert [b["type"] for b in blocks] == ["section", "actions", "section", "actions"]
    assert blocks[0]["text"]["text"] == ("*<https://shop.example/p/101|Red Wrap Dress>*\n"
                                         "Vero Moda · ₹899 (was ₹1,299, 31% off)")
    assert blocks[0]["accessory"]["image_url"] == "https://shop.example/images/101.jpg"
    assert blocks[1]["elements"][0]["value"] == "tell me about the first one"
    assert "Maxi &lt;Dress&gt; &amp; Belt" in blocks[2]["text"]["text"]
    assert "accessory" not in blocks[2]

    (buttons,) = slack_messages(Reply.from_message(
        {"text": "Pick", "buttons": [{"title": "Returns", "payload": "/check_refund_policy"}]},
        SHOP))
    assert buttons["blocks"][1]["elements"][0]["value"] == "/check_refund_policy"


def test_sms_gets_plain_text_with_numbered_products_and_links() -> None:
    text = sms_text(Reply.from_message(SEARCH_MESSAGE, SHOP))
    assert text.startswith("Here are red dresses:")
    assert ("1. Red Wrap Dress - Vero Moda · ₹899 (was ₹1,299, 31% off)\n"
            "https://shop.example/p/101") in text
    assert "2. Maxi <Dress> & Belt - Only · ₹1,999\nhttps://shop.example/p/102" in text
    long_text = sms_messages(Reply.from_message({"text": "word " * 800}, SHOP))
    assert len(long_text) == 3 and all(len(m["Body"]) <= 1600 for m in long_text)
    options = sms_text(Reply.from_message({"text": "Which?", "buttons": [
        {"title": "Shipping", "payload": "/a"}, {"title": "Returns", "payload": "/b"}]}, SHOP))
    assert options == "Which?\n\nReply with: Shipping / Returns"


def test_webhook_messages_carry_absolute_urls() -> None:
    out = webhook_message(SEARCH_MESSAGE, SHOP)
    first, second = out["custom"]["products"]
    assert out["text"] == SEARCH_MESSAGE["text"], "the bridge gets the text as the bot wrote it"
    assert first["image_url"] == "https://shop.example/images/101.jpg"
    assert first["url"] == "https://shop.example/p/101"
    assert second["image_url"] is None and first["price"] == 1299


def test_cart_payload_is_shown_as_text_everywhere() -> None:
    cart = {"type": "cart", "total": 2797, "savings": 400, "lines": [
        {"name": "Red Wrap Dress", "size": "M", "qty": 2, "line_total": 1798},
        {"name": "Belt", "qty": 1, "line_total": 999}]}
    reply = Reply.from_message({"custom": cart}, SHOP)
    expected = ("Your cart (3 items):\n1. Red Wrap Dress, size M × 2 - ₹1,798\n"
                "2. Belt × 1 - ₹999\nItems: ₹2,797 (you save ₹400)")
    assert reply.cart == expected
    assert telegram_calls(reply, 1) == [("sendMessage", {"chat_id": 1, "text": expected})]
    assert sms_text(reply) == expected


def test_malformed_payloads_render_what_they_can() -> None:
    broken = {"text": "Found:", "custom": {"type": "product_cards", "products": [
        "not a product", {"brand": "no name"}, {"name": "Odd", "price": "abc",
                                                "final_price": float("nan")}]}}
    reply = Reply.from_message(broken, SHOP)
    (card,) = reply.cards
    assert card.name == "Odd" and card.price_text == "" and card.position == 1
    assert Reply.from_message({"custom": {"type": "product_cards", "products": "x"}},
                              SHOP).cards == ()
    assert Reply.from_message({"custom": {"type": "mystery"}}, SHOP).empty
    assert telegram_calls(Reply.from_message({"text": None, "buttons": "x"}, SHOP), 1) == []


def test_cards_replace_the_numbered_list_with_their_intro() -> None:
    text = ("Closest matches:\n1. Red Wrap Dress - ₹899 · Red · id 101\n"
            "2. Maxi <Dress> & Belt - ₹1,999 · id 102")
    cards = {**CARDS, "intro": "Closest matches:"}
    reply = Reply.from_message({"text": text, "custom": cards}, SHOP)
    assert reply.text == "Closest matches:" and len(reply.cards) == 2
    assert Reply.from_message({"text": text}, SHOP).text == text, "no cards: the list stays"


def test_split_text_cuts_at_line_ends() -> None:
    assert split_text("a\n" + "b" * 8, 9) == ["a", "bbbbbbbb"]
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    assert split_text("  ", 10) == []


# -- inbound ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "expected"), [
    ("/start", "hello"),
    ("/start@ShopBot", "hello"),
    ("/checkout", "checkout"),
    ("/show red  dresses", "show red dresses"),
    ('/add_to_cart{"size": "M"}', 'add_to_cart{"size": "M"}'),
    ("  red dresses\nunder 1000 ", "red dresses under 1000"),
    ("/", ""),
])
def test_typed_text_never_reaches_rasa_as_an_intent(typed: str, expected: str) -> None:
    assert typed_text(typed) == expected
    assert not typed_text(typed).startswith("/")


def test_deduplicator_drops_recent_repeats_only() -> None:
    seen = Deduplicator(size=2, ttl_s=10)
    assert not seen.seen("a", now=0) and seen.seen("a", now=1)
    assert not seen.seen("", now=1) and not seen.seen("", now=1)
    assert not seen.seen("b", now=2) and not seen.seen("c", now=3)
    assert not seen.seen("a", now=4), "evicted when the memory is full"
    assert not seen.seen("c", now=20), "forgotten after the ttl"


# -- linking ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "verb", "code"), [
    ("link", "link", ""), ("/link", "link", ""), ("/link@ShopBot", "link", ""),
    ("Link 123456", "link", "123456"), ("link 123 456", "link", "123456"),
    ("/link 123-456", "link", "123456"), ("unlink", "unlink", ""), ("link!", "link", ""),
])
def test_link_commands(text: str, verb: str, code: str) -> None:
    command = parse_command(text)
    assert command is not None and (command.verb, command.code) == (verb, code)


@pytest.mark.parametrize("text", ["link to the red dress", "link 12345", "links", "unlink 123456",
                                  "send me the link", "", None, "link " + "1" * 100])
def test_other_text_is_not_a_link_command(text: str | None) -> None:
    assert parse_command(text) is None


def _code(reply: str | None) -> str:
    assert reply is not None
    match = re.search(r"\b(\d{6})\b", reply)
    assert match, reply
    return match.group(1)


def test_linking_makes_the_second_chat_an_alias_of_the_first(tmp_path: Path) -> None:
    store = LinkStore(Database(f"sqlite:///{tmp_path / 'shop.db'}"))
    code = _code(store.handle("telegram:1", "link", now=1000))
    assert store.handle("telegram:1", f"link {code}", now=1001).startswith("That code is for "
                                                                           "this chat")
    assert store.handle("twilio:+1555", f"link {code}", now=1002) == LINKED
    assert store.canonical("twilio:+1555") == "telegram:1"
    assert store.canonical("telegram:1") == "telegram:1"
    assert store.handle("twilio:+1555", f"link {code}", now=1003) == WRONG_CODE, "single use"
    assert store.handle("telegram:1", "hello", now=1004) is None

    # A third chat linking through the alias lands on the canonical chat, never a chain.
    code = _code(store.handle("twilio:+1555", "link", now=1005))
    assert store.handle("slack:T:U1", f"link {code}", now=1006) == LINKED
    assert store.canonical("slack:T:U1") == "telegram:1"
    code = _code(store.handle("slack:T:U1", "link", now=1007))
    assert store.handle("telegram:1", f"link {code}", now=1008) == ALREADY_LINKED

    # When a canonical chat links elsewhere, its aliases follow it.
    code = _code(store.handle("messenger:9", "link", now=1009))
    assert store.handle("telegram:1", f"link {code}", now=1010) == LINKED
    assert {store.canonical(s) for s in ("telegram:1", "twilio:+1555", "slack:T:U1")} == \
        {"messenger:9"}
    assert store.aliases("messenger:9") == ["slack:T:U1", "telegram:1", "twilio:+1555"]

    assert store.handle("slack:T:U1", "unlink") == UNLINKED
    assert store.canonical("slack:T:U1") == "slack:T:U1"
    assert store.handle("slack:T:U1", "unlink") == NOT_LINKED
    assert store.handle("messenger:9", "unlink") == UNLINKED_OTHERS
    assert store.canonical("telegram:1") == "telegram:1"
    tables = {row[0] for row in sqlite3.connect(tmp_path / "shop.db").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"sender_links", "sender_link_codes", "sender_link_failures"} <= tables


def test_link_codes_expire(tmp_path: Path) -> None:
    store = LinkStore(Database(f"sqlite:///{tmp_path / 'shop.db'}"))
    code = _code(store.handle("telegram:1", "link", now=1000))
    assert store.handle("web-1", f"link {code}", now=1000 + 601) == WRONG_CODE
    assert store.canonical("web-1") == "web-1"


def test_wrong_codes_are_limited_per_sender_and_overall(tmp_path: Path) -> None:
    store = LinkStore(Database(f"sqlite:///{tmp_path / 'shop.db'}"))
    code = _code(store.handle("telegram:1", "link", now=1000))
    wrong = "000000" if code != "000000" else "111111"
    for attempt in range(MAX_FAILURES_PER_SENDER):
        assert store.handle("guesser", f"link {wrong}", now=1001 + attempt) == WRONG_CODE
    assert store.handle("guesser", f"link {code}", now=1010) == TOO_MANY, \
        "even the right code is refused once a sender has guessed too often"
    assert store.canonical("guesser") == "guesser"
    for attempt in range(MAX_FAILURES_GLOBAL):
        store.handle(f"bot-{attempt}", f"link {wrong}", now=1020)
    assert store.handle("honest", f"link {code}", now=1030) == TOO_MANY
    assert store.handle("honest", f"link {code}", now=1020 + 3601) == WRONG_CODE, \
        "the code expired meanwhile, but the limit is lifted"


# -- photos -----------------------------------------------------------------------------------

def _image_bytes(size: tuple[int, int], image_format: str = "PNG", mode: str = "RGBA") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (200, 30, 30, 128) if mode == "RGBA" else 0).save(buffer,
                                                                            image_format)
    return buffer.getvalue()


def test_channel_photo_store_stores_a_reencoded_jpeg(tmp_path: Path) -> None:
    saver = UploadStore(tmp_path, max_bytes=5 * 1024 * 1024, max_pixels=40_000_000)
    ref = saver.save(_image_bytes((2400, 1200)))
    assert REF.match(ref)
    with Image.open(tmp_path / ref) as stored:
        assert stored.format == "JPEG" and stored.size == (1024, 512)
        red, green, _ = stored.getpixel((10, 10))
        assert red > 200 and green > 100, "transparency is flattened on white"
    assert [p.name for p in tmp_path.iterdir()] == [ref]


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty"),
    (b"%PDF-1.4 not a picture", "not_an_image"),
    (b"\xff\xd8\xff" + b"\x00" * 64, "not_an_image"),
    (_image_bytes((8, 8)), "too_small"),
    (_image_bytes((8000, 6000), mode="L"), "too_many_pixels"),
    (_image_bytes((64, 64), "BMP", "RGB"), "unsupported_format"),
    (_image_bytes((64, 64), "PNG") + b"x" * 3000, None),  # trailing bytes: still a picture
])
def test_channel_photo_store_refuses_bad_files_and_keeps_nothing(
    tmp_path: Path, data: bytes, reason: str | None
) -> None:
    saver = UploadStore(tmp_path, max_bytes=2 * 1024 * 1024, max_pixels=40_000_000)
    if reason is None:
        assert REF.match(saver.save(data))
        return
    with pytest.raises(ImageRejected) as refused:
        saver.save(data)
    assert refused.value.reason == reason and refused.value.message.endswith(".")
    assert list(tmp_path.iterdir()) == []


def test_channel_photo_store_refuses_animations_and_oversized_files(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (64, 64), colour) for colour in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    saver = UploadStore(tmp_path, max_bytes=4096, max_pixels=40_000_000)
    with pytest.raises(ImageRejected, match="animated"):
        saver.save(buffer.getvalue())
    with pytest.raises(ImageRejected, match="too large"):
        saver.save(b"\x89PNG" + b"\x00" * 5000)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
async def photo_host() -> AsyncIterator[TestServer]:
    """A real HTTP server on loopback standing in for a platform's media host."""
    jpeg = _image_bytes((64, 64), "JPEG", "RGB")
    seen_auth: list[str | None] = []

    async def photo(request: web.Request) -> web.Response:
        seen_auth.append(request.headers.get("Authorization"))
        return web.Response(body=jpeg, content_type="image/jpeg")

    async def huge(request: web.Request) -> web.StreamResponse:
        stream = web.StreamResponse()  # no Content-Length: the limit must hold while reading
        await stream.prepare(request)
        for _ in range(40):
            await stream.write(b"\xff" * 1024)
        return stream

    async def redirect(request: web.Request) -> web.Response:
        seen_auth.append(request.headers.get("Authorization"))
        target = request.query.get("to", "/photo.jpg")
        raise web.HTTPTemporaryRedirect(target)

    app = web.Application()
    app.router.add_get("/photo.jpg", photo)
    app.router.add_get("/huge", huge)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/missing", lambda _: web.Response(status=404))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    server.app[SEEN_AUTH] = seen_auth
    yield server
    await server.close()


async def test_download_follows_allowed_redirects_and_enforces_limits(
    photo_host: TestServer,
) -> None:
    base = f"http://127.0.0.1:{photo_host.port}"
    hosts = ("127.0.0.1",)
    seen_auth = photo_host.app[SEEN_AUTH]
    async with aiohttp.ClientSession() as session:
        data = await download(session, f"{base}/redirect", hosts, 100_000,
                              auth=aiohttp.BasicAuth("AC1", "token"))
        assert data.startswith(b"\xff\xd8")
        assert seen_auth[0] and seen_auth[0].startswith("Basic ")
        assert seen_auth[1].startswith("Basic "), "same host after the redirect: still signed in"

        seen_auth.clear()
        away = f"http://localhost:{photo_host.port}/photo.jpg"
        with pytest.raises(ImageRejected) as refused:
            await download(session, f"{base}/redirect?to={away}", hosts, 100_000,
                           auth=aiohttp.BasicAuth("AC1", "token"))
        assert refused.value.reason == "host_not_allowed"
        assert len(seen_auth) == 1, "the other host was never contacted"

        seen_auth.clear()
        await download(session, f"{base}/redirect?to={away}", (*hosts, "localhost"), 100_000,
                       auth=aiohttp.BasicAuth("AC1", "token"))
        assert seen_auth[0] and seen_auth[1] is None, "credentials stay with the first host"

        with pytest.raises(ImageRejected) as refused:
            await download(session, f"{base}/huge", hosts, 10_000)
        assert refused.value.reason == "too_large" and "limit" in refused.value.message
        with pytest.raises(ImageRejected, match="download_failed"):
            await download(session, f"{base}/missing", hosts, 10_000)
        with pytest.raises(ImageRejected, match="host_not_allowed"):
            await download(session, f"{base}/photo.jpg", ("api.telegram.org",), 10_000)
