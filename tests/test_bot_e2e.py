"""End to end: the real action server and Rasa server on loopback, talked to over REST.

The Rasa model is trained once per change of bot data (cached under var/models), so the
first run of this module takes about two minutes longer than later ones.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from retrieval.store import ProductStore
from shopbot.settings import PROJECT_ROOT, Settings, get_settings
from shopbot.stack import Stack, free_port, rasa_env, rasa_executable, train_bot

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(sample_store_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    model = train_bot(get_settings().models_dir)
    run_dir = tmp_path_factory.mktemp("stack")
    settings = Settings(
        store_dir=sample_store_dir, rasa_port=free_port(), action_port=free_port(),
        web_port=free_port(), tracker_db=run_dir / "tracker.db",
    )
    running = Stack(settings, model, log_dir=run_dir / "logs")
    running.start()
    yield running
    running.stop()


def post(url: str, payload: dict[str, Any], timeout: float = 60) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def say(stack: Stack, sender: str, text: str) -> list[dict[str, Any]]:
    status, messages = post(f"{stack.rasa_url}/webhooks/rest/webhook",
                            {"sender": sender, "message": text})
    assert status == 200
    return messages


def texts(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m.get("text", "") for m in messages)


def cards(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for m in messages if m.get("custom", {}).get("type") == "product_cards"
            for c in m["custom"]["products"]]


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
    assert "delivery" in answer or "shipping" in answer
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


def refinement_conversation(stack: Stack, store: ProductStore, sender: str) -> None:
    """Search, page, refine price and colour, open one product, compare two - over REST."""
    first = cards(say(stack, sender, "show me red dresses"))
    assert len(first) == 5
    assert all(p.base_colour == "Red" and p.article_type == "Dresses"
               for p in store.get([c["id"] for c in first]))

    more = say(stack, sender, "show me more")
    more_cards = cards(more)
    assert more_cards and not {c["id"] for c in more_cards} & {c["id"] for c in first}
    assert all(c["article_type"] == "Dresses" for c in more_cards)

    cheaper = say(stack, sender, "cheaper ones")
    cheap_cards = cards(cheaper)
    median = sorted(c["final_price"] for c in more_cards)[len(more_cards) // 2]
    assert cheap_cards and all(c["colour"] == "Red" for c in cheap_cards)
    assert cheap_cards[0]["final_price"] < median

    blue = cards(say(stack, sender, "in blue"))
    assert blue and all(c["article_type"] == "Dresses" for c in blue)
    assert all("Blue" in c["colour"] for c in blue[:1])

    details = say(stack, sender, "tell me about the second one")
    (opened,) = cards(details)
    assert opened["id"] == blue[1]["id"]
    assert "Price:" in texts(details)

    compared = say(stack, sender, "compare the first two")
    assert [c["id"] for c in cards(compared)] == [c["id"] for c in blue[:2]]
    assert "Cheapest:" in texts(compared)


def test_refinement_over_rest(stack: Stack, sample_store: ProductStore) -> None:
    refinement_conversation(stack, sample_store, "e2e-refiner")


def test_demo_page_proxy_reaches_the_bot(stack: Stack) -> None:
    status, messages = post(f"{stack.web_url}/api/chat",
                            {"sender": "web-shopper", "message": "show me red dresses"})
    assert status == 200 and cards(messages)
    status, error = post(f"{stack.web_url}/api/chat", {"sender": "web-shopper", "message": ""})
    assert status == 400 and error["error"]


def test_dead_action_server_gets_a_clear_message(stack: Stack) -> None:
    """Runs last in this module: it stops the action server for good."""
    action_server = next(s for s in stack.services if s.name == "action server")
    action_server.stop()
    status, messages = post(f"{stack.web_url}/api/chat",
                            {"sender": "web-shopper-2", "message": "show me red dresses"})
    assert status == 200
    assert texts(messages).strip(), "the shopper is told something went wrong"
    assert not cards(messages)
    # Rasa itself stays up and still answers what needs no action server.
    assert "I can help you" in texts(say(stack, "after-crash", "asdkjh qwe zzxcv"))
