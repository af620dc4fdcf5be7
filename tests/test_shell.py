"""`make shell` (rasa shell in a terminal) against a running action server (the shared
stack's), driven on a pseudo-terminal through a product search and a shop question."""

from __future__ import annotations

import json
import os
import re
import time

import pexpect
import pytest

from shopbot.stack import Stack, free_port
from shopcore.settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e

PROMPT = "Your input ->"
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-B]|[\r\x08]")
QUIET_S = 2.0
START_TIMEOUT_S = 300  # loading the Rasa model takes a minute or two on a busy machine
TURN_TIMEOUT_S = 120


def _shell(stack: Stack) -> pexpect.spawn:
    rasa_port = free_port()
    env = {
        **os.environ,
        **stack.settings.to_env(),
        "SHOPBOT_RASA_PORT": str(rasa_port - 100),  # the shell's own server listens at +100
        "TERM": "xterm",
        "COLUMNS": "200",
    }
    # -o: treat the virtualenvs as up to date, so a lock file edited since the last
    # `make setup` doesn't reinstall them in the middle of a test.
    return pexpect.spawn("make", ["--no-print-directory", "-o", ".venv/.installed",
                                  "-o", ".venv-rasa/.installed", "shell"],
                         cwd=str(PROJECT_ROOT), env=env, encoding="utf-8",
                         dimensions=(50, 200), timeout=START_TIMEOUT_S)


def _say(child: pexpect.spawn, text: str) -> str:
    """Type one message; the bot's printed answer, without terminal escape codes.

    The answer is complete when a fresh, empty prompt has been drawn and the terminal has
    been quiet for a moment (prompt_toolkit redraws the prompt with the typed text, too)."""
    child.sendline(text)
    output, deadline = "", time.monotonic() + TURN_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            output += child.read_nonblocking(65536, timeout=QUIET_S)
        except pexpect.TIMEOUT:
            clean = ANSI.sub("", output)
            if PROMPT in clean and not clean.rsplit(PROMPT, 1)[1].strip():
                answer = clean.rsplit(PROMPT, 1)[0]
                return answer.split(text, 1)[-1]  # after the echo of what was typed
    raise AssertionError(f"no answer to {text!r} within {TURN_TIMEOUT_S} s: "
                         f"{ANSI.sub('', output)[-2000:]}")


def _payloads(answer: str) -> list[dict]:
    """The custom JSON payloads rasa shell prints (product cards show as JSON)."""
    found, decoder, index = [], json.JSONDecoder(), 0
    while (index := answer.find("{", index)) != -1:
        try:
            payload, end = decoder.raw_decode(answer, index)
        except ValueError:
            index += 1
            continue
        found.append(payload)
        index = end
    return found


def test_make_shell_searches_and_answers_questions(stack: Stack) -> None:
    child = _shell(stack)
    try:
        child.expect_exact(PROMPT)
        found = _say(child, "show me red dresses")
        # Redraws may echo the typed line again: only what the bot added counts.
        assert "red dresses" in found.replace("show me red dresses", "").lower(), found[-2000:]
        (cards,) = [p for p in _payloads(found) if p.get("type") == "product_cards"]
        assert len(cards["products"]) == 5
        assert all(p["article_type"] == "Dresses" and p["colour"] == "Red"
                   for p in cards["products"])

        question = "how long does delivery take?"
        answer = _say(child, question).replace(question, "").lower()
        assert "business days" in answer, answer[-2000:]
        assert not _payloads(answer)

        child.sendline("/stop")
        child.expect(pexpect.EOF, timeout=60)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, "the shell ends cleanly on /stop"
