"""Demo data: orders in every state for the demo shoppers, so a new shop can try every flow.

:func:`seed_demo_orders` gives the senders in :data:`DEMO_SENDERS` (``demo-shopper``,
``demo-shopper-2``) orders from real catalog products, with ids ``SB-1001xx`` for the first
sender and ``SB-2001xx`` for the second. Only demo mode seeds them (``Settings.demo``, on for
``make run``); a real shop turns it off and has none of this.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from retrieval.catalog import Product
from shop.orders import (
    FULFILMENT,
    Order,
    OrderItem,
    OrderStatus,
    OrderStore,
    Refund,
    RefundLine,
    RefundStatus,
    insert_order,
    invoice_number,
)
from shop.rules import OrderRules
from shopcore.db import as_utc, now_utc, orders

logger = logging.getLogger(__name__)

DEMO_SENDERS = ("demo-shopper", "demo-shopper-2")
DEMO_PRODUCT_POOL = 200  # demo orders draw from the first catalog ids: variety, quickly
_DEMO_ADDRESSES = (
    "Flat 12B, Lake View Apartments, 4th Cross, Indiranagar, Bengaluru 560038",
    "221 Park Street, Kolkata 700016",
    "7 Carter Road, Bandra West, Mumbai 400050",
)


@dataclass(frozen=True)
class _DemoOrder:
    """One seeded order: its state and its timeline in days before 'now'."""

    suffix: int
    status: OrderStatus
    placed_days_ago: float
    n_items: int
    payment: str
    delivered_after: float | None = None  # days after placing
    refund: RefundStatus | None = None


# Every state a shopper can ask about; the first sender gets all, the others a few.
_DEMO_ORDERS = (
    _DemoOrder(1, OrderStatus.PLACED, 0.2, 2, "upi"),
    _DemoOrder(2, OrderStatus.PACKED, 1, 1, "cod"),
    _DemoOrder(3, OrderStatus.SHIPPED, 3, 2, "card"),
    _DemoOrder(4, OrderStatus.OUT_FOR_DELIVERY, 4, 1, "upi"),
    _DemoOrder(5, OrderStatus.DELIVERED, 9, 3, "card", delivered_after=4),
    _DemoOrder(6, OrderStatus.DELIVERED, 50, 1, "cod", delivered_after=4),
    _DemoOrder(7, OrderStatus.CANCELLED, 20, 2, "upi", refund=RefundStatus.REFUNDED),
    _DemoOrder(8, OrderStatus.RETURN_REQUESTED, 16, 2, "card", delivered_after=4,
               refund=RefundStatus.APPROVED),
    _DemoOrder(9, OrderStatus.RETURNED, 40, 1, "netbanking", delivered_after=4,
               refund=RefundStatus.REFUNDED),
)
_OTHER_SENDER_ORDERS = (1, 3, 5)


def _demo_order(
    template: _DemoOrder, sender_index: int, sender_id: str, pool: list[Product],
    now: datetime, rules: OrderRules,
) -> Order:
    order_id = f"SB-{sender_index + 1}001{template.suffix:02d}"
    placed = (now - timedelta(days=template.placed_days_ago)).replace(microsecond=0)
    items = []
    for j in range(template.n_items):
        product = pool[(sender_index * 31 + template.suffix * 7 + j * 13) % len(pool)]
        size = product.sizes[len(product.sizes) // 2] if product.sizes else ""
        items.append(OrderItem(product_id=product.id, name=product.name, size=size,
                               qty=1 + (j == 1 and template.n_items == 2),
                               unit_price=product.final_price))
    status = template.status
    progress = FULFILMENT.index(status) if status in FULFILMENT else len(FULFILMENT) - 1
    if status is OrderStatus.CANCELLED:
        progress = 0
    delivered = (placed + timedelta(days=template.delivered_after)
                 if template.delivered_after is not None else None)
    subtotal = round(sum(i.line_total for i in items), 2)
    shipping = rules.shipping_for(subtotal)
    cod_fee = float(rules.cod_fee) if template.payment == "cod" else 0.0
    refunds = []
    if status in (OrderStatus.RETURN_REQUESTED, OrderStatus.RETURNED):
        items = [i.model_copy(update={"returned_qty": i.qty}) for i in items]
    if template.refund is not None:
        kind = "cancellation" if status is OrderStatus.CANCELLED else "return"
        asked = (placed + timedelta(hours=4) if delivered is None
                 else delivered + timedelta(days=2))
        amount = subtotal + shipping if kind == "cancellation" else subtotal
        refunds.append(Refund(
            refund_id=f"RF-{order_id.removeprefix('SB-')}-1", order_id=order_id, kind=kind,
            status=template.refund,
            reason="order cancelled" if kind == "cancellation" else "size too small",
            lines=[RefundLine(product_id=i.product_id, name=i.name, size=i.size, qty=i.qty,
                              amount=i.line_total) for i in items],
            amount=amount, requested_at=asked, approved_at=asked + timedelta(days=1),
            refunded_at=(asked + timedelta(days=5)
                         if template.refund is RefundStatus.REFUNDED else None),
        ))
    return Order(
        order_id=order_id, sender_id=sender_id, status=status, items=items, subtotal=subtotal,
        shipping_fee=shipping, cod_fee=cod_fee, total=round(subtotal + shipping + cod_fee, 2),
        placed_at=placed,
        packed_at=placed + timedelta(hours=6) if progress >= 1 else None,
        shipped_at=placed + timedelta(days=1) if progress >= 2 else None,
        expected_delivery=placed + timedelta(days=5),
        delivered_at=delivered,
        cancelled_at=placed + timedelta(hours=3) if status is OrderStatus.CANCELLED else None,
        address=_DEMO_ADDRESSES[sender_index % len(_DEMO_ADDRESSES)],
        payment_method=template.payment, invoice_number=invoice_number(order_id, placed),
        refunds=refunds,
    )


def seed_demo_orders(
    store: OrderStore, products: Iterable[Product], *,
    senders: Sequence[str] = DEMO_SENDERS, now: datetime | None = None, reset: bool = False,
) -> int:
    """Demo orders in every state for the demo senders, from real catalog products.

    Deterministic (products sorted by id; dates relative to ``now``) and idempotent: an
    order id that exists is left alone, so seeding twice adds nothing. ``reset`` rewrites
    the demo orders with fresh dates (the "delivered 5 days ago" order ages otherwise).
    Returns how many orders were created. At most 9 senders (ids SB-1001xx ... SB-9001xx).
    """
    pool = sorted((p for p in products if p.final_price > 0), key=lambda p: p.id)
    if not pool:
        logger.warning("no products to seed demo orders from")
        return 0
    now = as_utc(now) or now_utc()
    created = 0
    with store.db.write("demo orders") as conn:
        for index, sender_id in enumerate(list(senders)[:9]):
            templates = (_DEMO_ORDERS if index == 0 else
                         [t for t in _DEMO_ORDERS if t.suffix in _OTHER_SENDER_ORDERS])
            for template in templates:
                order = _demo_order(template, index, sender_id, pool, now, store.rules)
                if reset:
                    conn.execute(delete(orders).where(orders.c.order_id == order.order_id))
                elif conn.execute(select(orders.c.order_id)
                                  .where(orders.c.order_id == order.order_id)).first():
                    continue
                insert_order(conn, order)
                created += 1
    logger.info("seeded %d demo orders", created)
    return created
