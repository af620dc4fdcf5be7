"""The staff console (/console): staff accounts on SQLite and PostgreSQL, `shopbot staff` as
installed, and sign-in, the guard on every route, CSRF, the sign-in rate limit and the
tickets page against ``create_app`` with a real SQLite shop database."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import jwt
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from sqlalchemy import (
    select,
)

from recsys.events import EventType
from retrieval.store import ProductStore
from shop.events import EventLog
from shop.searches import SearchLog
from shop.staff import BadEmail, DuplicateEmail, StaffStore, WeakPassword, display_name
from shop.teaching import group_by_meaning
from shop.tickets import TicketStore
from shopbot.console.state import CONSOLE, FailureCounter
from shopbot.console.teach import domain_intents
from shopbot.identity import (
    SESSION_COOKIE,
    STAFF_COOKIE,
    anonymous,
    csrf_token,
    mint_cookie,
    mint_staff_cookie,
    new_session_id,
    read_staff_cookie,
)
from shopbot.stack import bot_fingerprint
from shopbot.web import create_app
from shopcore.db import Database, close_databases, open_database, staff
from shopcore.keys import session_key, staff_session_key
from shopcore.outbox import WidgetOutbox
from shopcore.settings import Settings
from tests.rasa_events import rasa_saves

SHOPBOT = Path(sys.executable).parent / "shopbot"
EMAIL = "ann@shop.example"
PASSWORD = "correct horse battery"
TOKEN_SECRET = "test-console-customer-token-key-32-bytes"
# Cheap argon2 parameters where the cost is not what a test is about.
FAST = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
FORM_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


class CountingHasher(PasswordHasher):
    """The real hasher, counting its checks (to see unknown emails cost one too)."""

    checks = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        type(self).checks += 1
        return super().verify(hash, password)


# -- staff accounts, on each engine ---------------------------------------------------------


@pytest.fixture
def database(any_database_url: str) -> Iterator[Database]:
    database = Database(any_database_url)
    yield database
    database.dispose()


def stored_hash(database: Database, email: str) -> str:
    with database.read() as conn:
        return conn.execute(select(staff.c.password_hash).where(staff.c.email == email)).scalar()


def test_staff_accounts_add_verify_disable(database: Database) -> None:
    store = StaffStore(database, FAST)
    member = store.add("  Ann@Shop.Example ", PASSWORD)
    assert member.email == EMAIL and not member.disabled and member.last_login_at is None
    hashed = stored_hash(database, EMAIL)
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed

    signed = store.verify("ANN@shop.example", PASSWORD)
    assert signed is not None and signed.staff_id == member.staff_id
    assert signed.last_login_at is not None
    assert store.verify(EMAIL, PASSWORD + "!") is None
    assert store.verify("bob@shop.example", PASSWORD) is None
    assert store.verify(EMAIL, "x" * 5000) is None

    with pytest.raises(DuplicateEmail, match="already has an account"):
        store.add("ANN@shop.example", "another long password")
    with pytest.raises(WeakPassword, match="at least 12"):
        store.add("bob@shop.example", "short pass")
    with pytest.raises(BadEmail):
        store.add("not an email", PASSWORD)
    assert [m.email for m in store.all()] == [EMAIL]

    assert store.active(member.staff_id) is not None
    assert store.disable("Ann@shop.example") is True
    assert store.active(member.staff_id) is None
    assert store.verify(EMAIL, PASSWORD) is None
    assert store.disable("nobody@shop.example") is False
    assert [m.disabled for m in store.all()] == [True]


def test_an_outdated_hash_is_replaced_at_the_next_sign_in(database: Database) -> None:
    StaffStore(database, FAST).add(EMAIL, PASSWORD)
    old = stored_hash(database, EMAIL)
    current = PasswordHasher()
    assert current.check_needs_rehash(old)
    store = StaffStore(database, current)
    assert store.verify(EMAIL, "wrong password here") is None
    assert stored_hash(database, EMAIL) == old  # only a right password is rehashed
    assert store.verify(EMAIL, PASSWORD) is not None
    new = stored_hash(database, EMAIL)
    assert new != old and not current.check_needs_rehash(new)
    assert store.verify(EMAIL, PASSWORD) is not None


def test_an_unknown_email_costs_a_password_check_too(database: Database) -> None:
    hasher = CountingHasher(time_cost=1, memory_cost=64, parallelism=1)
    store = StaffStore(database, hasher)
    store.add(EMAIL, PASSWORD)
    CountingHasher.checks = 0
    assert store.verify("nobody@shop.example", PASSWORD) is None
    assert store.verify(EMAIL, "wrong password here") is None
    assert CountingHasher.checks == 2


# -- `shopbot staff` as installed -----------------------------------------------------------


def test_shopbot_staff_commands(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SHOPBOT_DATABASE_URL"}
    env["SHOPBOT_VAR_DIR"] = str(tmp_path / "var")

    def staff_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SHOPBOT), "staff", *args], input=stdin, cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)

    added = staff_cli("add", "Ann@Shop.example", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "added for ann@shop.example" in added.stderr
    duplicate = staff_cli("add", EMAIL, "--password-stdin", stdin="another long password\n")
    assert duplicate.returncode == 1 and "already has an account" in duplicate.stderr
    weak = staff_cli("add", "bob@shop.example", "--password-stdin", stdin="tooshort\n")
    assert weak.returncode == 1 and "at least 12 characters" in weak.stderr
    empty = staff_cli("add", "bob@shop.example", "--password-stdin")
    assert empty.returncode == 1 and "too short" in empty.stderr
    bad = staff_cli("add", "bob", "--password-stdin", stdin=PASSWORD + "\n")
    assert bad.returncode == 1 and "not an email address" in bad.stderr

    database = Database(f"sqlite:///{tmp_path / 'var' / 'shop.db'}")
    try:  # what was piped in is the password, newline aside
        store = StaffStore(database)
        assert store.verify(EMAIL, PASSWORD) is not None
        assert store.verify(EMAIL, PASSWORD + "\n") is None
        assert [m.email for m in store.all()] == [EMAIL]  # nothing of the refused ones
    finally:
        database.dispose()

    listed = staff_cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["email"], r["disabled"]) for r in rows] == [(EMAIL, False)]
    assert rows[0]["last_login_at"] is not None
    assert "active" in staff_cli("list").stderr
    disabled = staff_cli("disable", "ANN@shop.example")
    assert disabled.returncode == 0, disabled.stderr
    assert json.loads(staff_cli("list", "--json").stdout)["disabled"] is True
    unknown = staff_cli("disable", "nobody@shop.example")
    assert unknown.returncode == 1 and "no staff account" in unknown.stderr


def test_shopbot_staff_add_asks_twice_on_a_hidden_prompt(tmp_path: Path) -> None:
    import pexpect

    env = {k: v for k, v in os.environ.items() if k != "SHOPBOT_DATABASE_URL"}
    env["SHOPBOT_VAR_DIR"] = str(tmp_path / "var")
    child = pexpect.spawn(str(SHOPBOT), ["staff", "add", EMAIL], cwd=str(tmp_path), env=env,
                          encoding="utf-8", timeout=60)
    child.logfile_read = screen = io.StringIO()  # what the terminal shows
    child.expect("Password: ")
    child.sendline(PASSWORD)
    child.expect("Repeat for confirmation: ")
    child.sendline("not the same password")
    child.expect("do not match")
    child.expect("Password: ")  # asked again, both times
    child.sendline(PASSWORD)
    child.expect("Repeat for confirmation: ")
    child.sendline(PASSWORD)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and "added for" in child.before
    assert PASSWORD not in screen.getvalue() and "not the same" not in screen.getvalue()
    database = Database(f"sqlite:///{tmp_path / 'var' / 'shop.db'}")
    try:
        assert StaffStore(database).verify(EMAIL, PASSWORD) is not None
    finally:
        database.dispose()


# -- the console in the web server ------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(var_dir=tmp_path / "var", store_dir=tmp_path / "store",
                    database_url=f"sqlite:///{tmp_path / 'shop.db'}",
                    customer_token_secret=TOKEN_SECRET, demo=False)


async def app_client(settings: Settings, tmp_path: Path) -> TestClient:
    return TestClient(TestServer(create_app(settings, ProductStore(tmp_path / "store"))))


@pytest.fixture
async def client(settings: Settings, tmp_path: Path) -> AsyncIterator[TestClient]:
    async with await app_client(settings, tmp_path) as test_client:
        yield test_client
    close_databases()


@pytest.fixture
def accounts(settings: Settings) -> StaffStore:
    """The staff store the app uses (the same database, default argon2 parameters)."""
    return StaffStore(open_database(settings.shop_database_url))


async def sign_in(client: TestClient, email: str = EMAIL,
                  password: str = PASSWORD) -> ClientResponse:
    form = await client.get("/console/login")
    assert form.status == 200
    found = FORM_TOKEN.search(await form.text())
    assert found
    return await client.post("/console/login", allow_redirects=False,
                             data={"email": email, "password": password,
                                   "csrf": found.group(1)})


async def console_csrf(client: TestClient) -> str:
    page = await client.get("/console", allow_redirects=False)
    assert page.status == 200
    found = CSRF_META.search(await page.text())
    assert found
    return found.group(1)


def sets_staff_cookie(response: ClientResponse) -> bool:
    return any(h.startswith(STAFF_COOKIE + "=") for h in response.headers.getall("Set-Cookie", []))


def staff_cookie_header(response: ClientResponse) -> str:
    return next(h for h in response.headers.getall("Set-Cookie")
                if h.startswith(STAFF_COOKIE + "="))


async def test_staff_signs_in_and_sees_the_console(
    client: TestClient, accounts: StaffStore
) -> None:
    accounts.add(EMAIL, PASSWORD)
    before = await client.get("/console", allow_redirects=False)
    assert before.status == 302 and before.headers["Location"] == "/console/login"

    done = await sign_in(client, "Ann@Shop.example")
    assert done.status == 303 and done.headers["Location"] == "/console"
    cookie = staff_cookie_header(done)
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=28800"):
        assert attribute in cookie, cookie
    assert "Secure" not in cookie  # plain http, secure_cookies off

    page = await client.get("/console", allow_redirects=False)
    text = await page.text()
    assert page.status == 200 and "Open handoff tickets" in text and EMAIL in text
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    assert '<link rel="stylesheet" href="/console/static/console.css">' in text
    api = await client.get("/console/api/tickets")
    assert api.status == 200 and await api.json() == {"tickets": []}
    again = await client.get("/console/login", allow_redirects=False)
    assert again.status == 302 and again.headers["Location"] == "/console"
    assert accounts.find(EMAIL).last_login_at is not None  # type: ignore[union-attr]


async def test_the_staff_cookie_is_secure_when_the_settings_say_so(
    settings: Settings, tmp_path: Path, accounts: StaffStore
) -> None:
    accounts.add(EMAIL, PASSWORD)
    async with await app_client(settings.replace(secure_cookies=True), tmp_path) as client:
        form = await client.get("/console/login")
        nonce = form.cookies["shopbot_staff_login"]
        assert nonce["secure"] and nonce["samesite"] == "Strict"
        token = FORM_TOKEN.search(await form.text()).group(1)  # type: ignore[union-attr]
        # The test client (plain http) keeps Secure cookies to itself: hand it over.
        done = await client.post("/console/login", allow_redirects=False,
                                 cookies={"shopbot_staff_login": nonce.value},
                                 data={"email": EMAIL, "password": PASSWORD, "csrf": token})
        assert done.status == 303 and "Secure" in staff_cookie_header(done)
    close_databases()


async def test_wrong_password_and_unknown_email_are_refused_alike(
    client: TestClient, accounts: StaffStore
) -> None:
    accounts.add(EMAIL, PASSWORD)
    wrong = await sign_in(client, EMAIL, "not the password")
    unknown = await sign_in(client, "bob@shop.example", PASSWORD)
    for refused in (wrong, unknown):
        assert refused.status == 401 and "Wrong email or password." in await refused.text()
        assert not sets_staff_cookie(refused)
    assert (await client.get("/console", allow_redirects=False)).status == 302


async def test_the_login_form_needs_its_own_token(
    client: TestClient, accounts: StaffStore
) -> None:
    accounts.add(EMAIL, PASSWORD)
    bare = await client.post("/console/login", allow_redirects=False,
                             data={"email": EMAIL, "password": PASSWORD})
    assert bare.status == 403
    form = await client.get("/console/login")
    token = FORM_TOKEN.search(await form.text()).group(1)  # type: ignore[union-attr]
    client.session.cookie_jar.clear()  # another browser: the token is not tied to its nonce
    foreign = await client.post("/console/login", allow_redirects=False,
                                data={"email": EMAIL, "password": PASSWORD, "csrf": token})
    assert foreign.status == 403
    assert not sets_staff_cookie(foreign)
    assert (await sign_in(client)).status == 303


async def test_sign_in_is_refused_after_five_failures_for_an_email(
    client: TestClient, accounts: StaffStore, caplog: pytest.LogCaptureFixture
) -> None:
    accounts.add(EMAIL, PASSWORD)
    caplog.set_level(logging.INFO)
    for attempt in range(5):
        failed = await sign_in(client, EMAIL, f"guess number {attempt}")
        assert failed.status == 401
    blocked = await sign_in(client, EMAIL, PASSWORD)  # right, but too late
    assert blocked.status == 429 and "Too many failed sign-ins" in await blocked.text()
    assert not sets_staff_cookie(blocked)
    assert (await sign_in(client, "bob@shop.example", "whatever it is")).status == 401
    assert "guess number" not in caplog.text and PASSWORD not in caplog.text
    assert "failed sign-in for 'ann@shop.example'" in caplog.text


async def test_sign_in_is_refused_after_twenty_failures_from_one_address(
    client: TestClient, accounts: StaffStore
) -> None:
    accounts.add(EMAIL, PASSWORD)
    for n in range(20):
        assert (await sign_in(client, f"guess{n}@shop.example", PASSWORD)).status == 401
    assert (await sign_in(client, EMAIL, PASSWORD)).status == 429


def test_failures_leave_the_window() -> None:
    counter = FailureCounter(limit=5, window=900)
    for second in range(5):
        assert not counter.blocked("a", now=second)
        counter.failed("a", now=second)
    assert counter.blocked("a", now=10) and not counter.blocked("b", now=10)
    assert counter.blocked("a", now=899)
    assert not counter.blocked("a", now=900.5)  # the first failure has left the window
    counter.clear("a")
    assert not counter.blocked("a", now=11)


def console_routes(app: web.Application) -> tuple[set[str], list[tuple[str, str]]]:
    """The console's public resources and every other (method, path) of its route table."""
    console_app = next(r.get_info()["app"] for r in app.router.resources()
                       if r.get_info().get("prefix") == "/console")
    public = console_app[CONSOLE].public
    guarded = [(route.method, re.sub(r"\{[^}]+\}", "x", route.resource.canonical))
               for route in console_app.router.routes() if route.resource not in public]
    return {r.canonical for r in public}, guarded


