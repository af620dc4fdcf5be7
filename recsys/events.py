"""What a shopper did with a product, as the recommender learns from it.

The shop stores these in its interaction log (:mod:`shop.events`); the simulator makes
synthetic ones; ``recsys.data`` turns them into training sequences.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EventType(StrEnum):
    """How strongly a shopper engaged with a product."""

    SHOWN = "shown"  # in a results page or a recommendation
    OPENED = "opened"  # asked for details, compared, or "similar to this one"
    ADDED_TO_CART = "added_to_cart"
    PURCHASED = "purchased"


# Being shown a product says little about taste; the model learns from the rest.
INTERACTION_TYPES: tuple[EventType, ...] = (
    EventType.OPENED,
    EventType.ADDED_TO_CART,
    EventType.PURCHASED,
)


@dataclass(frozen=True)
class Event:
    sender_id: str
    product_id: str
    event_type: str
    ts: float
