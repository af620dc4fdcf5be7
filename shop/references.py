"""Orders named the way people name them: "my last order", "the one I bought in November",
"the order with the sneakers" instead of SB-123456.

Pure functions over the shopper's own orders (newest first, as ``OrderStore.orders_of``
gives them), so a reference can only ever resolve to one of that shopper's orders.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shop.orders import Order
from shopcore.db import now_utc

MONTHS = {name: number for number, names in enumerate((
    ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",),
    ("june", "jun"), ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"),
    ("october", "oct"), ("november", "nov"), ("december", "dec")), start=1) for name in names}
_LATEST = re.compile(r"\b(?:last|latest|most\s+recent|recent|newest|previous)\b")
_PREVIOUS_ONE = re.compile(r"\b(?:one|order)\s+before\s+(?:that|the\s+last)\b|\bsecond\s+last\b")
_ORDER_WORDS = re.compile(r"\b(?:order|orders|purchase|one|parcel|package|delivery|bought|"
                          r"ordered|it)\b")
_MONTH = re.compile(r"\b(?:in|from|of|during|on|placed|bought|ordered)\s+(?:early\s+|late\s+|"
                    r"mid\s+)?(" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\b")
_LAST_MONTH = re.compile(r"\blast\s+month\b")
_THIS_MONTH = re.compile(r"\bthis\s+month\b")
_ITEM_WORD = re.compile(r"[a-z]{4,}")
_NOT_ITEM_WORDS = {"order", "orders", "bought", "ordered", "where", "what", "when", "that",
                   "this", "with", "from", "invoice", "cancel", "track", "refund", "return",
                   "please", "send", "copy", "status", "last", "latest", "recent", "month",
                   "week", "which", "have", "were", "there", "about", "them", "want", "could",
                   "would", "need", "item", "items", "thing", "things", "purchase", "the"}


@dataclass(frozen=True)
class OrderReference:
    """What a message's reference resolved to: one order, or several that fit (ask which)."""

    orders: tuple[Order, ...]
    said: str  # the words that referred to it, for the reply ("your last order")

    @property
    def order(self) -> Order | None:
        return self.orders[0] if len(self.orders) == 1 else None


def refers_to_an_order(text: str) -> bool:
    """Whether the words name an order without its number (cheap test before a lookup)."""
    lowered = (text or "").lower()[:500]
    return bool(_ORDER_WORDS.search(lowered) and (
        _LATEST.search(lowered) or _MONTH.search(lowered) or _LAST_MONTH.search(lowered)
        or _THIS_MONTH.search(lowered) or _PREVIOUS_ONE.search(lowered)
        or re.search(r"\b(?:with|for)\s+the\b", lowered)))


def _in_month(orders: Sequence[Order], month: int, year: int | None = None) -> list[Order]:
    return [o for o in orders if o.placed_at.month == month
            and (year is None or o.placed_at.year == year)]


def find_order(text: str, orders: Sequence[Order], now: datetime | None = None
               ) -> OrderReference | None:
    """The order(s) ``text`` refers to among ``orders`` (newest first); None when the text
    names no order this way or nothing fits."""
    lowered = (text or "").lower()[:500]
    if not orders or not refers_to_an_order(lowered):
        return None
    now = now or now_utc()
    month_match = _MONTH.search(lowered)
    if _LAST_MONTH.search(lowered) or _THIS_MONTH.search(lowered) or month_match:
        if month_match:
            month = MONTHS[month_match.group(1)]
            # The most recent such month: "November" in March means last November.
            year = now.year if month <= now.month else now.year - 1
            said = f"your orders from {month_match.group(1).capitalize()}"
            found = _in_month(orders, month, year) or _in_month(orders, month)
        else:
            this = bool(_THIS_MONTH.search(lowered))
            month = now.month if this else (now.month - 2) % 12 + 1
            year = now.year if this or now.month > 1 else now.year - 1
            said = "your orders from this month" if this else "your orders from last month"
            found = _in_month(orders, month, year)
        narrowed = _with_items(lowered, found)
        return OrderReference(tuple(narrowed or found), said) if found else None
    by_item = _with_items(lowered, list(orders))
    if _PREVIOUS_ONE.search(lowered):
        return OrderReference((orders[1],), "the order before your last") \
            if len(orders) > 1 else None
    if _LATEST.search(lowered):
        chosen = by_item or list(orders)
        return OrderReference((chosen[0],), "your last order")
    if by_item:
        return OrderReference(tuple(by_item), "that order")
    return None


def _with_items(lowered: str, orders: Sequence[Order]) -> list[Order]:
    """Orders with an item the text names ("the one with the sneakers")."""
    words = {w.rstrip("s") for w in _ITEM_WORD.findall(lowered) if w not in _NOT_ITEM_WORDS
             and w not in MONTHS}
    if not words:
        return []
    found = []
    for order in orders:
        names = {w.rstrip("s") for item in order.items for w in _ITEM_WORD.findall(
            item.label().lower())}
        if words & names:
            found.append(order)
    return found