async def test_every_console_route_refuses_anonymous_visitors_and_shoppers(
    client: TestClient, settings: Settings
) -> None:
    public, guarded = console_routes(client.server.app)
    assert public == {"/console/login", "/console/static"}
    assert {("GET", "/console"), ("GET", "/console/api/tickets"),
            ("POST", "/console/logout")} <= set(guarded)
    guarded += [("GET", "/console/nope"), ("GET", "/console/api/nope"),
                ("DELETE", "/console/api/tickets")]

    shopper_cookie = mint_cookie(session_key(settings), anonymous(new_session_id()))
    token = jwt.encode({"sub": "cust-7", "exp": int(time.time()) + 600}, TOKEN_SECRET,
                       algorithm="HS256")
    # Each of these is a real shopper identity (the shopper API takes it) ...
    assert (await (await client.get("/api/session", cookies={SESSION_COOKIE: shopper_cookie})
                   ).json())["kind"] == "anonymous"
    assert (await (await client.get("/api/session", headers={"Authorization": f"Bearer {token}"})
                   ).json())["kind"] == "customer"
    visitors: dict[str, dict[str, object]] = {
        "anonymous": {},
        "shopper cookie": {"cookies": {SESSION_COOKIE: shopper_cookie}},
        "shopper cookie as staff": {"cookies": {STAFF_COOKIE: shopper_cookie}},
        "customer token": {"headers": {"Authorization": f"Bearer {token}"}},
    }
    # ... and none opens any console route.
    for method, path in guarded:
        for who, extra in visitors.items():
            client.session.cookie_jar.clear()
            response = await client.request(method, path, allow_redirects=False, **extra)
            if path.startswith("/console/api/"):
                assert response.status == 401, (method, path, who)
                if method != "HEAD":
                    assert "Sign in" in (await response.json())["error"]
            else:
                assert response.status == 302, (method, path, who)
                assert response.headers["Location"] == "/console/login"
    assert (await client.get("/console/static/console.css")).status == 200


