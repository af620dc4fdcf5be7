"""The recommendation action over the real sample store, event log and recommender."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.details import ActionProductDetails
from actions.recommend import ActionRecommendProducts
from actions.search import ActionSearchProducts
from actions.services import reset_services, services
from recsys.events import EventType
from shopcore.settings import Settings

pytestmark = pytest.mark.usefixtures("services_on_sample_store")


def tracker(text: str, sender: str = "shopper-1", entities: list[dict[str, Any]] | None = None,
            **slots: Any) -> Tracker:
    latest = {"text": text, "intent": {"name": "recommend_products", "confidence": 0.99},
              "entities": entities or []}
    return Tracker(sender, slots, latest, [], False, None, {}, "action_listen")


async def recommend(text: str, sender: str = "shopper-1",
                    entities: list[dict[str, Any]] | None = None, **slots: Any) -> dict[str, Any]:
    dispatcher = CollectingDispatcher()
    events = await ActionRecommendProducts().run(
        dispatcher, tracker(text, sender, entities, **slots), {})
    (message,) = dispatcher.messages
    message["slots"] = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
    return message


def card_ids(message: dict[str, Any]) -> list[str]:
    return [card["id"] for card in message["custom"]["products"]]


async def test_cold_start_is_honest_and_opening_products_changes_the_picks() -> None:
    cold = await recommend("recommend me something")
    assert "don't know your taste yet" in cold["text"]
    assert "because" not in cold["text"]  # no history: no invented reasons
    assert cold["slots"]["shown_products"] == card_ids(cold)

    store = services().store
    dresses = [p for p in store.all_products()[0] if p.article_type == "Dresses"][:2]
    services().log_event("shopper-1", [p.id for p in dresses], EventType.OPENED)
    warm = await recommend("recommend me something")
    assert card_ids(warm) != card_ids(cold)
    assert "from what you've looked at" in warm["text"]
    assert not {p.id for p in dresses} & set(card_ids(warm)), "already seen"
    picked = store.get(card_ids(warm))
    assert sum(p.article_type == "Dresses" for p in picked) >= 3
    assert "because it's like" in warm["text"] or "because you looked at" in warm["text"]


async def test_similar_to_the_second_one_after_a_search() -> None:
    dispatcher = CollectingDispatcher()
    search_events = await ActionSearchProducts().run(
        dispatcher, tracker("black casual shoes for men"), {})
    shown = next(e["value"] for e in search_events if e.get("name") == "shown_products")
    message = await recommend("show me something similar to the second one",
                              shown_products=shown)
    store = services().store
    second = store.get([shown[1]])[0]
    assert message["text"].startswith(f"Similar to the {second.name}")
    picked = store.get(card_ids(message))
    assert second.id not in card_ids(message)
    assert picked[0].article_type == second.article_type
    assert all(p.gender in {second.gender, "Unisex"} for p in picked)


async def test_what_goes_with_this_completes_the_look() -> None:
    store = services().store
    shirt = next(p for p in store.all_products()[0]
                 if p.article_type == "Shirts" and p.gender == "Men")
    dispatcher = CollectingDispatcher()
    await ActionProductDetails().run(
        dispatcher, tracker("tell me about the first one", shown_products=[shirt.id]), {})
    assert services().records.events.recent_items("shopper-1") == [shirt.id]
    message = await recommend("what goes with this?")
    assert message["text"].startswith(f"These would go well with the {shirt.name}")
    picked = store.get(card_ids(message))
    assert picked and all(p.article_type != "Shirts" for p in picked)
    assert all(p.gender in {"Men", "Unisex"} for p in picked)


async def test_budget_and_gender_of_the_last_search_still_apply() -> None:
    filters = {"genders": ["Women", "Unisex"], "max_price": 1500, "colours": ["Red"]}
    message = await recommend("any recommendations?", search_filters=filters)
    picked = services().store.get(card_ids(message))
    assert picked
    assert all(p.gender in {"Women", "Unisex"} and p.final_price <= 1500 for p in picked)
    assert {p.base_colour for p in picked} != {"Red"}, "colour is not carried over"


async def test_bought_products_are_not_recommended_again() -> None:
    store = services().store
    bags = [p for p in store.all_products()[0] if p.sub_category == "Bags"]
    services().log_event("shopper-2", [bags[0].id], EventType.OPENED)
    services().log_event("shopper-2", [bags[1].id], EventType.PURCHASED)
    message = await recommend("recommend me something", sender="shopper-2")
    assert bags[1].id not in card_ids(message)


@pytest.mark.parametrize("text", ["similar to product 99999999", "similar to the 9th one", ""])
async def test_unknown_references_still_get_an_answer(text: str) -> None:
    message = await recommend(text)
    assert card_ids(message)


async def test_broken_model_file_degrades_to_content_and_popularity(
    tmp_path: Path, services_on_sample_store: Settings
) -> None:
    broken = tmp_path / "recommender.pt"
    broken.write_bytes(b"definitely not a torch file")
    reset_services(services_on_sample_store.replace(recsys_model=broken))
    message = await recommend("recommend me something")
    assert card_ids(message)
    assert services().recommender.trained is None


async def test_similar_button_payload_names_the_product_by_id() -> None:
    store = services().store
    watch = next(p for p in store.all_products()[0] if p.article_type == "Watches")
    message = await recommend(f'/recommend_products{{"product_id":"{watch.id}"}}',
                              entities=[{"entity": "product_id", "value": watch.id}])
    assert message["text"].startswith(f"Similar to the {watch.name}")
    assert store.get(card_ids(message))[0].article_type == "Watches"
