"""No dead ends: what happens when the NLU is unsure or calls a message out of scope.

In order: "never mind" is acknowledged; a short product follow-up the NLU misread ("in
black" after running shoes) refines the active search, and a product request it could not
place (unsure, not out of scope) is searched; the second message in a row the bot cannot
place gets the offer of a person; a message between two close intents gets a question with a
button for each ("track an order or cancel an order?"); anything else gets the rephrase hint
(or, out of scope, what the shop can do).
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import FollowupAction
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.base import ShopAction
from actions.dialogue import latest_intent, latest_text, search_follow_up, wants_to_stop
from actions.replies import offer_a_person

logger = logging.getLogger(__name__)

FALLBACK = "nlu_fallback"
OUT_OF_SCOPE = "out_of_scope"
MISSES = (FALLBACK, OUT_OF_SCOPE)
MISSES_BEFORE_A_PERSON = 2
# A second guess at least this share of the first, and the first at least GUESS_FLOOR: close
# enough to ask rather than guess.
CLOSE_SHARE = 0.5
GUESS_FLOOR = 0.12
LEFT_IT_TEXT = "Alright, I've left it as it is. Anything else I can help with?"
OUT_OF_SCOPE_PERSON_TEXT = ("Sorry, that's outside what I can do here: I help with shopping in "
                            "this store. Would you like me to connect you with a person from "
                            "our team?")
PERSON_TEXT = ("Sorry, I'm still not getting it. Would you like me to connect you with a "
               "person from our team?")
# What each request is, in words a question can offer; product requests are not asked
# about (a misread product message goes to the search instead).
REQUESTS = {
    "track_order": "track an order", "cancel_order": "cancel an order",
    "change_order": "change an order", "get_refund": "return something",
    "track_refund": "check on a refund", "get_invoice": "get an invoice",
    "check_invoice": "look up your invoices",
    "change_shipping_address": "change a delivery address",
    "set_up_shipping_address": "save a delivery address",
    "delivery_options": "see the delivery options", "delivery_period": "know delivery times",
    "check_cancellation_fee": "know the cancellation fee",
    "check_refund_policy": "know the refund policy",
    "check_payment_methods": "know the payment methods",
    "payment_issue": "sort out a payment problem", "place_order": "know how to order",
    "create_account": "create an account", "registration_problems": "fix a sign-up problem",
    "edit_account": "edit your account", "switch_account": "switch accounts",
    "delete_account": "delete your account", "recover_password": "reset your password",
    "newsletter_subscription": "manage the newsletter",
    "contact_customer_service": "contact customer service",
    "contact_human_agent": "talk to a person", "complaint": "make a complaint",
    "review": "leave a review", "view_cart": "see your cart", "checkout": "check out",
}


def close_guesses(tracker: Tracker) -> list[str]:
    """The two requests the message sits between, when it is close enough to ask."""
    ranking = [r for r in (tracker.latest_message or {}).get("intent_ranking") or []
               if r.get("name") not in MISSES]
    if len(ranking) < 2:
        return []
    first, second = ranking[0], ranking[1]
    top, runner_up = float(first.get("confidence") or 0), float(second.get("confidence") or 0)
    if top < GUESS_FLOOR or runner_up < CLOSE_SHARE * top:
        return []
    names = [str(first.get("name")), str(second.get("name"))]
    return names if all(n in REQUESTS for n in names) else []


def misses_in_a_row(tracker: Tracker) -> int:
    """How many of the latest user messages, this one included, the bot could not place
    (not understood, or nothing this shop does)."""
    count = 0
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent not in MISSES:
            break
        count += 1
    return count


class ActionFallback(ShopAction):
    def name(self) -> str:
        return "action_fallback"

    def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: DomainDict) -> list[dict[str, Any]]:
        if wants_to_stop(tracker, latest_text(tracker)):  # "never mind, don't cancel anything"
            dispatcher.utter_message(text=LEFT_IT_TEXT)
            return []
        kind = search_follow_up(tracker)
        if kind == "refine":
            return [FollowupAction("action_refine_search")]
        out_of_scope = latest_intent(tracker) == OUT_OF_SCOPE
        if kind == "new_search" and not out_of_scope:  # ("laptops under 2000" stays out)
            return [FollowupAction("action_search_products")]
        if misses_in_a_row(tracker) >= MISSES_BEFORE_A_PERSON:
            return offer_a_person(dispatcher, OUT_OF_SCOPE_PERSON_TEXT if out_of_scope
                                  else PERSON_TEXT)
        if out_of_scope:
            dispatcher.utter_message(response="utter_out_of_scope")
            return []
        guesses = close_guesses(tracker)
        if guesses:
            first, second = (REQUESTS[g] for g in guesses)
            dispatcher.utter_message(
                text=f"Sorry, I'm not sure what you need: do you want to {first} or {second}?",
                buttons=[{"title": REQUESTS[g][0].upper() + REQUESTS[g][1:],
                          "payload": f"/{g}"} for g in guesses]
                + [{"title": "Something else", "payload": "/deny"}])
            return []
        dispatcher.utter_message(response="utter_default")
        return []