def tampered(value: str) -> str:
    """``value`` with its last (hex) character changed, whatever it was."""
    return value[:-1] + ("1" if value.endswith("0") else "0")


async def test_only_cookies_signed_with_the_staff_key_count(
    client: TestClient, settings: Settings, accounts: StaffStore
) -> None:
    member = accounts.add(EMAIL, PASSWORD)
    session = new_session_id()
    staff_key = staff_session_key(settings)
    assert staff_key != session_key(settings)
    cookies = {
        "shopper key": mint_staff_cookie(session_key(settings), member.staff_id, session),
        "expired": mint_staff_cookie(staff_key, member.staff_id, session,
                                     now=time.time() - 8 * 3600 - 5),
        "tampered": tampered(mint_staff_cookie(staff_key, member.staff_id, session)),
        "unknown member": mint_staff_cookie(staff_key, "x" * 16, session),
    }
    for why, value in cookies.items():
        response = await client.get("/console/api/tickets", cookies={STAFF_COOKIE: value})
        assert response.status == 401, why
    good = mint_staff_cookie(staff_key, member.staff_id, session)
    assert read_staff_cookie(staff_key, good) is not None
    response = await client.get("/console/api/tickets", cookies={STAFF_COOKIE: good})
    assert response.status == 200


async def test_changes_need_the_session_csrf_token(
    client: TestClient, accounts: StaffStore, settings: Settings, tmp_path: Path
) -> None:
    accounts.add(EMAIL, PASSWORD)
    assert (await sign_in(client)).status == 303
    token = await console_csrf(client)
    async with await app_client(settings, tmp_path) as other:  # another staff session
        assert (await sign_in(other)).status == 303
        other_token = await console_csrf(other)
    assert other_token != token

    refused = [
        await client.post("/console/logout", allow_redirects=False),
        await client.post("/console/logout", allow_redirects=False,
                          headers={"X-CSRF-Token": "0" * 64}),
        await client.post("/console/logout", allow_redirects=False, data={"csrf": "nope"}),
        await client.post("/console/logout", allow_redirects=False,
                          headers={"X-CSRF-Token": other_token}),
        await client.post("/console/logout", allow_redirects=False,
                          data={"csrf": csrf_token(session_key(settings), "x" * 24)}),
    ]
    assert [r.status for r in refused] == [403] * 5
    api = await client.delete("/console/api/tickets")
    assert api.status == 403 and "CSRF" in (await api.json())["error"]
    assert (await client.get("/console", allow_redirects=False)).status == 200  # still in

    out = await client.post("/console/logout", allow_redirects=False,
                            headers={"X-CSRF-Token": token})
    assert out.status == 303 and out.headers["Location"] == "/console/login"
    assert (await client.get("/console", allow_redirects=False)).status == 302

    assert (await sign_in(client)).status == 303  # and the form field works as well
    form_out = await client.post("/console/logout", allow_redirects=False,
                                 data={"csrf": await console_csrf(client)})
    assert form_out.status == 303


