"""End to end: the real action server and Rasa server on loopback, talked to over REST.

The Rasa model is trained once per change of bot data (cached under var/models), so the
first run of this module takes about three minutes longer than later ones.
"""

from __future__ import annotations

import subprocess

import pytest

from retrieval.store import ProductStore
from shopbot.stack import Stack, rasa_env, rasa_executable
from shopcore.settings import PROJECT_ROOT
from tests.e2e import cards, post_json, refinement_conversation, say, texts

pytestmark = pytest.mark.e2e


def test_rasa_data_validates() -> None:
    done = subprocess.run(
        [str(rasa_executable()), "data", "validate", "--data", "bot/data",
         "--domain", "domain.yml", "--config", "config.yml", "--fail-on-warnings"],
        cwd=PROJECT_ROOT, env=rasa_env(), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_conversation_over_rest(stack: Stack, sample_store: ProductStore) -> None:
    sender = "e2e-shopper"
    greeting = say(stack, sender, "hello there")
    assert greeting and "find" in texts(greeting).lower()

    found = say(stack, sender, "show me red dresses")
    products = cards(found)
    assert len(products) == 5
    stored = {p.id: p for p in sample_store.get([c["id"] for c in products])}
    assert set(stored) == {c["id"] for c in products}, "every card is a catalog product"
    assert all(p.article_type == "Dresses" and p.base_colour == "Red" for p in stored.values())
    assert "red dresses" in texts(found).lower()

    faq = say(stack, sender, "how many days does delivery take?")
    answer = texts(faq).lower()
    assert "standard delivery takes" in answer and "business days" in answer
    assert not cards(faq)

    fallback = say(stack, sender, "asdkjh qwe zzxcv")
    assert "I can help you" in texts(fallback)
    assert not cards(fallback)


def test_cheap_heels_conversation_respects_the_budget(stack: Stack,
                                                      sample_store: ProductStore) -> None:
    found = say(stack, "e2e-heels", "black heels under 1500 for a party")
    products = sample_store.get([c["id"] for c in cards(found)])
    assert products and all(p.article_type == "Heels" for p in products)
    within = [p for p in products if p.final_price <= 1500]
    assert within and products[:len(within)] == within, "in-budget heels come first"
    if len(within) < len(products):
        assert "outside that price range" in texts(found)


def test_refinement_over_rest(stack: Stack, sample_store: ProductStore) -> None:
    refinement_conversation(stack, sample_store, "e2e-refiner")


def test_demo_page_proxy_reaches_the_bot(stack: Stack) -> None:
    status, messages = post_json(f"{stack.web_url}/api/chat",
                            {"sender": "web-shopper", "message": "show me red dresses"})
    assert status == 200 and cards(messages)
    status, error = post_json(f"{stack.web_url}/api/chat", {"sender": "web-shopper", "message": ""})
    assert status == 400 and error["error"]


def test_dead_action_server_gets_a_clear_message(stack: Stack) -> None:
    """The action server stops; Rasa answers what it can; the server is back afterwards."""
    stack.service("action server").stop()
    try:
        status, messages = post_json(f"{stack.web_url}/api/chat",
                                     {"sender": "web-shopper-2", "message": "show me red dresses"})
        assert status == 200
        assert texts(messages).strip(), "the shopper is told something went wrong"
        assert not cards(messages)
        # Rasa itself stays up and still answers what needs no action server.
        assert "find" in texts(say(stack, "after-crash", "hello there")).lower()
    finally:
        stack.restart("action server")
    assert cards(say(stack, "after-restart", "show me red dresses"))
