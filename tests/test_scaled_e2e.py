"""The scaled topology, for real: PostgreSQL, Redis and a Chroma server (Debian and PyPI
packages) with two Rasa and two action-server replicas behind HAProxy, and the web server.

One topology serves the module (starting two Rasa replicas is most of its cost). Shoppers
are simulated by bench/shoppers.py, logged in with customer tokens so their conversations
can be found in the tracker store afterwards.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from actions.base import ONE_MOMENT_TEXT
from bench.shoppers import Turn, run_shoppers
from retrieval.ingest import ingest_catalog
from retrieval.store import ProductStore
from shop.staff import StaffStore
from shop.tickets import TicketStore
from shopbot.scaled import Backends, ScaledStack
from shopbot.stack import PROJECT_ROOT, RASA_VENV, free_port, train_bot
from shopbot.web import ONE_MOMENT
from shopcore.db import open_database
from shopcore.keys import SENDER_HEADER
from shopcore.outbox import WidgetOutbox
from shopcore.settings import Settings, get_settings
from tests.conftest import CUSTOMER_TOKEN_SECRET
from tests.e2e import internal_headers, post_json

pytestmark = pytest.mark.e2e
CLEAR_ERRORS = {ONE_MOMENT, ONE_MOMENT_TEXT}


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Backends, ScaledStack]]:
    root = tmp_path_factory.mktemp("scaled")
    backends = Backends(root / "servers", root / "logs")
    backends.start()
    try:
        settings = backends.apply(Settings(
            var_dir=root / "var", store_dir=root / "store",
            customer_token_secret=CUSTOMER_TOKEN_SECRET, catalog_check_s=1.0,
            # the simulated shoppers all come from 127.0.0.1, faster than people type
            chats_per_minute=100_000, requests_per_address_minute=1_000_000,
            rasa_port=free_port(), action_port=free_port(), web_port=free_port()))
        ingest_catalog(ProductStore.from_settings(settings))
        model = train_bot(Path(get_settings().models_dir))  # type: ignore[arg-type]
        stack = ScaledStack(settings, model, replicas=2, log_dir=root / "logs")
        stack.start(timeout=300)
        try:
            yield backends, stack
        finally:
            stack.stop()
    finally:
        backends.stop()


def user_texts(settings: Settings, sender: str) -> list[str]:
    """What ``sender`` said, in the order the tracker store kept it (PostgreSQL)."""
    with open_database(settings.shop_database_url).read() as conn:
        rows = conn.execute(text("SELECT data FROM events WHERE sender_id = :s "
                                 "AND type_name = 'user' ORDER BY id"), {"s": sender})
        return [json.loads(row.data).get("text") for row in rows]


def event_types(settings: Settings, sender: str) -> list[str]:
    with open_database(settings.shop_database_url).read() as conn:
        rows = conn.execute(text("SELECT type_name, action_name FROM events "
                                 "WHERE sender_id = :s ORDER BY id"), {"s": sender})
        return [row.action_name if row.type_name == "action" else row.type_name
                for row in rows]


def cart_quantity(settings: Settings, sender: str) -> int:
    with open_database(settings.shop_database_url).read() as conn:
        return int(conn.execute(text("SELECT COALESCE(SUM(qty), 0) FROM cart_lines "
                                     "WHERE sender_id = :s"), {"s": sender}).scalar())


def is_subsequence(needle: list[str], haystack: list[str]) -> bool:
    remaining = iter(haystack)
    return all(any(item == seen for seen in remaining) for item in needle)


def load_with(stack: ScaledStack, shoppers: int, duration_s: float, prefix: str,
              faults: list[tuple[float, Callable[[], None]]]) -> list[Turn]:
    """Shoppers for ``duration_s`` while ``faults`` run at their second marks."""
    result: list[Turn] = []
    runner = threading.Thread(target=lambda: result.extend(asyncio.run(run_shoppers(
        stack.web_url, shoppers, duration_s, secret=CUSTOMER_TOKEN_SECRET, prefix=prefix,
        timeout_s=120))))
    started = time.monotonic()
    runner.start()
    for at, fault in faults:
        time.sleep(max(0.0, started + at - time.monotonic()))
        fault()
    runner.join(timeout=duration_s + 180)
    assert not runner.is_alive(), "the shoppers never finished"
    return result


def check_conversations(settings: Settings, turns: list[Turn], prefix: str,
                        shoppers: int) -> None:
    """Every answered turn is in the tracker store once, in order; every other turn got a
    clear "one moment" answer (none got nothing); no cart gained more than was asked."""
    assert turns, "no turn was made"
    assert not [t for t in turns if t.lost], "turns with no reply at all"
    unclear = [(t.status, t.texts) for t in turns if not t.texts
               or (t.status != 200 and not set(t.texts) <= CLEAR_ERRORS)]
    assert not unclear, unclear[:5]
    for i in range(shoppers):
        name = f"{prefix}-{i}"
        mine = [t for t in turns if t.shopper == name]
        answered = [t.text for t in mine if t.status == 200
                    and not set(t.texts) <= CLEAR_ERRORS]
        kept = user_texts(settings, f"customer:{name}")
        assert is_subsequence(answered, kept), (name, first_missing(mine, kept))
        assert len(answered) <= len(kept) <= len(mine), (name, len(answered), len(kept))
        adds = [t for t in mine if any(x.startswith("Added ") for x in t.texts)]
        unsure = [t for t in mine if t.kind == "cart"  # an add may have landed unanswered
                  and (t.status != 200 or set(t.texts) <= CLEAR_ERRORS)]
        quantity = cart_quantity(settings, f"customer:{name}")
        assert len(adds) <= quantity <= len(adds) + len(unsure), (name, len(adds), quantity)


def first_missing(mine: list[Turn], kept: list[str]) -> tuple[Any, ...]:
    """The first answered turn the tracker store does not have (for the failure message)."""
    remaining = iter(enumerate(kept))
    for turn in mine:
        if turn.status != 200 or set(turn.texts) <= CLEAR_ERRORS:
            continue
        if not any(turn.text == seen for _, seen in remaining):
            return (turn.index, turn.text, turn.texts, round(turn.started, 1),
                    kept[max(0, turn.index - 3):turn.index + 3])
    return ()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.5)


def kill_hard(stack: ScaledStack, name: str) -> Callable[[], None]:
    def kill() -> None:
        process = stack.service(name).process
        assert process is not None
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    return kill


def test_turns_of_one_conversation_on_both_replicas_stay_in_order(
        scaled: tuple[Backends, ScaledStack]) -> None:
    """Messages of one conversation sent to both Rasa replicas at the same moment are
    processed one after the other (the Redis lock store), none lost, none interleaved."""
    _, stack = scaled
    sender = "customer:both-replicas"
    messages = ["hi", "show me red dresses", "in blue", "under 2000",
                "what is your return policy?", "show me watches", "thanks!", "bye"]
    urls = [f"http://{stack.settings.host}:{port}/webhooks/rest/webhook"
            for port in stack.rasa_ports]

    def send(i: int) -> tuple[int, Any]:
        return post_json(urls[i % 2], {"sender": sender, "message": messages[i]},
                         headers=internal_headers(stack))

    with ThreadPoolExecutor(len(messages)) as pool:
        answers = list(pool.map(send, range(len(messages))))
    assert all(status == 200 and reply for status, reply in answers), answers
    kept = user_texts(stack.settings, sender)
    assert sorted(kept) == sorted(messages)
    turns = event_types(stack.settings, sender)
    starts = [i for i, kind in enumerate(turns) if kind == "user"]
    for start, end in zip(starts, [*starts[1:], len(turns)], strict=True):
        # each turn: the message, what the bot did, and back to listening, before the next
        assert turns[end - 1] == "action_listen", turns[start:end]
        assert "user" not in turns[start + 1:end]


def test_rasas_own_redis_lock_store_races_and_ours_does_not(redis_server: Any) -> None:
    """rasa #9213: Rasa's RedisLockStore changes its ticket lock by read-modify-write, so
    processes taking the same conversation at once overlap; bot.locks does not."""
    results = {}
    for kind in ("rasa", "atomic"):
        done = subprocess.run(
            [str(RASA_VENV / "bin" / "python"), str(PROJECT_ROOT / "tests" / "rasa_side"
                                                    / "lock_race.py"),
             kind, str(redis_server.port), "4", "15"],
            capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT),
                 "RASA_TELEMETRY_ENABLED": "false"})
        assert done.returncode == 0, done.stderr[-2000:]
        results[kind] = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["rasa"]["overlapping"] + results["rasa"]["lock_errors"] > 0, results
    assert results["atomic"] == {"store": "atomic", "turns": 60, "overlapping": 0,
                                 "lock_errors": 0}


def test_replicas_killed_under_load_lose_no_answered_turn_and_rejoin(
        scaled: tuple[Backends, ScaledStack]) -> None:
    """kill -9 one Rasa replica, then one action-server replica, while 6 shoppers chat:
    HAProxy routes around them, every answered turn is kept once, carts are not doubled,
    and both replicas rejoin once restarted."""
    _, stack = scaled
    turns = load_with(stack, 6, 30, "kill", [
        (6, kill_hard(stack, "rasa server 1")),
        (12, kill_hard(stack, "action server 1")),
        (14, lambda: stack.service("action server 1").start()),
        (16, lambda: stack.service("rasa server 1").start()),  # ready in about a minute
    ])
    check_conversations(stack.settings, turns, "kill", 6)
    late = [t for t in turns if t.started > min(x.started for x in turns) + 24]
    assert late and all(t.answered and not set(t.texts) <= CLEAR_ERRORS for t in late), \
        [(t.status, t.texts) for t in late if not t.answered][:5]
    wait_for(lambda: stack.replica_states().get("actions1") == "UP", 60,
             "the restarted action server is back in HAProxy")
    wait_for(lambda: stack.replica_states().get("rasa1") == "UP", 240,
             "the restarted Rasa replica is back in HAProxy")
    replies = {port: post_json(f"http://{stack.settings.host}:{port}/webhooks/rest/webhook",
                               {"sender": "customer:after-kill", "message": "hi"},
                               headers=internal_headers(stack)) for port in stack.rasa_ports}
    assert all(status == 200 and reply for status, reply in replies.values()), replies


def test_backends_restarted_under_load_come_back_by_themselves(
        scaled: tuple[Backends, ScaledStack]) -> None:
    """PostgreSQL, Redis and the Chroma server restarted in turn while 6 shoppers chat:
    during each outage shoppers read "one moment", nothing is lost or doubled, and
    service resumes without touching the bot."""
    backends, stack = scaled
    turns = load_with(stack, 6, 40, "outage", [
        (5, lambda: backends.restart("postgresql", down_s=3)),
        (16, lambda: backends.restart("redis", down_s=2)),
        (26, lambda: backends.restart("chroma server", down_s=2)),
    ])
    check_conversations(stack.settings, turns, "outage", 6)
    assert any(not t.answered or set(t.texts) <= CLEAR_ERRORS for t in turns), \
        "no shopper noticed any outage: the restarts did not happen under load"
    late = [t for t in turns if t.started > min(x.started for x in turns) + 34]
    assert late and all(t.answered and not set(t.texts) <= CLEAR_ERRORS for t in late), \
        [(t.status, t.texts) for t in late if not t.answered][:5]
    assert all(service.alive() for service in stack.services)


def command_line(process: Any) -> str:
    """A process's command line; '' for one that has just exited (a helper such as pg_ctl
    that its parent has not reaped yet)."""
    import psutil

    try:
        return " ".join(process.cmdline())
    except (psutil.ZombieProcess, psutil.NoSuchProcess):
        return ""


def test_shopbot_run_scale_from_another_folder_serves_and_ctrl_c_stops_everything(
        tmp_path: Path) -> None:
    """`shopbot run --scale 1` as a user types it (the installed command, another working
    directory): it starts its own PostgreSQL, Redis, Chroma server and HAProxy beside the
    replicas, answers through the web server, and Ctrl-C leaves no process behind."""
    import psutil

    from tests.test_fresh_clone import _wait_for_url

    ports = {"WEB": free_port(), "RASA": free_port(), "ACTION": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPBOT_")}
    env.update({f"SHOPBOT_{name}_PORT": str(port) for name, port in ports.items()})
    env.update(SHOPBOT_MODELS_DIR=os.environ["SHOPBOT_MODELS_DIR"], PYTHONUNBUFFERED="1",
               SHOPBOT_VAR_DIR=str(tmp_path / "var"))
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(PROJECT_ROOT / ".venv" / "bin" / "shopbot"), "run",
                                    "--scale", "1"], cwd=tmp_path, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    children: list[psutil.Process] = []
    try:
        url = _wait_for_url(process, log)
        status, reply = post_json(f"{url}/api/chat", {"message": "show me red dresses"})
        assert status == 200, (reply, log.read_text(errors="replace")[-3000:])
        messages = reply["messages"] if isinstance(reply, dict) else reply
        assert status == 200 and any("red dresses" in (m.get("text") or "").lower()
                                     for m in messages), reply
        children = psutil.Process(process.pid).children(recursive=True)
        commands = " ".join(command_line(c) for c in children)
        for needle in ("postgres", "redis-server", "chroma run", "haproxy", "rasa", "actions"):
            assert needle in commands, f"{needle} is not running under shopbot run --scale"
        assert (tmp_path / "var" / "scaled" / "postgresql" / "PG_VERSION").is_file()
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in the terminal
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    wait_for(lambda: not [c for c in children if c.is_running()
                          and c.status() != psutil.STATUS_ZOMBIE], 30,
             "every process shopbot run --scale started has stopped")


class StaffBrowser:
    """A staff member's browser on the console: a cookie jar and form posts."""

    def __init__(self, web_url: str) -> None:
        self.web = web_url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def open(self, path: str, form: dict[str, str] | None = None) -> tuple[int, str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with self.opener.open(f"{self.web}{path}", data=data, timeout=120) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def sign_in(self, email: str, password: str) -> None:
        _, page = self.open("/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        status, page = self.open("/console/login", {"email": email, "password": password,
                                                    "csrf": token})
        assert status == 200 and "Open handoff tickets" in page, page[-500:]
        self.csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">',
                              page).group(1)  # type: ignore[union-attr]

    def post(self, path: str, **fields: str) -> tuple[int, str]:
        return self.open(path, {"csrf": self.csrf, **fields})


