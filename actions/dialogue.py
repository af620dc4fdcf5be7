"""Reading what the shopper said: the latest message, entities, sizes, positions in a list,
product ids, "stop", and free-text answers fit to use. One place for every action.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from rasa_sdk import Tracker

from actions.services import services
from retrieval.query import SearchConstraints, parse_query
from retrieval.refine import follow_up_kind
from shop.orders import clean_address
from shopcore.ids import valid_id
from shopcore.text import BadInput

logger = logging.getLogger(__name__)

MAX_SLOT_TEXT = 2000  # anything longer is refused before it is looked at
TRANSCRIPT_EVENTS = 400  # the ticket store keeps the newest turns; no need to read more

_SIZE = re.compile(
    r"\b(?:in\s+)?size\s+([a-z0-9][a-z0-9./-]{0,7})\b"
    r"|\bin\s+(extra\s+small|extra\s+large|x{1,3}l|xs|small|medium|large|s|m|l)\b",
    re.IGNORECASE)
_ORDINALS = {
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
    "fifth": 5, "5th": 5, "sixth": 6, "6th": 6, "seventh": 7, "7th": 7, "eighth": 8, "8th": 8,
    "ninth": 9, "9th": 9, "tenth": 10, "10th": 10,
}
_FIRST_N = re.compile(r"\b(?:first|top)\s+(two|three|four|five|2|3|4|5)\b")
_WORD_NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5}
_PRODUCT_ID = re.compile(r"\b(?:id|product|item)\s*#?\s*(\d{1,12})\b")
_STOP = re.compile(r"^\s*(?:stop|quit|exit|never\s*mind|nevermind|forget\s+it|leave\s+it|"
                   r"no|nope|no\s+thanks|cancel\s+that|skip)\s*[.!]*\s*$", re.IGNORECASE)
# "never mind, don't cancel anything", "forget it, I'll keep it": leaving, whatever follows.
_STOP_PREFIX = re.compile(r"^\s*(?:never\s*mind|nevermind|forget\s+(?:it|about\s+it)|"
                          r"leave\s+it|don'?t\s+(?:bother|cancel|do\s+(?:it|that|anything))|"
                          r"no\s*,?\s*(?:thanks|thank\s+you|leave\s+it|don'?t|stop))\b",
                          re.IGNORECASE)
_MARKUP = re.compile(r"[<>{}`$\\]|--|/\*")


def latest_text(tracker: Tracker) -> str:
    return str((tracker.latest_message or {}).get("text") or "")


def latest_intent(tracker: Tracker) -> str:
    return str(((tracker.latest_message or {}).get("intent") or {}).get("name") or "")


def entities(tracker: Tracker) -> list[dict[str, Any]]:
    return list((tracker.latest_message or {}).get("entities") or [])


def entity_value(tracker: Tracker, name: str) -> str | None:
    """The first value of an entity in the latest message (button payloads carry
    ``product_id`` and ``size`` this way, so card buttons work without the NLU)."""
    for entity in entities(tracker):
        if entity.get("entity") == name and entity.get("value") not in (None, ""):
            return str(entity["value"])[:64]
    return None


def size_in(text: str) -> tuple[str | None, str]:
    """The size the text names ("in size M", "size 9", "in medium") and the text without it
    (so "size 4" is never read as "the fourth one")."""
    match = _SIZE.search(text[:MAX_SLOT_TEXT])
    if not match:
        return None, text
    return (match.group(1) or match.group(2)), text[: match.start()] + text[match.end():]


def positions(text: str, shown_count: int) -> list[int]:
    """1-based positions in the shown list that the text refers to, in order mentioned.

    "the second one" -> [2]; "compare the first two" -> [1, 2]; "1 and 3" -> [1, 3];
    "the last one" -> [shown_count]. Positions outside the list are dropped.
    """
    lowered = (text or "").lower()
    found: list[int] = []
    first_n = _FIRST_N.search(lowered)
    if first_n:
        value = first_n.group(1)
        found.extend(range(1, (int(value) if value.isdigit() else _WORD_NUMBERS[value]) + 1))
    tokens = re.findall(r"[a-z0-9]+", lowered)
    found.extend(_ORDINALS[t] for t in tokens if t in _ORDINALS and not first_n)
    if not found:  # "compare 1 and 3", "#2", "number 4"
        found.extend(int(t) for t in tokens if t.isdigit() and len(t) <= 2)
    if re.search(r"\b(last|final)\b", lowered) and shown_count:
        found.append(shown_count)
    unique: list[int] = []
    for position in found:
        if 1 <= position <= shown_count and position not in unique:
            unique.append(position)
    return unique


def product_id_in(text: str) -> str | None:
    """An explicit product id ("similar to product 15970", the widget's Similar button)."""
    match = _PRODUCT_ID.search(text.lower())
    return match.group(1) if match else None


def wants_to_stop(tracker: Tracker, value: Any) -> bool:
    """'stop', 'never mind', a plain 'no': the shopper is leaving the form."""
    if latest_intent(tracker) == "deny":
        return True
    return isinstance(value, str) and bool(_STOP.match(value[:100])
                                           or _STOP_PREFIX.match(value[:100]))


def delivery_address(value: Any) -> str:
    """An address fit to print on a parcel, or BadInput: the shop's checks plus no markup
    or code-like text (which no courier can use and a label printer may mangle)."""
    if isinstance(value, str) and _MARKUP.search(value[:MAX_SLOT_TEXT]):
        raise BadInput("Please type just the address: letters, numbers and , . / - # "
                       "(no code or markup).")
    return clean_address(value)


def transcript(tracker: Tracker) -> list[dict[str, Any]]:
    """User and bot texts of the conversation, oldest first, with their timestamps."""
    turns = []
    for event in tracker.events[-TRANSCRIPT_EVENTS:]:
        role = event.get("event")
        if role in ("user", "bot") and event.get("text"):
            turns.append({"role": role, "text": event["text"], "ts": event.get("timestamp")})
    return turns


def own_words(tracker: Tracker) -> str:
    """The shopper's own words: the latest message that isn't a button payload."""
    for event in reversed(tracker.events):
        text = str(event.get("text") or "") if event.get("event") == "user" else ""
        if text and not text.startswith("/"):
            return text
    return ""


def shown_ids(tracker: Tracker) -> list[str]:
    """The product ids shown last (the slot the search and recommend replies set)."""
    return [pid for pid in tracker.get_slot("shown_products") or [] if valid_id(pid)]


def search_follow_up(tracker: Tracker) -> str:
    """What the message does to the product search under way: "refine" it ("in black",
    "something under 2000", "not Nike"), start a "new_search" (it names another kind of
    product), or "none" (it is about something else), whatever intent the NLU guessed."""
    text = latest_text(tracker).strip()
    if not text or text.startswith("/"):
        return "none"
    previous = tracker.get_slot("search_filters")
    constraints = SearchConstraints.from_dict(previous) if previous else None
    if constraints is None and tracker.get_slot("photo_ref"):
        constraints = SearchConstraints(text="photo")  # refining a photo search
    try:
        vocab = services().store.vocab
        kind = follow_up_kind(text, vocab, constraints, entities(tracker))
        if kind == "refine" and tracker.get_slot("photo_ref") \
                and parse_query(text, vocab, entities(tracker)).article_types:
            return "new_search"  # a typed product request after a photo: "red dresses"
        return kind
    except Exception:
        logger.exception("could not read %r as a search follow-up", text[:200])
        return "none"
