"""`make run` on a fresh clone, as a new user runs it: the installed `shopbot` command, the
clone's own var/, another working directory, a chat through the page's API, then Ctrl-C.

The unit and end-to-end tests import the project from this checkout; only this test proves
the command a user types works where nothing else has run (it once crashed for days on
``No module named 'bot'`` while every other test passed).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from shopbot.stack import free_port
from shopcore.settings import PROJECT_ROOT
from tests.e2e import cards, post_json, texts

pytestmark = pytest.mark.e2e

READY = re.compile(r"chat in the browser:\s+(http://\S+?)/?\s*$", re.MULTILINE)
START_TIMEOUT_S = 900  # the app virtualenv is built for real; the Rasa model comes from cache


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_make_run_on_a_fresh_clone_answers_in_the_browser_api(tmp_path: Path) -> None:
    clone = tmp_path / "shopbot"
    subprocess.run(["git", "clone", "--quiet", str(PROJECT_ROOT), str(clone)], check=True)
    # Rasa's virtualenv holds no project code (the stack points Rasa at the checkout it runs
    # from), so the clone borrows this one and `-o` tells make it is up to date; the app
    # virtualenv, which installs the `shopbot` command, is built in the clone for real.
    (clone / ".venv-rasa").symlink_to(PROJECT_ROOT / ".venv-rasa")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ports = {"WEB": free_port(), "RASA": free_port(), "ACTION": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPBOT_")}
    env.update({f"SHOPBOT_{name}_PORT": str(port) for name, port in ports.items()})
    # The trained Rasa model is a cache keyed by the bot's inputs: a clone of this commit
    # reuses the one the other tests trained instead of training for minutes again.
    env.update(SHOPBOT_MODELS_DIR=os.environ["SHOPBOT_MODELS_DIR"], PYTHONUNBUFFERED="1")
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["make", "-C", str(clone), "-o", ".venv-rasa/.installed", "run"], cwd=elsewhere,
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = _wait_for_url(process, log)
        with urllib.request.urlopen(f"{url}/", timeout=30) as page:
            assert page.status == 200 and b"widget" in page.read()
        status, reply = post_json(f"{url}/api/chat",
                                  {"sender": "fresh-clone", "message": "show me red dresses"})
        assert status == 200, reply
        messages = reply["messages"] if isinstance(reply, dict) else reply
        assert cards(messages) and "red dresses" in texts(messages).lower(), messages
        assert (clone / "var" / "store" / "default").is_dir(), "the clone's own var/ is used"
        assert (clone / ".venv" / "bin" / "shopbot").is_file()
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in the terminal
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    deadline = time.monotonic() + 30
    while any(_port_open(port) for port in ports.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [name for name, port in ports.items() if _port_open(port)], \
        "Ctrl-C left a process of the bot running"
    assert "stopping" in log.read_text(errors="replace")


def _wait_for_url(process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        found = READY.search(text)
        if found:
            return found.group(1).rstrip("/")
        assert process.poll() is None, f"make run exited with {process.returncode}:\n{text[-4000:]}"
        time.sleep(1)
    raise AssertionError(f"make run printed no URL in {START_TIMEOUT_S} s:\n"
                         f"{log.read_text(errors='replace')[-4000:]}")
