"""The shop policy file: loading and validation, retrieval by meaning, the FAQ action."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.faq import ActionAnswerFaq
from actions.replies import HUMAN_BUTTONS
from retrieval.policy import (
    POLICY_FILE_ENV,
    PolicyError,
    PolicyRetriever,
    ShopPolicy,
    current_policy,
    load_policy,
)
from shopcore.settings import PROJECT_ROOT

# Named intents answered from the policy file; the others need the order store or a person.
POLICY_INTENTS = {
    "place_order", "delivery_options", "delivery_period", "check_cancellation_fee",
    "check_refund_policy", "check_payment_methods", "payment_issue", "check_invoice",
    "set_up_shipping_address", "create_account", "registration_problems", "edit_account",
    "switch_account", "delete_account", "recover_password", "newsletter_subscription",
    "contact_customer_service", "review",
}

SHIPPED_POLICY = PROJECT_ROOT / "bot" / "policy.yml"


@pytest.fixture(scope="module")
def policy() -> ShopPolicy:
    return load_policy(SHIPPED_POLICY)


@pytest.fixture(scope="module")
def retriever(policy: ShopPolicy) -> PolicyRetriever:
    return PolicyRetriever(policy)


def write_policy(tmp_path: Path, edit: Any = None) -> Path:
    """A copy of the shop's policy file, changed by ``edit(raw)``."""
    raw = yaml.safe_load(SHIPPED_POLICY.read_text(encoding="utf-8"))
    if edit:
        edit(raw)
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_shop_policy_file_answers_every_policy_intent(policy: ShopPolicy) -> None:
    assert policy.intents == POLICY_INTENTS
    for entry in policy.entries:
        text = policy.answer(entry)
        assert text and "{" not in text and "}" not in text, entry.id


def test_policy_intents_are_routed_to_the_answer_action(policy: ShopPolicy) -> None:
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
    names = {i if isinstance(i, str) else next(iter(i)) for i in domain["intents"]}
    assert policy.intents <= names
    rules = yaml.safe_load((PROJECT_ROOT / "bot/data/rules.yml").read_text(encoding="utf-8"))
    answered = {r["steps"][0]["intent"] for r in rules["rules"]
                if r["steps"][-1].get("action") == "action_answer_faq"}
    assert answered == policy.intents | {"faq"}


def test_answers_quote_the_facts(policy: ShopPolicy) -> None:
    entry = policy.for_intent("delivery_options")
    assert entry is not None
    assert f"₹{policy.shipping.free_above:,}" in policy.answer(entry)
    refund = policy.answer(policy.for_intent("check_refund_policy"))
    assert f"{policy.returns.window_days} days" in refund
    assert policy.for_intent("track_order") is None


def test_changed_fact_shows_in_every_answer_quoting_it(tmp_path: Path) -> None:
    path = write_policy(tmp_path, lambda raw: raw["shipping"].update(free_above=1499))
    changed = load_policy(path)
    assert "₹1,499" in changed.answer(changed.for_intent("delivery_options"))


@pytest.mark.parametrize(("question", "entry_id"), [
    ("what size am i in your jeans", "sizes"),
    ("do you wrap presents", "gift_wrap"),
    ("how do i wash a silk saree", "product_care"),
    ("can i change the size after delivery", "exchanges"),
    ("warranty on my smartwatch?", "warranty"),
    ("tell me when it's back in stock", "restock"),
    ("are these adidas shoes real", "authenticity"),
    ("do you sell my data", "privacy"),
    ("is gst included in the price", "prices_and_taxes"),
    ("how many days until my parcel gets here", "delivery_period"),
    ("do you have a promo code for me", "coupons"),
])
def test_retrieval_finds_the_entry_for_paraphrases(retriever: PolicyRetriever, question: str,
                                                   entry_id: str) -> None:
    match = retriever.best(question)
    assert match is not None and match.entry.id == entry_id, retriever.rank(question)


@pytest.mark.parametrize("question", [
    "what's the weather in delhi", "tell me a joke", "asdkjh qwe zzxcv", "", "   ",
    "who won the cricket match",
])
def test_retrieval_below_threshold_gives_nothing(retriever: PolicyRetriever,
                                                 question: str) -> None:
    assert retriever.best(question) is None


