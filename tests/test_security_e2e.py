"""Attacks on a running bot (real web server, Rasa and action server on loopback): forged and
replayed identities, direct calls to the internal servers, what listens where, and "forget
me" across linked chats. Each attack must be refused and must change nothing."""

from __future__ import annotations

import io
import json
import socket
import sqlite3
import time
import urllib.error
import urllib.request
from typing import Any

import jwt
import pytest
from PIL import Image

from retrieval.store import ProductStore
from shop.records import ShopRecords
from shopbot.stack import Stack
from shopcore.db import open_database, sender_links
from tests.conftest import CUSTOMER_TOKEN_SECRET
from tests.e2e import Browser, cards, cart_of, post_json, texts

pytestmark = pytest.mark.e2e

DEMO = "demo-shopper"
DEMO_ORDER = "SB-100103"  # shipped, to Bengaluru (shop.demo)


def customer(sub: str, expires_in: int = 600, key: str = CUSTOMER_TOKEN_SECRET
             ) -> dict[str, str]:
    token = jwt.encode({"sub": sub, "exp": int(time.time()) + expires_in}, key, "HS256")
    return {"Authorization": f"Bearer {token}"}


def chat(stack: Stack, who: Browser, text: str, headers: dict[str, str] | None = None,
         **extra: Any) -> tuple[int, Any]:
    return who.post(f"{stack.web_url}/api/chat", {"message": text, **extra}, headers)


def tracker_rows(stack: Stack, sender: str) -> int:
    with sqlite3.connect(stack.settings.tracker_db) as db:  # type: ignore[arg-type]
        return db.execute("SELECT COUNT(*) FROM events WHERE sender_id = ?",
                          (sender,)).fetchone()[0]


def demo_orders(stack: Stack) -> list[tuple[str, str, str]]:
    return [(o.order_id, str(o.status), o.address)
            for o in ShopRecords.open(stack.settings).orders.orders_of(DEMO)]


def test_a_sender_in_the_body_is_ignored(stack: Stack) -> None:
    before = demo_orders(stack)
    assert DEMO_ORDER in [order_id for order_id, _, _ in before]
    for forged in (DEMO, "telegram:1001", "customer:ann", "web:someone-else"):
        attacker = Browser()
        for text in (f"where is my order {DEMO_ORDER}?", "send me the invoice for SB-100101",
                     "cancel my order SB-100101", "forget me", "yes"):
            status, reply = chat(stack, attacker, text, sender=forged)
            assert status == 200, reply
            said = texts(reply)
            assert "Bengaluru" not in said and "shipped" not in said, (forged, text, said)
    assert demo_orders(stack) == before, "nothing of the demo shopper changed"


def test_a_tampered_or_replayed_cookie_is_a_stranger(stack: Stack) -> None:
    shopper = Browser()
    status, _ = shopper.post(f"{stack.web_url}/api/session/demo", {})
    assert status == 200
    status, reply = chat(stack, shopper, f"where is my order {DEMO_ORDER}?")
    assert status == 200 and "shipped" in texts(reply), "the demo session is the demo shopper"
    (cookie,) = [c for c in shopper.cookies if c.name == "shopbot_session"]
    body, _, signature = cookie.value.rpartition(".")
    version, _, session, issued = body.split(".")
    forgeries = [
        f"{version}.d.{'B' * 24}.{issued}.{signature}",  # another session, same signature
        f"{version}.d.{session}.{int(issued) - 100}.{signature}",  # dated by hand
        f"{body}.{'0' * 64}",
    ]
    for forged in forgeries:
        status, reply = post_json(f"{stack.web_url}/api/chat",
                                  {"message": f"where is my order {DEMO_ORDER}?"},
                                  headers={"Cookie": f"shopbot_session={forged}"})
        assert status == 200 and "shipped" not in texts(reply), forged


def test_customer_tokens_forged_or_expired_are_refused(stack: Stack) -> None:
    someone = Browser()
    refused = [customer("mallory", expires_in=-5), customer("ann", key="x" * 40),
               customer("ann", expires_in=10**7), {"Authorization": "Bearer a.b.c"}]
    for headers in refused:
        status, body = chat(stack, someone, "show my orders", headers)
        assert status == 401 and "sign in" in body["error"]
    assert tracker_rows(stack, "customer:mallory") == 0 and tracker_rows(stack, "customer:ann") == 0
    status, reply = chat(stack, someone, f"where is my order {DEMO_ORDER}?", customer("ann"))
    assert status == 200 and "shipped" not in texts(reply), "a customer sees only their own"
    assert tracker_rows(stack, "customer:ann") > 0


def test_an_anonymous_web_session_cannot_redeem_a_link_code(stack: Stack) -> None:
    status, reply = chat(stack, Browser(), "link 123456")
    assert status == 200 and "sign in" in texts(reply)


