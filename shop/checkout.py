"""Checkout: the cart the shopper saw becomes one order, once.

Placing the order and emptying the cart are ONE write transaction, so a crash anywhere
leaves both done (an order, an empty cart) or neither (no order, the cart as it was).

Each checkout has an idempotency key: sha256 over the shopper, the cart rows exactly as
stored when the shopper saw them (product, size, quantity, when each was added) and how many
orders the shopper had then (so a cart refilled identically after a checkout, within the
same second, is a new checkout rather than a retry). The order keeps the key
(``orders.checkout_key``, unique), so the same checkout run again (a double tap, two replicas,
a retry after the action server died) finds its order instead of placing a second one. Inside
the transaction the cart is read again: one that changed since the shopper saw it is refused,
never ordered unseen.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from retrieval.catalog import Product
from shop.cart import CartLine, CartStore, CartSummary
from shop.orders import (
    Order,
    OrderStatus,
    OrderStore,
    insert_order,
    order_of_checkout,
    placed_text,
    with_new_id,
)
from shopcore import db as tables
from shopcore.db import as_utc, now_utc
from shopcore.faults import pause_point
from shopcore.ids import short, valid_id
from shopcore.money import rupees
from shopcore.text import BadInput, day_text

logger = logging.getLogger(__name__)

RECENT = timedelta(minutes=30)  # an empty cart this soon after an order: it was that order's


class CheckoutCode(StrEnum):
    """What a checkout did; the action branches on it, the shopper reads ``message``."""

    PLACED = "placed"
    ALREADY_PLACED = "already_placed"  # this very checkout happened before: that order
    CART_CHANGED = "cart_changed"  # the cart isn't what the shopper saw: nothing written
    INVALID_INPUT = "invalid_input"  # empty cart, bad address or payment: nothing written


@dataclass(frozen=True)
class CheckoutOutcome:
    code: CheckoutCode
    message: str
    order: Order | None = None  # placed now, or before (ALREADY_PLACED)
    cart: tuple[CartLine, ...] = field(default=())  # the cart now, for CART_CHANGED


@dataclass(frozen=True)
class CartSnapshot:
    """The cart as the shopper saw it: the stored rows, priced (``summary``), and how many
    orders the shopper had. Read it with :func:`read_cart`, show ``summary``, then check out
    exactly this."""

    sender_id: str
    rows: tuple[CartLine, ...]
    summary: CartSummary
    orders_before: int

    @property
    def key(self) -> str:
        """The idempotency key: the same for this cart state however often it is retried."""
        state = [self.sender_id, self.orders_before,
                 [[r.product_id, r.size, r.qty, r.added_at.isoformat()] for r in self.rows]]
        return hashlib.sha256(json.dumps(state, separators=(",", ":")).encode()).hexdigest()


def read_cart(cart: CartStore, sender_id: str,
              lookup: Callable[[str], Product | None]) -> CartSnapshot:
    """The shopper's cart and order count, from one consistent read."""
    if not valid_id(sender_id):
        return CartSnapshot(sender_id, (), CartSummary([], []), 0)
    with cart.db.read() as conn:
        rows = _cart_rows(conn, sender_id)
        count = conn.execute(select(func.count()).select_from(tables.orders)
                             .where(tables.orders.c.sender_id == sender_id)).scalar_one()
    return CartSnapshot(sender_id, rows, CartSummary.build(rows, lookup), count)


def checkout(
    orders: OrderStore, cart: CartStore, seen: CartSnapshot, address: str, payment: str,
    *, now: datetime | None = None,
) -> CheckoutOutcome:
    """Order the priced lines of ``seen`` and empty the cart, in one transaction, at most once.

    The cart's rows that are no longer sold (``seen.summary.flagged``) are not ordered but
    leave the cart with the rest, as the shopper was shown."""
    sender = seen.sender_id
    try:
        order = orders.draft_order(sender, seen.summary.lines, address, payment, now=now)
    except BadInput as error:
        logger.info("checkout refused for %s: %s", short(sender), error)
        return CheckoutOutcome(CheckoutCode.INVALID_INPUT, str(error))
    key = seen.key
    with orders.db.write(sender) as conn:
        placed = order_of_checkout(conn, sender, key)
        if placed is not None:
            logger.warning("checkout retried for %s: %s is already placed", short(sender),
                           placed.order_id)
            return CheckoutOutcome(CheckoutCode.ALREADY_PLACED, already_placed_text(placed),
                                   placed)
        rows = _cart_rows(conn, sender)
        if rows != seen.rows:
            logger.info("checkout refused for %s: the cart changed", short(sender))
            return CheckoutOutcome(CheckoutCode.CART_CHANGED, _changed_text(rows), cart=rows)
        order = _insert(conn, order, key)
        pause_point("checkout.after_order")  # kill tests: the order written, not committed
        cart.clear(sender, conn)
    pause_point("checkout.after_commit")  # kill tests: committed, the shopper not yet told
    logger.info("checkout for %s placed %s", short(sender), order.order_id)
    return CheckoutOutcome(CheckoutCode.PLACED, placed_text(order), order)


def recent_order(orders: OrderStore, sender_id: str, *,
                 now: datetime | None = None) -> Order | None:
    """The shopper's latest order if it was placed in the last 30 minutes (and stands): what
    an empty cart at checkout most likely means is that this order went through."""
    now = as_utc(now) or now_utc()
    latest = orders.orders_of(sender_id, limit=1)
    if not latest or latest[0].status is OrderStatus.CANCELLED:
        return None
    return latest[0] if now - latest[0].placed_at <= RECENT else None


def already_placed_text(order: Order) -> str:
    noun = "item" if order.item_count == 1 else "items"
    return (f"Your order {order.order_id} is already placed ({order.item_count} {noun}, "
            f"{rupees(order.total)}), so I haven't placed it a second time. Expected delivery "
            f"by {day_text(order.expected_delivery)}.")


def _changed_text(rows: tuple[CartLine, ...]) -> str:
    if not rows:
        return "Your cart was emptied before I could place the order, so nothing was ordered."
    return ("Your cart changed while I was placing the order, so I haven't ordered anything "
            "yet. Please check it and say 'checkout' again.")


def _cart_rows(conn: Connection, sender_id: str) -> tuple[CartLine, ...]:
    lines = tables.cart_lines
    found = conn.execute(select(lines).where(lines.c.sender_id == sender_id)
                         .order_by(lines.c.position))
    return tuple(CartLine(product_id=r.product_id, size=r.size, qty=r.qty, added_at=r.added_at)
                 for r in found)


def _insert(conn: Connection, order: Order, key: str) -> Order:
    """Insert under a free order id; a savepoint per try keeps the transaction usable."""
    for _attempt in range(20):
        try:
            with conn.begin_nested():
                insert_order(conn, order, key)
            return order
        except IntegrityError:
            if conn.execute(select(tables.orders.c.order_id)
                            .where(tables.orders.c.checkout_key == key)).first():
                raise  # the key, not the id: checked above, so never expected
            order = with_new_id(order)  # id already taken: draw another
    raise RuntimeError("could not draw a free order id")  # 20 collisions: store is full