@pytest.mark.parametrize(("edit", "message"), [
    (lambda raw: raw["entries"][0].update(answer="Free above {shipping.free_over}."),
     "{shipping.free_over}, which is not a fact"),
    (lambda raw: raw["entries"][0].update(answer="Free above {shipping}."),
     "{shipping}, which is not a fact"),
    (lambda raw: raw["entries"][1].update(id=raw["entries"][0]["id"]), "two entries have the id"),
    (lambda raw: raw["entries"][1].update(intent=raw["entries"][0]["intent"]),
     "two entries answer the intent"),
    (lambda raw: raw["entries"][2].pop("questions"),
     "entries[2] (check_cancellation_fee).questions: Field required"),
    (lambda raw: raw["shipping"].update(free_above="lots"), "shipping.free_above"),
    (lambda raw: raw["returns"].update(windw_days=30), "returns.windw_days: Extra inputs"),
    (lambda raw: raw.pop("contact"), "contact: Field required"),
])
def test_bad_policy_file_gives_a_clear_error(tmp_path: Path, edit: Any, message: str) -> None:
    path = write_policy(tmp_path, edit)
    with pytest.raises(PolicyError) as error:
        load_policy(path)
    assert str(path) in str(error.value)
    assert message in str(error.value)


@pytest.mark.parametrize(("content", "message"), [
    (None, "not found"),
    ("shop: [unclosed", "not valid YAML"),
    ("- just\n- a list\n", "must be a mapping"),
])
def test_unreadable_policy_file_gives_a_clear_error(tmp_path: Path, content: str | None,
                                                    message: str) -> None:
    path = tmp_path / "policy.yml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(PolicyError, match=message):
        load_policy(path)


def test_current_policy_reads_the_file_named_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_policy(tmp_path, lambda raw: raw["contact"].update(phone="022-555-0100"))
    monkeypatch.setenv(POLICY_FILE_ENV, str(path))
    assert current_policy().contact.phone == "022-555-0100"


def test_edited_policy_file_is_picked_up_without_restart(tmp_path: Path) -> None:
    path = write_policy(tmp_path)
    assert current_policy(path).returns.window_days == 30
    write_policy(tmp_path, lambda raw: raw["returns"].update(window_days=15))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert current_policy(path).returns.window_days == 15


def tracker(text: str, intent: str) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.95}, "entities": []}
    return Tracker("shopper-1", {}, latest, [], False, None, {}, "action_listen")


async def answer(text: str, intent: str) -> list[dict[str, Any]]:
    dispatcher = CollectingDispatcher()
    events = await ActionAnswerFaq().run(dispatcher, tracker(text, intent), {})
    assert events == []
    return dispatcher.messages


async def test_action_answers_a_policy_intent_from_its_entry(policy: ShopPolicy) -> None:
    (message,) = await answer("wat payment methods u accept", "check_payment_methods")
    assert message["text"] == policy.answer(policy.for_intent("check_payment_methods"))
    assert "UPI" in message["text"]


async def test_action_answers_other_shop_questions_by_meaning(policy: ShopPolicy) -> None:
    (message,) = await answer("can you gift wrap the watch for my dad", "faq")
    assert "gift wrapping" in message["text"]


async def test_action_offers_a_person_when_unsure() -> None:
    (message,) = await answer("can i bring my dog to the warehouse party", "faq")
    assert message["text"].startswith("I'm not sure")
    assert message["buttons"] == HUMAN_BUTTONS
    assert {b["payload"] for b in message["buttons"]} == {"/contact_human_agent", "/deny"}


async def test_action_with_a_broken_policy_file_answers_politely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "policy.yml"
    broken.write_text("shop: [unclosed", encoding="utf-8")
    monkeypatch.setenv(POLICY_FILE_ENV, str(broken))
    (message,) = await answer("how long does delivery take", "delivery_period")
    assert "can't look up our shop policies" in message["text"]
    assert message["buttons"] == HUMAN_BUTTONS
    assert "not valid YAML" in caplog.text
