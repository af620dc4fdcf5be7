"""Follow-up turns: refining constraints, ordinal references, and the actions built on them."""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.details import ActionCompareProducts, ActionProductDetails
from actions.dialogue import positions
from actions.search import ActionRefineSearch, ActionSearchProducts, ActionShowMore
from retrieval.catalog import load_catalog
from retrieval.query import parse_query
from retrieval.refine import refine_constraints
from retrieval.vocab import CatalogVocabulary


@pytest.fixture(scope="module")
def vocab() -> CatalogVocabulary:
    products, _ = load_catalog(None)
    return CatalogVocabulary.from_products(products)


@pytest.mark.parametrize(
    ("text", "count", "expected"),
    [("tell me about the second one", 5, [2]), ("compare the first two", 5, [1, 2]),
     ("compare 1 and 3", 5, [1, 3]), ("the last one", 4, [4]), ("first and third", 5, [1, 3]),
     ("the 9th", 5, []), ("tell me more", 5, [])],
)
def test_positions(text: str, count: int, expected: list[int]) -> None:
    assert positions(text, count) == expected


def test_refine_replaces_the_same_kind_of_facet(vocab: CatalogVocabulary) -> None:
    first = parse_query("red dresses under 3000", vocab)
    blue = refine_constraints(first, "in blue", vocab)
    assert "Blue" in blue.colours and "Red" not in blue.colours
    assert blue.article_types == ["Dresses"] and blue.max_price == 3000
    women = refine_constraints(parse_query("sneakers for men", vocab), "for women instead", vocab)
    assert women.genders == ["Women", "Unisex"]
    anything = refine_constraints(first, "any price is fine", vocab)
    assert anything.max_price is None and anything.colours == ["Red"]


def test_cheaper_moves_the_budget_below_what_was_shown(vocab: CatalogVocabulary) -> None:
    products, _ = load_catalog(None)
    shown = [p for p in products if p.article_type == "Dresses"][:5]
    cheaper = refine_constraints(parse_query("dresses", vocab), "cheaper ones", vocab, shown)
    median = sorted(p.final_price for p in shown)[2]
    assert cheaper.max_price is not None and cheaper.max_price < median
    pricier = refine_constraints(parse_query("dresses", vocab), "something more premium",
                                 vocab, shown)
    assert pricier.min_price is not None and pricier.min_price > median


pytestmark = pytest.mark.usefixtures("services_on_sample_store")


class Conversation:
    """Carries slots between actions the way Rasa's tracker would."""

    def __init__(self) -> None:
        self.slots: dict[str, Any] = {}

    async def turn(self, action: Any, text: str) -> dict[str, Any]:
        tracker = Tracker("shopper", dict(self.slots), {"text": text, "entities": []}, [],
                          False, None, {}, "action_listen")
        dispatcher = CollectingDispatcher()
        for event in await action.run(dispatcher, tracker, {}):
            if event.get("event") == "slot":
                self.slots[event["name"]] = event["value"]
        return dispatcher.messages[0]


async def test_refinement_conversation(sample_store: Any) -> None:
    chat = Conversation()
    first = await chat.turn(ActionSearchProducts(), "red dresses")
    first_ids = [c["id"] for c in first["custom"]["products"]]
    first_prices = [c["final_price"] for c in first["custom"]["products"]]

    more = await chat.turn(ActionShowMore(), "show more")
    more_ids = [c["id"] for c in more["custom"]["products"]]
    assert more_ids and not set(more_ids) & set(first_ids)
    assert more["text"].startswith("More red dresses")

    cheaper = await chat.turn(ActionRefineSearch(), "cheaper ones")
    cheap_cards = cheaper["custom"]["products"]
    assert cheap_cards and all(c["colour"] == "Red" for c in cheap_cards)
    assert max(c["final_price"] for c in cheap_cards) < sorted(first_prices)[2] + 1

    blue = await chat.turn(ActionRefineSearch(), "in blue")
    assert all(c["article_type"] == "Dresses" for c in blue["custom"]["products"])
    assert all("Blue" in c["colour"] for c in blue["custom"]["products"][:1])

    details = await chat.turn(ActionProductDetails(), "tell me about the second one")
    second = chat.slots["shown_products"][1]
    assert details["custom"]["products"][0]["id"] == second
    shown = details["custom"]["products"][0]
    assert details["text"].startswith(shown["name"]) and "Price: ₹" in details["text"]

    compared = await chat.turn(ActionCompareProducts(), "compare the first two")
    assert [c["id"] for c in compared["custom"]["products"]] == chat.slots["shown_products"][:2]
    assert "Cheapest:" in compared["text"]


async def test_follow_ups_without_a_search_explain_what_to_do() -> None:
    chat = Conversation()
    assert "first" in (await chat.turn(ActionShowMore(), "show more"))["text"]
    assert "Search for something first" in (
        await chat.turn(ActionProductDetails(), "the second one"))["text"]
    assert "Search for something first" in (
        await chat.turn(ActionCompareProducts(), "compare them"))["text"]
    refined = await chat.turn(ActionRefineSearch(), "black heels")
    assert refined["custom"]["products"], "a refinement with no history is a new search"
