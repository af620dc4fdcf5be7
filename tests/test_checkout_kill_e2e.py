"""End to end: the action server SIGKILLed in the middle of a checkout never makes two orders,
and the shopper is told the truth when they ask again (issue 14, "money-safe flows").

The stack's action server runs with ``SHOPBOT_FAULT_PAUSE`` (shopcore.faults), so a checkout
stops at an exact point and logs ``fault pause <point>``; the test kills the action server's
process group there, restarts it without the pause and checks out again, counting rows
straight from the shop database:

- ``checkout.after_order``: the order is inserted but not committed. Killed, nothing
  happened (no order, the cart kept); checking out again places exactly one order.
- ``checkout.after_commit``: committed (order placed, cart emptied), the shopper not told.
  Checking out again places nothing and names the order already placed.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from retrieval.store import ProductStore
from shopbot.stack import Service, Stack
from shopcore.faults import ENV_VAR
from shopcore.settings import Settings
from tests.e2e import Messages, cards, cart_of, running_stack, say, texts

pytestmark = pytest.mark.e2e

ADDRESS = "12 Residency Road, Bengaluru 560025"
PAUSE_S = 60  # far longer than the test needs to see the pause and kill
ACTIONS = "action server"


@pytest.fixture(scope="module")
def kill_stack(sample_store_dir: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack on a shop database of its own; its action server pauses after the order insert
    (the Rasa and web servers inherit the variable too, but only checkout has pause points)."""
    settings = Settings(store_dir=sample_store_dir, var_dir=tmp_path_factory.mktemp("kill"))
    with running_stack(settings, with_web=False,
                       env={ENV_VAR: f"checkout.after_order:{PAUSE_S}"}) as stack:
        yield stack


def shop_file(stack: Stack) -> Path:
    url = stack.settings.shop_database_url
    assert url.startswith("sqlite:///"), url
    return Path(url.removeprefix("sqlite:///"))


def in_shop_db(stack: Stack, sender: str) -> tuple[list[str], int]:
    """(the sender's order ids, their cart rows), read straight from the shop database."""
    with closing(sqlite3.connect(shop_file(stack), timeout=30)) as conn:
        placed = [row[0] for row in conn.execute(
            "SELECT order_id FROM orders WHERE sender_id = ?", (sender,))]
        carted = conn.execute("SELECT COUNT(*) FROM cart_lines WHERE sender_id = ?",
                              (sender,)).fetchone()[0]
    return placed, carted


def fill_cart(stack: Stack, store: ProductStore, sender: str) -> None:
    shown = cards(say(stack, sender, "show me red dresses"))
    assert shown
    product = store.get([shown[0]["id"]])[0]
    size = "M" if "M" in product.sizes else product.sizes[0]
    assert cart_of(say(stack, sender, f"add the first one in size {size}"))


def checkout(stack: Stack, sender: str) -> Messages:
    """'checkout', and the address if the form asks for it: the bot's last messages."""
    reply = say(stack, sender, "checkout")
    if "address" in texts(reply).lower() and "SB-" not in texts(reply):
        reply = say(stack, sender, ADDRESS)
    return reply


def wait_for_line(service: Service, line: str, talking: threading.Thread,
                  said: dict[str, Any], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while line not in service.log_tail(200_000):
        assert talking.is_alive(), f"the turn ended without pausing: {said}"
        assert service.alive(), service.log_tail()
        assert time.monotonic() < deadline, f"no {line!r} in the action server log"
        time.sleep(0.2)


def pause_actions_at(stack: Stack, point: str) -> None:
    """The action server running with its checkouts pausing at ``point``."""
    service, wanted = stack.service(ACTIONS), f"{point}:{PAUSE_S}"
    if service.env.get(ENV_VAR) != wanted:
        service.env[ENV_VAR] = wanted
        stack.restart(ACTIONS)


def kill_mid_checkout(stack: Stack, sender: str, point: str) -> dict[str, Any]:
    """Give the address in a background turn, wait for the checkout's pause at ``point``,
    SIGKILL the action server's process group there, and restart it without the pause.
    Returns what the killed turn got back (Rasa answers once the action call fails)."""
    asked = say(stack, sender, "checkout")
    assert "address" in texts(asked).lower(), texts(asked)
    said: dict[str, Any] = {}

    def give_address() -> None:
        try:
            said["messages"] = say(stack, sender, ADDRESS)
        except BaseException as error:  # the turn's fate is not what this test checks
            said["error"] = repr(error)

    talking = threading.Thread(target=give_address, daemon=True)
    talking.start()
    service = stack.service(ACTIONS)
    wait_for_line(service, f"fault pause {point}", talking, said)
    said["while_paused"] = in_shop_db(stack, sender)
    assert service.process is not None
    os.killpg(service.process.pid, signal.SIGKILL)
    service.process.wait(timeout=30)
    talking.join(timeout=300)
    assert not talking.is_alive(), "Rasa never answered the killed turn"
    service.env.pop(ENV_VAR, None)
    stack.restart(ACTIONS)
    return said


def test_killed_before_the_commit_then_retried_places_one_order(
    kill_stack: Stack, sample_store: ProductStore
) -> None:
    stack, sender = kill_stack, "e2e-kill-after-order"
    pause_actions_at(stack, "checkout.after_order")
    fill_cart(stack, sample_store, sender)
    killed = kill_mid_checkout(stack, sender, "checkout.after_order")
    assert killed["while_paused"] == ([], 1), "the uncommitted order is invisible"
    assert in_shop_db(stack, sender) == ([], 1), "killed before the commit: nothing happened"

    done = texts(checkout(stack, sender))
    (order_id,) = in_shop_db(stack, sender)[0]
    assert order_id in done and "is placed" in done, done
    assert in_shop_db(stack, sender) == ([order_id], 0)

    again = texts(checkout(stack, sender))  # the shopper asks once more
    assert order_id in again and "already placed" in again, again
    assert in_shop_db(stack, sender) == ([order_id], 0)


def test_killed_after_the_commit_then_asked_again_names_the_order(
    kill_stack: Stack, sample_store: ProductStore
) -> None:
    stack, sender = kill_stack, "e2e-kill-after-commit"
    pause_actions_at(stack, "checkout.after_commit")
    fill_cart(stack, sample_store, sender)
    killed = kill_mid_checkout(stack, sender, "checkout.after_commit")
    (order_id,), carted = killed["while_paused"]
    assert carted == 0, "committed: the order and the emptied cart together"
    assert order_id not in texts(killed.get("messages", [])), "the shopper was never told"

    reply = texts(checkout(stack, sender))
    assert order_id in reply and "already placed" in reply, reply
    assert "nothing new was ordered" in reply
    assert in_shop_db(stack, sender) == ([order_id], 0), "still exactly one order"