async def test_a_disabled_member_loses_access_at_the_next_request(
    client: TestClient, accounts: StaffStore
) -> None:
    accounts.add(EMAIL, PASSWORD)
    assert (await sign_in(client)).status == 303
    assert (await client.get("/console/api/tickets")).status == 200
    assert accounts.disable(EMAIL)
    assert (await client.get("/console/api/tickets")).status == 401
    page = await client.get("/console", allow_redirects=False)
    assert page.status == 302 and page.headers["Location"] == "/console/login"
    assert (await sign_in(client)).status == 401


async def test_open_tickets_are_listed_with_shopper_text_escaped(
    client: TestClient, accounts: StaffStore, settings: Settings
) -> None:
    accounts.add(EMAIL, PASSWORD)
    tickets = TicketStore(open_database(settings.shop_database_url))
    session = new_session_id()
    opened = tickets.create(
        f"web:{session}", "<script>alert('reason')</script>",
        [{"role": "user", "text": "first message, not among the last three"},
         {"role": "bot", "text": "How can I help?"},
         {"role": "user", "text": '<img src=x onerror="alert(1)">'},
         {"role": "bot", "text": "Fish & chips"}]).ticket
    closed = tickets.create("telegram:4242", "closed one", [{"role": "user", "text": "hi"}])
    assert opened is not None and closed.ticket is not None
    tickets.close(closed.ticket.ticket_id)
    assert (await sign_in(client)).status == 303

    text = await (await client.get("/console")).text()
    assert opened.ticket_id in text and closed.ticket.ticket_id not in text
    assert "<script>alert" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(&#x27;reason&#x27;)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in text
    assert "Fish &amp; chips" in text and "not among the last three" not in text
    assert session not in text and f"web:{session[:6]}…" in text

    payload = await (await client.get("/console/api/tickets")).json()
    assert [t["ticket_id"] for t in payload["tickets"]] == [opened.ticket_id]
    view = payload["tickets"][0]
    assert view["reason"] == "<script>alert('reason')</script>"  # JSON: data, not markup
    assert view["shopper"] == f"web:{session[:6]}…" and view["turns"] == 4
    assert [t["text"] for t in view["last_turns"]] == [
        "How can I help?", '<img src=x onerror="alert(1)">', "Fish & chips"]


# -- human handoff: holding a ticket, the widget outbox, the ticket page -----------------------

OTHER = "bo@shop.example"


def test_one_person_at_a_time_holds_a_ticket(database: Database) -> None:
    tickets = TicketStore(database)
    ticket = tickets.create("web:handoff-1", "wants a person", []).ticket
    assert ticket is not None and ticket.held_by is None
    assert tickets.holder("web:handoff-1") is None

    taken = tickets.take(ticket.ticket_id, EMAIL)
    assert taken is not None and taken.held_by == EMAIL and taken.held_at is not None
    assert tickets.take(ticket.ticket_id, OTHER) is None  # somebody has it
    assert tickets.take(ticket.ticket_id, EMAIL) is not None  # the holder again: fine
    assert tickets.holder("web:handoff-1") == EMAIL
    assert tickets.hand_back(ticket.ticket_id, OTHER) is None  # not theirs to hand back
    # A handoff asked for again while held refreshes the same ticket, still held.
    again = tickets.create("web:handoff-1", "still waiting", [])
    assert again.reused and again.ticket is not None and again.ticket.held_by == EMAIL

    back = tickets.hand_back(ticket.ticket_id, EMAIL)
    assert back is not None and back.status == "closed" and back.held_by is None
    assert tickets.holder("web:handoff-1") is None
    assert tickets.take(ticket.ticket_id, OTHER) is None  # closed
    assert tickets.take("T-\x00", EMAIL) is None

    other = tickets.create("web:handoff-2", "x", []).ticket
    assert other is not None and tickets.take(other.ticket_id, OTHER) is not None
    assert tickets.untake(other.ticket_id, OTHER)
    assert tickets.holder("web:handoff-2") is None


def test_the_widget_outbox_keeps_order_per_conversation_and_refuses_junk(
        database: Database) -> None:
    outbox = WidgetOutbox(database)
    assert outbox.last_id("web:box-1") == 0
    first = outbox.put("web:box-1", {"text": "Hi, Ann here", "staff": "Ann", "timestamp": 1.0,
                                     "recipient_id": "web:box-1"})
    outbox.put("web:box-2", {"text": "someone else's"})
    second = outbox.put("web:box-1", {"text": "x" * 5000, "notice": True})
    assert first is not None and second is not None and second > first
    assert outbox.put("web:box-1", {"text": "  "}) is None
    assert outbox.put("web:box-1", {"image": "http://x/y.png"}) is None
    assert outbox.put("x" * 500, {"text": "hi"}) is None
    assert outbox.put("web:\x00", {"text": "hi"}) is None
    got = outbox.since("web:box-1", 0)
    assert [m["id"] for m in got] == [first, second]
    assert got[0] == {"id": first, "text": "Hi, Ann here", "staff": "Ann"}  # nothing else
    assert len(got[1]["text"]) == 4000 and got[1]["notice"] is True
    assert outbox.since("web:box-1", first) == [got[1]]
    assert outbox.last_id("web:box-1") == second
    tickets = TicketStore(database)
    tickets.delete_for("web:box-1")  # "forget me" takes what staff wrote with the tickets
    assert outbox.since("web:box-1", 0) == [] and len(outbox.since("web:box-2", 0)) == 1


def test_staff_names_shown_to_shoppers_never_show_the_address() -> None:
    assert display_name("ann.lee@shop.example") == "Ann"
    assert display_name("bo_k@shop.example") == "Bo"
    assert display_name("@shop.example") == "Our team"


async def test_the_ticket_page_shows_the_conversation_cart_and_orders(
    client: TestClient, accounts: StaffStore, settings: Settings
) -> None:
    accounts.add(EMAIL, PASSWORD)
    database = open_database(settings.shop_database_url)
    sender = f"web:{new_session_id()}"
    ticket = TicketStore(database).create(
        sender, "where is my parcel", [{"role": "user", "text": "<b>where</b> is it?"},
                                       {"role": "bot", "text": "Let me find someone."}]).ticket
    assert ticket is not None
    assert (await sign_in(client)).status == 303
    page = await client.get(f"/console/tickets/{ticket.ticket_id}")
    text = await page.text()
    assert page.status == 200
    assert "&lt;b&gt;where&lt;/b&gt; is it?" in text and "<b>where</b>" not in text
    assert 'action="/console/tickets/' + ticket.ticket_id + '/take"' in text
    assert "Cart</h2><ul class=\"cart\"><li>Empty</li>" in text
    assert (await client.get("/console/tickets/T-NOPE00")).status == 404
    assert (await client.get("/console/tickets/..%2F..%2Fetc")).status == 404

    data = await (await client.get(f"/console/api/tickets/{ticket.ticket_id}")).json()
    # No tracker store in this app: the ticket's own copy of the conversation.
    assert [t["text"] for t in data["turns"]] == ["<b>where</b> is it?", "Let me find someone."]
    assert data["held_by"] is None and data["cart"] == [] and data["orders"] == []
    assert (await client.get(f"/console/api/tickets/{ticket.ticket_id}?after=x")).status == 400


async def test_taking_a_ticket_when_the_bot_cannot_be_paused_leaves_it_with_the_bot(
    client: TestClient, accounts: StaffStore, settings: Settings
) -> None:
    """Rasa is not running here: the take fails, says so, and nobody holds the ticket (the
    bot would otherwise answer a shopper the console claims a person has)."""
    accounts.add(EMAIL, PASSWORD)
    tickets = TicketStore(open_database(settings.shop_database_url))
    ticket = tickets.create("web:unpaused", "help", []).ticket
    assert ticket is not None
    assert (await sign_in(client)).status == 303
    csrf = await console_csrf(client)
    base = f"/console/tickets/{ticket.ticket_id}"
    taken = await client.post(f"{base}/take", data={"csrf": csrf}, allow_redirects=False)
    assert taken.status == 502
    assert "Could not pause the bot" in await taken.text()
    assert tickets.holder("web:unpaused") is None
    # Replying or handing back a conversation one does not hold is refused.
    for action in ("reply", "hand-back"):
        refused = await client.post(f"{base}/{action}", data={"csrf": csrf, "text": "hi"},
                                    allow_redirects=False)
        assert refused.status == 409, action
    assert (await client.post(f"{base}/take", allow_redirects=False)).status == 403  # no CSRF


async def test_the_widget_poll_gives_a_persons_messages_to_their_shopper_only(
    client: TestClient, settings: Settings
) -> None:
    database = open_database(settings.shop_database_url)
    mine = anonymous(new_session_id())
    cookie = {SESSION_COOKIE: mint_cookie(session_key(settings), mine)}
    outbox = WidgetOutbox(database)
    outbox.put(mine.sender, {"text": "before the page opened", "staff": "Ann"})

    start = await (await client.get("/api/chat/updates", cookies=cookie)).json()
    assert start == {"messages": [], "last": start["last"], "with_person": None,
                     "waiting": False} and start["last"] > 0
    tickets = TicketStore(database)
    ticket = tickets.create(mine.sender, "help", []).ticket
    assert ticket is not None
    waiting = await (await client.get(f"/api/chat/updates?after={start['last']}",
                                      cookies=cookie)).json()
    assert waiting["waiting"] is True and waiting["with_person"] is None  # keep polling
    assert tickets.take(ticket.ticket_id, "ann@x.example")
    outbox.put(mine.sender, {"text": "Hi, Ann here", "staff": "Ann"})
    outbox.put("web:somebody-else", {"text": "not yours"})
    got = await (await client.get(f"/api/chat/updates?after={start['last']}",
                                  cookies=cookie)).json()
    assert got["messages"] == [{"text": "Hi, Ann here", "staff": "Ann"}]
    assert got["with_person"] == "Ann" and got["waiting"] is False
    assert got["last"] > start["last"]
    again = await (await client.get(f"/api/chat/updates?after={got['last']}",
                                    cookies=cookie)).json()
    assert again == {"messages": [], "last": got["last"], "with_person": "Ann",
                     "waiting": False}
    assert tickets.hand_back(ticket.ticket_id, "ann@x.example")
    done = await (await client.get(f"/api/chat/updates?after={got['last']}",
                                   cookies=cookie)).json()
    assert done["with_person"] is None and done["waiting"] is False  # polling stops

    nobody = await (await client.get("/api/chat/updates?after=0")).json()
    assert nobody == {"messages": [], "last": 0, "with_person": None, "waiting": False}
    for bad in ("-1", "abc", "9" * 30, "１２"):
        assert (await client.get(f"/api/chat/updates?after={bad}", cookies=cookie)).status == 400


# -- conversations: list, search, one conversation, CSV ----------------------------------------

async def test_conversations_are_listed_searched_opened_and_exported(
    client: TestClient, accounts: StaffStore, settings: Settings
) -> None:
    accounts.add(EMAIL, PASSWORD)
    tracker = settings.tracker_store_url
    now = time.time()
    web_sender = f"web:{new_session_id()}"
    rasa_saves(tracker, web_sender, now - 3600, [
        ("user", "show me red dresses", "search_product"),
        ("action", "action_search_products", None), ("bot", "Here are some red dresses:", None),
        ("user", "=HYPERLINK(\"http://evil\") <b>x</b>", "nlu_fallback"),
        ("action", "action_fallback", None), ("bot", "Sorry?", None)])
    rasa_saves(tracker, "telegram:77", now - 7200, [
        ("user", "connect me to an agent", "contact_human_agent"),
        ("action", "action_handoff", None), ("bot", "I've passed this on.", None)])
    rasa_saves(tracker, "telegram:old", now - 90 * 86400, [("user", "hello", "greet")])
    database = open_database(settings.shop_database_url)
    SearchLog(database).log(web_sender, "show me red dresses", kind="text", results=5, ts=now)
    assert (await sign_in(client)).status == 303

    async def listed(query: str = "") -> list[str]:
        page = await client.get("/console/conversations" + query)
        assert page.status == 200
        return re.findall(r'href="/console/conversations/\d+"><code>([^<]+)</code>',
                          await page.text())

    web_label = f"web:{web_sender[4:10]}…"
    assert await listed() == [web_label, "telegram:77"]  # latest first; the old one is out
    assert await listed("?channel=telegram") == ["telegram:77"]
    assert await listed("?intent=contact_human_agent") == ["telegram:77"]
    assert await listed("?text=RED+dress") == [web_label]
    assert await listed("?text=100%25") == []  # LIKE wildcards are matched as text
    assert await listed(f"?shopper={web_sender[:8]}") == [web_label]
    assert await listed("?outcome=handoff") == ["telegram:77"]
    assert await listed("?outcome=found") == [web_label]
    assert await listed("?outcome=fallback") == [web_label]
    assert await listed("?outcome=bought") == []
    old_day = time.strftime("%Y-%m-%d", time.gmtime(now - 90 * 86400))
    assert await listed(f"?from={old_day}&to={old_day}") == ["telegram:old"]
    refused = await client.get("/console/conversations?from=yesterday")
    assert refused.status == 400 and "Dates must look like" in await refused.text()
    assert (await client.get("/console/conversations?from=2026-12-06&to=2026-01-01")).status \
        == 400

    text = await (await client.get("/console/conversations")).text()
    key = re.search(r'href="/console/conversations/(\d+)"><code>' + re.escape(web_label),
                    text).group(1)  # type: ignore[union-attr]
    one = await client.get(f"/console/conversations/{key}")
    body = await one.text()
    assert one.status == 200 and web_sender not in body
    assert "show me red dresses" in body and "search_product 0.90" in body
    assert "&lt;b&gt;x&lt;/b&gt;" in body and "<b>x</b>" not in body
    for missing in ("999999", "abc", "1" * 30):
        assert (await client.get(f"/console/conversations/{missing}")).status == 404

    exported = await client.get("/console/conversations.csv?channel=widget")
    assert exported.status == 200 and exported.content_type == "text/csv"
    assert "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(await exported.text())))
    assert rows[0][:2] == ["shopper", "channel"] and len(rows) == 2
    assert rows[1][0] == web_label and rows[1][6] == "found fallback"


async def test_insights_tables_charts_data_and_csv(
    client: TestClient, accounts: StaffStore, settings: Settings
) -> None:
    accounts.add(EMAIL, PASSWORD)
    now = time.time()
    today = time.strftime("%Y-%m-%d", time.gmtime(now))
    tracker = settings.tracker_store_url
    rasa_saves(tracker, "web:ins-1", now - 60, [
        ("user", "show me red dresses", "search_product"),
        ("action", "action_recommend_products", None),
        ("user", "tell me about the first one", "product_details"),
        ("action", "action_product_details", None),
        ("action", "action_recommend_products", None),
        ("user", "blah blah", "nlu_fallback")])
    rasa_saves(tracker, "web:ins-2", now - 30, [("user", "hi", "greet")])
    database = open_database(settings.shop_database_url)
    log = SearchLog(database)
    log.log("web:ins-1", "red dresses", kind="text", results=5, ts=now - 50)
    log.log("web:ins-2", "Red dresses", kind="text", results=5, ts=now - 40)
    log.log("web:ins-2", "</script><b>gold</b>", kind="text", results=0, ts=now - 30)
    log.log("web:ins-1", "", kind="photo", results=5, predicted="Tshirts", confidence=0.8,
            ts=now - 20)
    log.log("web:ins-1", "", kind="photo", results=5, predicted="Tshirts", confidence=0.2,
            ts=now - 10)
    events = EventLog(database)
    events.log("web:ins-1", ["1", "2", "3"], EventType.SHOWN, ts=now - 50)
    events.log("web:ins-2", ["1"], EventType.SHOWN, ts=now - 40)
    events.log("web:ins-1", ["2"], EventType.OPENED, ts=now - 30)
    assert (await sign_in(client)).status == 303

    page = await client.get(f"/console/insights?from={today}&to={today}")
    text = await page.text()
    assert page.status == 200
    assert "</script><b>gold" not in text and "&lt;/script&gt;&lt;b&gt;gold" in text
    data = json.loads(re.search(r'<script type="application/json" id="insights-data">(.*?)'
                                r"</script>", text, re.S).group(1))  # type: ignore[union-attr]
    assert data["daily"] == [{"day": today, "conversations": 2, "messages": 4,
                              "fallbacks": 1, "fallback_rate": 25.0}]
    assert [(r["query"], r["searches"]) for r in data["top_searches"]] == [
        ("red dresses", 2), ("</script><b>gold</b>", 1)]
    assert [(r["query"], r["nothing_found"]) for r in data["catalog_gaps"]] == [
        ("</script><b>gold</b>", 1)]
    assert {r["step"]: (r["events"], r["shoppers"]) for r in data["funnel"]} == {
        "Shown": (4, 2), "Opened": (1, 1), "Carted": (0, 0), "Bought": (0, 0)}
    assert data["recommendations"] == [{"day": today, "shown": 2, "opened": 1}]
    assert data["photos"] == [{"predicted": "Tshirts", "photos": 2, "mean_confidence": 0.5,
                               "confident": 1}]
    assert '<script src="/console/static/vendor/chart-4.6.2.umd.min.js">' in text
    assert (await client.get("/console/static/vendor/chart-4.6.2.umd.min.js")).status == 200

    exported = await client.get(f"/console/insights.csv?table=catalog_gaps&from={today}"
                                f"&to={today}")
    assert exported.status == 200 and exported.content_type == "text/csv"
    assert list(csv.reader(io.StringIO(await exported.text()))) == [
        ["query", "searches", "nothing_found", "relaxed"], ["</script><b>gold</b>", "1", "1", "0"]]
    for name in ("daily", "top_searches", "funnel", "recommendations", "photos"):
        assert (await client.get(f"/console/insights.csv?table={name}")).status == 200
    assert (await client.get("/console/insights.csv?table=staff")).status == 400
    assert (await client.get("/console/insights.csv?table=daily&from=2020-01-01")).status == 400
    refused = await client.get("/console/insights?from=nope")
    assert refused.status == 400 and "Dates must look like" in await refused.text()


# -- teach the bot: unsure messages grouped, labelled, exported as Rasa training data ---------

RASA_PYTHON = Path(__file__).resolve().parents[1] / ".venv-rasa" / "bin" / "python"


def test_unsure_messages_are_grouped_by_meaning_with_the_shipped_encoder() -> None:
    from retrieval.embeddings import encode

    texts = ["do you ship to canada", "can you deliver to Canada?", "shipping to canada",
             "who won the football match", "who won the football game yesterday",
             "do you deliver abroad"]  # close, but not the same question (0.58)
    assert group_by_meaning(texts, encode) == [[0, 1, 2], [3, 4], [5]]
    assert group_by_meaning([], encode) == []


async def test_staff_label_unsure_messages_and_shopbot_nlu_export_writes_them(
    client: TestClient, accounts: StaffStore, settings: Settings, tmp_path: Path
) -> None:
    accounts.add(EMAIL, PASSWORD)
    now = time.time()
    rasa_saves(settings.tracker_store_url, "web:teach-1", now - 60, [
        ("user", "do you ship to canada", "nlu_fallback"),
        ("user", "can you deliver to Canada?", "nlu_fallback"),
        ("user", "show me red dresses", "search_product"),  # confident: not listed
        ("user", "/add_to_cart", "nlu_fallback"),  # a button payload: not listed
        ("user", "who won the <b>football</b> match", "nlu_fallback")])
    assert (await sign_in(client)).status == 303
    page = await client.get("/console/teach")
    text = await page.text()
    assert page.status == 200
    assert "show me red dresses" not in text and "/add_to_cart" not in text
    assert "&lt;b&gt;football&lt;/b&gt;" in text and "<b>football" not in text
    forms = re.findall(r'<form class="group".*?</form>', text, re.S)
    assert len(forms) == 2
    shipping = next(f for f in forms if "canada" in f)
    assert shipping.count('name="text"') == 2
    options = set(re.findall(r'<option value="([a-z_]+)"', shipping))
    assert options == set(domain_intents()) | {"out_of_scope"}
    assert "search_products" in options and "nlu_fallback" not in options
    csrf = FORM_TOKEN.search(shipping).group(1)  # type: ignore[union-attr]

    refused = await client.post("/console/teach", data={
        "csrf": csrf, "text": ["do you ship to canada"], "intent": "make_me_admin"})
    assert refused.status == 400 and "Unknown intent" in await refused.text()
    assert (await client.post("/console/teach", data={"csrf": csrf, "intent": "greet"})
            ).status == 400  # nothing ticked
    assert (await client.post("/console/teach", data={"text": "x", "intent": "greet"})
            ).status == 403  # no CSRF token
    intent = "faq"  # shipping questions are FAQs in this bot
    saved = await client.post("/console/teach", data={
        "csrf": csrf, "text": ["do you ship to canada", "can you deliver to Canada?"],
        "intent": intent})
    after = await saved.text()
    assert saved.status == 200 and f"Saved 2 as {intent}." in after
    assert "canada" not in after.lower() and 'id="waiting">2<' in after
    assert "football" in after
    await client.post("/console/teach", data={
        "csrf": csrf, "text": ["who won the <b>football</b> match"], "intent": "out_of_scope"})

    env = {k: v for k, v in os.environ.items() if k != "SHOPBOT_DATABASE_URL"}
    env["SHOPBOT_DATABASE_URL"] = settings.shop_database_url
    out = tmp_path / "root" / "bot" / "data" / "nlu" / "reviewed.yml"
    done = subprocess.run([str(SHOPBOT), "nlu", "export", "--out", str(out)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote 3 examples for 2 intents" in done.stderr and "3 new" in done.stderr
    # Rasa itself reads the file: the examples under the intents staff chose.
    read = subprocess.run([str(RASA_PYTHON), "-c", (
        "import json, sys\n"
        "from rasa.shared.nlu.training_data.loading import load_data\n"
        "data = load_data(sys.argv[1])\n"
        "print(json.dumps(sorted([m.get('text'), m.get('intent')]"
        " for m in data.intent_examples)))"), str(out)],
        capture_output=True, text=True, timeout=300)
    assert read.returncode == 0, read.stderr[-2000:]
    assert json.loads(read.stdout.strip().splitlines()[-1]) == sorted([
        ["can you deliver to Canada?", intent], ["do you ship to canada", intent],
        ["who won the <b>football</b> match", "out_of_scope"]])
    # `shopbot train` trains on every file under bot/data: this one changes the model.
    before = bot_fingerprint(tmp_path / "root")
    out.write_text(out.read_text() + "\n")
    assert bot_fingerprint(tmp_path / "root") != before
    again = subprocess.run([str(SHOPBOT), "nlu", "export", "--out", str(out)], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "0 new" in again.stderr
