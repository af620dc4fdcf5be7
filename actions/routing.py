"""Which action answers an intent, read from the bot's own rules (bot/data/rules.yml).

A form that yields to a different request, and the fallback that settles a guess, hand the
turn to the action the rules would have chosen; reading the rules keeps that one place.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import yaml

from shop.references import MONTHS

RULES_FILE = Path(__file__).resolve().parent.parent / "bot" / "data" / "rules.yml"

# What each request is, in words, and the intent that starts it again (the resume button).
FLOWS = {
    "track_order_form": ("track_order", "track an order"),
    "track_refund_form": ("track_refund", "check on a refund"),
    "invoice_form": ("get_invoice", "get an invoice"),
    "cancel_order_form": ("cancel_order", "cancel an order"),
    "return_order_form": ("get_refund", "return an order"),
    "change_address_form": ("change_shipping_address", "change a delivery address"),
    "checkout_form": ("checkout", "check out"),
}


@functools.lru_cache(maxsize=1)
def _intent_actions() -> dict[str, str]:
    """intent -> first action of every unconditional rule that starts with that intent."""
    rules = (yaml.safe_load(RULES_FILE.read_text(encoding="utf-8")) or {}).get("rules") or []
    found: dict[str, str] = {}
    for rule in rules:
        steps = rule.get("steps") or []
        if rule.get("condition") or len(steps) < 2:
            continue
        intent, action = steps[0].get("intent"), steps[1].get("action")
        if intent and action:
            found.setdefault(intent, action)
    return found


def action_for(intent: str) -> str | None:
    """The action (or form) the rules run for ``intent``; None when no rule starts with it."""
    return _intent_actions().get(intent)


# Replies to a form's question, never a new request: yes/no, "stop", a misunderstanding.
ANSWER_INTENTS = {"affirm", "deny", "nlu_fallback", "out_of_scope", "inform_profile",
                  "contact_human_agent", "complaint", "thank", "how_are_you"}
YIELD_CONFIDENCE = 0.4
# Words around an order number that still make the message just an answer ("it's SB-100101",
# "my last one", "the one from November").
_ANSWER_WORDS = re.compile(
    r"\b(?:it'?s|it|is|was|its|my|the|a|an|this|that|one|order|no|number|num|id|here|ok|okay|"
    r"sure|yes|yeah|please|pls|thanks|thank|you|last|latest|recent|most|newest|previous|from|"
    r"in|of|i|placed|bought|ordered|month|week|before|with|" + "|".join(MONTHS) + r")\b")
_ORDER_NUMBER = re.compile(r"(?:sb\s*[-_:#.]?\s*|#\s*)?\d{3,}", re.IGNORECASE)


def just_an_answer(text: str) -> bool:
    """True when the message is only an order number or a reference to one, not a request."""
    rest = _ANSWER_WORDS.sub(" ", _ORDER_NUMBER.sub(" ", (text or "").lower()[:300]))
    return not re.sub(r"[^a-z]+", "", rest)


def yield_target(form: str, requested_slot: str | None, intent: str, confidence: float,
                 text: str) -> str | None:
    """The action to hand the turn to when the message answering ``form``'s question is
    really a different request ("where is my order SB-100101" while cancelling); None when
    the form should read it as its answer."""
    if requested_slot not in ("order_id", "order_confirm") or intent in ANSWER_INTENTS:
        return None
    if confidence < YIELD_CONFIDENCE or intent == FLOWS.get(form, ("", ""))[0]:
        return None
    if requested_slot == "order_id" and just_an_answer(text):
        return None
    action = action_for(intent)
    # Only actions that answer a request; a greeting mid-form is not worth leaving it for.
    return action if action and not action.startswith("utter_") else None