def test_a_person_takes_over_with_two_replicas_and_both_stay_quiet(
        scaled: tuple[Backends, ScaledStack]) -> None:
    """Handoff through HAProxy on PostgreSQL and Redis: the pause is in the shared tracker
    store, so neither Rasa replica answers while a person holds the chat; the reply reaches
    the widget's outbox; after the hand-back either replica answers again."""
    _, stack = scaled
    settings = stack.settings
    sender = "customer:handoff-scaled"
    balanced = f"http://{settings.host}:{settings.rasa_port}/webhooks/rest/webhook"
    replicas = [f"http://{settings.host}:{port}/webhooks/rest/webhook"
                for port in stack.rasa_ports]

    def say_to(url: str, text: str) -> Any:
        status, reply = post_json(url, {"sender": sender, "message": text},
                                  headers={**internal_headers(stack), SENDER_HEADER: sender})
        assert status == 200, reply
        return reply

    assert "support team" in " ".join(m.get("text", "") for m in say_to(
        balanced, "connect me to an agent"))
    database = open_database(settings.shop_database_url)
    (ticket,) = TicketStore(database).for_sender(sender)
    StaffStore(database).add("ann@shop.example", "correct horse battery")
    staff = StaffBrowser(f"http://{settings.host}:{settings.web_port}")
    staff.sign_in("ann@shop.example", "correct horse battery")
    base = f"/console/tickets/{ticket.ticket_id}"
    status, page = staff.post(f"{base}/take")
    assert status == 200 and "the bot is quiet" in page, page[-500:]
    assert [say_to(url, "hello? anyone there?") for url in replicas] == [[], []]
    status, page = staff.post(f"{base}/reply", text="Hi, Ann here - how can I help?")
    assert status == 200 and "Ann here" in page
    outbox = WidgetOutbox(database).since(sender, 0)
    assert [m["text"] for m in outbox][-1] == "Hi, Ann here - how can I help?"
    assert outbox[0]["text"].startswith("You're now chatting with Ann")
    status, page = staff.post(f"{base}/hand-back")
    assert status == 200 and "Closed" in page
    for url in replicas:
        assert say_to(url, "what is your return policy?"), url