def _get(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                    timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_rasa_and_the_action_server_refuse_direct_calls(stack: Stack) -> None:
    hostile = {"sender": DEMO, "message": f"where is my order {DEMO_ORDER}?"}
    rest = f"{stack.rasa_url}/webhooks/rest/webhook"
    for headers in ({}, {"X-Shopbot-Internal": "wrong"}, {"X-Shopbot-Internal": ""}):
        status, body = post_json(rest, hostile, headers=headers)
        assert status == 401, body
    status, _ = post_json(f"{stack.web_url}/webhooks/rest/webhook", hostile)
    assert status == 404, "the web server does not pass the REST channel through"
    # Rasa runs without its HTTP API: no reading or editing a conversation from outside.
    assert _get(f"{stack.rasa_url}/conversations/{DEMO}/tracker") == 404
    assert _get(f"{stack.rasa_url}/status") == 404
    assert _get(f"{stack.rasa_url}/socket.io/?EIO=4&transport=polling") == 404

    call = {"next_action": "action_forget_me", "sender_id": DEMO,
            "tracker": {"sender_id": DEMO, "slots": {}, "latest_message": {}, "events": [],
                        "paused": False, "followup_action": None, "active_loop": {},
                        "latest_action_name": None},
            "domain": {}, "version": "3.6.21"}
    before = demo_orders(stack)
    for query in ("", "?token=", "?token=guess", "?token=" + "x" * 64):
        status, body = post_json(f"{stack.action_url}/webhook{query}", call)
        assert status == 401, body
    assert _get(f"{stack.action_url}/actions") == 401
    assert demo_orders(stack) == before
    # The right token does run actions (so the refusals above are the token's doing).
    harmless = {**call, "next_action": "action_view_cart", "sender_id": "e2e-direct",
                "tracker": {**call["tracker"], "sender_id": "e2e-direct"}}
    status, body = post_json(
        f"{stack.action_url}/webhook?token={stack.settings.internal_secret}", harmless)
    assert status == 200 and body["responses"], body
    assert _get(f"{stack.action_url}/health") == 200


def _outside_address() -> str | None:
    """This machine's address on its network (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_internal_servers_listen_on_loopback_only(stack: Stack) -> None:
    address = _outside_address()
    if address is None:
        pytest.skip("this machine has no network address besides loopback")
    for port in (stack.settings.rasa_port, stack.settings.action_port):
        with socket.socket() as sock:
            sock.settimeout(2)
            assert sock.connect_ex((address, port)) != 0, f"port {port} answers on {address}"
        with socket.socket() as sock:
            sock.settimeout(2)
            assert sock.connect_ex(("127.0.0.1", port)) == 0


def _photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 96), (200, 30, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


def _upload(stack: Stack, who: Browser, headers: dict[str, str]) -> str:
    boundary = "forget-me-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"me.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() + _photo() + \
        f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"{stack.web_url}/api/upload", data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **headers})
    with who.opener.open(request, timeout=60) as response:
        return json.loads(response.read())["ref"]


def test_forget_me_deletes_every_linked_chat_at_once(stack: Stack) -> None:
    """A web visitor links a signed-in account to their session; "forget me" from the
    account deletes both chats' data, photos and conversations, with no waiting."""
    visitor, account = Browser(), Browser()
    status, reply = chat(stack, visitor, "link")
    code = texts(reply).split("code is ")[1][:6]
    ann = customer("forget-ann")
    status, reply = chat(stack, account, f"link {code}", ann)
    assert status == 200 and "Linked" in texts(reply)
    database = open_database(stack.settings.shop_database_url)
    with database.read() as conn:
        (canonical,) = conn.execute(sender_links.select().where(
            sender_links.c.alias == "customer:forget-ann")).fetchall()
    web_sender = canonical.canonical
    assert web_sender.startswith("web:")

    ref = _upload(stack, account, ann)
    status, reply = chat(stack, account, "", ann, upload=ref)
    assert status == 200
    chat(stack, visitor, "I'm a size 9 and my budget is 1500")
    status, found = chat(stack, account, "show me red dresses", ann)
    (first,) = ProductStore.from_settings(stack.settings).get([cards(found)[0]["id"]])
    size = f" in size {first.sizes[0]}" if first.sizes else ""
    status, added = chat(stack, account, f"add the first one{size}", ann)
    assert cart_of(added), texts(added)
    uploads = stack.settings.uploads_dir
    assert (uploads / ref).is_file()  # type: ignore[operator]
    records = ShopRecords.open(stack.settings)
    assert records.cart.lines(web_sender) and not records.profiles.get(web_sender).is_empty

    status, asked = chat(stack, account, "forget me", ann)
    assert "Go ahead?" in texts(asked)
    status, gone = chat(stack, account, "yes", ann)
    assert status == 200 and "deleted" in texts(gone)
    # Checked right after the answer: Rasa saved the turn, the channel purged it after.
    for sender in (web_sender, "customer:forget-ann"):
        assert tracker_rows(stack, sender) == 0, sender
        assert records.cart.lines(sender) == [] and records.profiles.get(sender).is_empty
        assert records.events.recent_items(sender) == []
    assert not (uploads / ref).exists(), "the photo they sent is gone"  # type: ignore[operator]
    with database.read() as conn:
        assert conn.execute(sender_links.select().where(
            sender_links.c.canonical == web_sender)).fetchall() == []
