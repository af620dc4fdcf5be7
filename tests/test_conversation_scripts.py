"""The conversation benchmark's scripts (bench/conversations.yml) are well-formed, and its
checks read replies as intended. No bot, no server: canned replies only."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from datetime import UTC
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load_module():
    spec = importlib.util.spec_from_file_location("bench_conversations",
                                                  BENCH / "conversations.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


bc = _load_module()
CONVERSATIONS = bc.load_conversations()
CATEGORIES = ("follow_up", "new_search_keeps_gender", "negation", "forms_yield",
              "relative_refs", "descriptions", "no_dead_ends", "service", "chitchat")


def card(**fields):
    base = {"id": "1", "name": "Nike Men Black Running Shoes", "brand": "Nike",
            "price": 2999.0, "final_price": 2499.0, "colour": "Black",
            "article_type": "Sports Shoes", "gender": "Men"}
    return {**base, **fields}


def reply(text="", cards=(), buttons=()):
    messages = [{"text": text, "buttons": list(buttons)}] if text or buttons else []
    if cards:
        messages.append({"custom": {"type": "product_cards", "products": list(cards)}})
    return bc.Reply(messages)


def test_the_script_file_loads_and_is_well_formed() -> None:
    assert len(CONVERSATIONS) >= 60
    for conversation in CONVERSATIONS:
        assert bc.conversation_problems(conversation) == [], conversation["id"]
    ids = [c["id"] for c in CONVERSATIONS]
    assert len(ids) == len(set(ids))


def test_every_category_has_several_conversations() -> None:
    counts = Counter(c["category"] for c in CONVERSATIONS)
    assert set(counts) == set(CATEGORIES)
    assert all(n >= 5 for n in counts.values()), counts


def test_demo_order_ages_match_the_seeded_orders() -> None:
    from shop.demo import _DEMO_ORDERS

    seeded = {f"SB-1001{t.suffix:02d}": t.placed_days_ago for t in _DEMO_ORDERS}
    assert seeded == bc.DEMO_ORDER_AGE_DAYS


@pytest.mark.parametrize("broken, problem", [
    ({"id": "x", "category": "c", "turns": []}, "no turns"),
    ({"id": "x", "category": "c", "turns": [{"user": "hi"}]}, "no turn checks"),
    ({"id": "x", "category": "c", "turns": [{"user": "hi", "expect": [{"sayz": "a"}]}]},
     "unknown check kind"),
    ({"id": "x", "category": "c",
      "turns": [{"user": "a", "expect": [{"all_products": {"size": ["M"]}}]}]},
     "unknown facet"),
    ({"id": "x", "category": "c",
      "turns": [{"user": "a", "expect": [{"all_products": {"price": 2000}}]}]}, "price needs"),
    ({"id": "x", "category": "c",
      "turns": [{"user": "a", "payload": "/b", "expect": [{"no_products": True}]}]},
     "exactly one of"),
    ({"id": "x", "category": "c", "shopper": "vip",
      "turns": [{"user": "a", "expect": [{"no_products": True}]}]}, "shopper is one of"),
    ({"id": "x", "category": "c",
      "turns": [{"button": "Yes", "expect": [{"no_products": True}]}]}, "cannot press"),
    ({"id": "x", "category": "c",
      "turns": [{"user": "in {month_of:SB-999999}", "expect": [{"no_products": True}]}]},
     "unknown demo order"),
])
def test_malformed_conversations_are_reported(broken, problem) -> None:
    assert any(problem in p for p in bc.conversation_problems(broken))


def test_facet_checks() -> None:
    ctx = bc.Context()
    black = reply("Here you go", [card(), card(id="2", brand="ADIDAS", final_price=1500.0)])
    spec = {"article_type": ["Sports Shoes", "Casual Shoes"], "colour": "black"}
    assert bc.check_all_products(black, spec, ctx) is None
    assert bc.check_all_products(black, {"price": {"max": 2000}}, ctx)
    assert bc.check_no_product(black, {"brand": ["Puma"]}, ctx) is None
    assert bc.check_no_product(black, {"brand": ["adidas"]}, ctx)  # case-insensitive
    assert bc.check_any_product(black, {"price": {"max": 2000}}, ctx) is None
    assert bc.check_all_products(reply("nothing"), {"colour": "Black"}, ctx)  # none shown
    assert bc.check_no_product(black, {"name": {"contains": ["red rose"]}}, ctx) is None
    assert bc.check_min_products(black, 3, ctx)
    assert bc.check_no_products(reply("Our return policy..."), True, ctx) is None


def test_text_and_button_checks() -> None:
    ctx = bc.Context()
    listed = reply("Here are shirts without white:\n1. Arrow Men Shirt - ₹999 · Blue · id 7",
                   [card(colour="Blue")])
    assert bc.check_says(listed, ["WHITE"], ctx) is None
    assert bc.check_intro_says(listed, ["arrow"], ctx)  # the list line does not count
    assert bc.check_not_says(listed, ["shall i cancel"], ctx) is None
    handoff = reply("Sorry, I still didn't get that.",
                    buttons=[{"title": "Talk to a person", "payload": "/contact_human_agent"}])
    assert bc.check_says(handoff, ["person"], ctx)
    assert bc.check_mentions(handoff, ["person"], ctx) is None
    assert bc.check_buttons(handoff, "talk to", ctx) is None
    assert bc.check_min_buttons(handoff, 2, ctx)
    assert bc.check_matches(reply("Price: ₹1,299"), r"₹\s?[\d,]+", ctx) is None


def test_checks_against_the_last_list() -> None:
    first = reply("", [card(id="1", final_price=3000.0), card(id="2", final_price=2500.0)])
    ctx = bc.Context(history=[first, reply("a question in between")])
    assert bc.check_from_last_list(reply("", [card(id="2")]), 2, ctx) is None
    assert bc.check_from_last_list(reply("", [card(id="1")]), 2, ctx)
    assert bc.check_from_last_list(reply("", [card(id="1")]), "any", ctx) is None
    assert bc.check_new_products(reply("", [card(id="3")]), True, ctx) is None
    assert bc.check_new_products(reply("", [card(id="2")]), True, ctx)
    assert bc.check_cheaper(reply("", [card(id="3", final_price=900.0)]), True, ctx) is None
    assert bc.check_cheaper(reply("", [card(id="3", final_price=9000.0)]), True, ctx)


def test_month_templates_name_the_demo_orders_month() -> None:
    from datetime import datetime

    now = datetime(2026, 12, 6, tzinfo=UTC)
    assert bc.expand("the one I bought in {month_of:SB-100107}", now) == \
        "the one I bought in November"
    ctx = bc.Context(now=now)
    assert bc.check_order_same_month(reply("Order SB-100108 was returned"), "SB-100107",
                                     ctx) is None
    assert bc.check_order_same_month(reply("Order SB-100106 ..."), "SB-100107", ctx)


def test_a_scripted_conversation_runs_against_a_fake_bot() -> None:
    class FakeSession(bc.Session):
        def __init__(self) -> None:
            self.sent: list[str] = []

        def send(self, text: str):
            self.sent.append(text)
            if text == "running shoes":
                return [{"custom": {"type": "product_cards",
                                    "products": [card(id=str(i)) for i in range(5)]}}]
            return [{"text": "Which one?", "buttons": [{"title": "The first",
                                                         "payload": "/pick"}]}]

    session = FakeSession()

    class FakeTarget:
        def session(self, conversation, index):
            return session

    conversation = {"id": "x", "category": "c", "turns": [
        {"user": "running shoes", "expect": [{"min_products": 5}]},
        {"user": "tell me about it", "expect": [{"buttons": "first"}]},
        {"button": "first", "expect": [{"min_products": 1}]},
    ]}
    outcome = bc.run_conversation(FakeTarget(), conversation, 1)
    assert session.sent == ["running shoes", "tell me about it", "/pick"]
    assert not outcome.passed and outcome.failure["turn"] == 3
    assert "at least 1 products" in outcome.failure["expected"]
    result = bc.report([outcome], {})
    assert result["total"] == 1 and result["passed"] == 0
    assert result["by_category"] == {"c": {"passed": 0, "total": 1, "rate": 0.0}}


def test_select_by_category_and_id() -> None:
    chosen = bc.select(CONVERSATIONS, ["negation,service"], None)
    assert {c["category"] for c in chosen} == {"negation", "service"}
    assert [c["id"] for c in bc.select(CONVERSATIONS, None, ["service-invoice"])] == \
        ["service-invoice"]
    with pytest.raises(SystemExit):
        bc.select(CONVERSATIONS, ["nonsense"], None)
