"""Custom actions with real rasa_sdk Tracker and CollectingDispatcher over a real store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.faq import ActionAnswerFaq
from actions.search import ActionSearchProducts
from actions.services import reset_services
from shopcore.settings import Settings

DOMAIN: dict[str, Any] = {"responses": {}}


pytestmark = pytest.mark.usefixtures("services_on_sample_store")


def tracker(text: str, intent: str = "search_products", **message: Any) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.99}, "entities": [],
              **message}
    return Tracker("shopper-1", {}, latest, [], False, None, {}, "action_listen")


async def run(action: Any, t: Tracker) -> tuple[CollectingDispatcher, list[dict[str, Any]]]:
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, t, DOMAIN)
    return dispatcher, events


async def test_search_replies_with_text_and_cards() -> None:
    dispatcher, events = await run(ActionSearchProducts(), tracker("show me red dresses"))
    (message,) = dispatcher.messages
    assert message["text"].startswith("Here are some red dresses")
    cards = message["custom"]["products"]
    assert message["custom"]["type"] == "product_cards"
    assert len(cards) == 5
    assert all(c["colour"] == "Red" and c["article_type"] == "Dresses" for c in cards)
    for card in cards:
        assert card["id"] in message["text"] and card["name"] in message["text"]
        assert {"price", "final_price", "brand", "image_url"} <= card.keys()
    slots = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
    assert slots["shown_products"] == [c["id"] for c in cards]
    assert slots["search_filters"]["colours"] == ["Red"]


async def test_search_uses_nlu_brand_entity_as_hint() -> None:
    t = tracker("only dresses", entities=[{"entity": "brand", "value": "Only"}])
    dispatcher, _ = await run(ActionSearchProducts(), t)
    cards = dispatcher.messages[0]["custom"]["products"]
    brands = [c["brand"] for c in cards]
    assert brands[0] == "Only"
    only = brands.count("Only")
    assert brands[:only] == ["Only"] * only, "the brand's products come first"
    if only < len(brands):
        assert f"I found {only} " in dispatcher.messages[0]["text"]


async def test_search_admits_relaxing() -> None:
    dispatcher, _ = await run(ActionSearchProducts(), tracker("red dresses under 100"))
    assert "couldn't find red dresses under ₹100" in dispatcher.messages[0]["text"]
    assert "price range" in dispatcher.messages[0]["text"]


@pytest.mark.parametrize("text", ["", "😀😀😀", "qwerty asdf zxcv"])
async def test_search_with_nothing_to_find_says_so(text: str) -> None:
    dispatcher, _ = await run(ActionSearchProducts(), tracker(text))
    (message,) = dispatcher.messages
    assert "custom" not in message or not message["custom"]
    assert message["text"]


async def test_search_with_unusable_store_answers_politely(
    tmp_path: Path, services_on_sample_store: Settings
) -> None:
    not_a_folder = tmp_path / "store"
    not_a_folder.write_text("this is a file, so Chroma cannot open a store here")
    reset_services(services_on_sample_store.replace(store_dir=not_a_folder))
    dispatcher, events = await run(ActionSearchProducts(), tracker("red dresses"))
    assert "isn't working right now" in dispatcher.messages[0]["text"]
    assert events == []


async def test_faq_answers_a_policy_intent_from_the_policy_file() -> None:
    t = tracker("how many days does delivery take?", intent="delivery_period")
    dispatcher, events = await run(ActionAnswerFaq(), t)
    (message,) = dispatcher.messages
    assert "business days" in message["text"] and events == []


async def test_faq_answers_other_shop_questions_by_meaning() -> None:
    dispatcher, _ = await run(ActionAnswerFaq(), tracker("is there a size chart", intent="faq"))
    assert "Size chart" in dispatcher.messages[0]["text"]


@pytest.mark.parametrize("text", ["how is the weather in goa", ""])
async def test_faq_unsure_offers_a_person(text: str) -> None:
    dispatcher, _ = await run(ActionAnswerFaq(), tracker(text, intent="faq"))
    (message,) = dispatcher.messages
    assert "not sure" in message["text"] and "person" in message["text"]
    assert [b["payload"] for b in message["buttons"]] == ["/contact_human_agent", "/deny"]
