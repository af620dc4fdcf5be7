"""The shop's orders: tracking, cancelling, returns and refunds, address changes, invoices.

Every operation is asked *as a shopper* (``sender_id``) and answers an :class:`OrderOutcome`
whose ``message`` the bot can say as it is. Another shopper's order and an order that does
not exist give the same outcome, word for word, so an order id never tells anyone whose it
is. Rules a shop sets (returns window, delivery fees) come from :class:`shop.rules.OrderRules`.
Order ids (``SB-123456``) are parsed by :func:`shopcore.ids.parse_order_id`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from shop.rules import (
    MAX_ADDRESS_CHARS,
    MAX_LINE_QTY,
    MAX_ORDER_LINES,
    MAX_REASON_CHARS,
    MIN_ADDRESS_CHARS,
    OrderRules,
)
from shopcore import db as tables
from shopcore.db import Database, as_utc, now_utc
from shopcore.ids import ORDER_ID_HELP, parse_order_id, short, valid_id
from shopcore.money import rupees
from shopcore.payloads import Order as OrderPayload
from shopcore.payloads import OrderLine
from shopcore.text import BadInput, clean_text, clip, day_text

logger = logging.getLogger(__name__)

REMOVED_ADDRESS = "[removed at the shopper's request]"

PAYMENT_METHODS: dict[str, str] = {
    "upi": "UPI", "card": "card", "netbanking": "net banking", "wallet": "wallet",
    "cod": "cash on delivery",
}
_PAYMENT_ALIASES = {
    "cash on delivery": "cod", "cash": "cod", "pay on delivery": "cod",
    "credit card": "card", "debit card": "card", "credit": "card", "debit": "card",
    "net banking": "netbanking", "internet banking": "netbanking", "gpay": "upi",
    "google pay": "upi", "phonepe": "upi", "paytm": "wallet",
}


class OrderStatus(StrEnum):
    PLACED = "placed"
    PACKED = "packed"
    SHIPPED = "shipped"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    RETURN_REQUESTED = "return_requested"
    RETURNED = "returned"


# The courier's progression; back-office updates may only move an order forward along it.
FULFILMENT = (OrderStatus.PLACED, OrderStatus.PACKED, OrderStatus.SHIPPED,
              OrderStatus.OUT_FOR_DELIVERY, OrderStatus.DELIVERED)
NOT_SHIPPED = (OrderStatus.PLACED, OrderStatus.PACKED)
ON_THE_WAY = (OrderStatus.SHIPPED, OrderStatus.OUT_FOR_DELIVERY)
FINISHED = (OrderStatus.DELIVERED, OrderStatus.CANCELLED, OrderStatus.RETURN_REQUESTED,
            OrderStatus.RETURNED)


class RefundStatus(StrEnum):
    REQUESTED = "requested"  # return asked for; waiting for the item to come back
    APPROVED = "approved"  # money on its way to the shopper
    REFUNDED = "refunded"
    REJECTED = "rejected"


class OrderCode(StrEnum):
    """What happened; actions branch on it, shoppers read ``message``."""

    OK = "ok"
    BAD_ORDER_ID = "bad_order_id"  # not shaped like an order id
    NOT_FOUND = "not_found"  # unknown, or not this shopper's (never said which)
    NOT_CANCELLABLE = "not_cancellable"
    ADDRESS_LOCKED = "address_locked"
    NOT_RETURNABLE = "not_returnable"
    OUTSIDE_RETURN_WINDOW = "outside_return_window"
    INVALID_INPUT = "invalid_input"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class OrderItem(_Record):
    product_id: str
    name: str
    size: str = ""
    qty: int
    unit_price: float
    returned_qty: int = 0

    @property
    def line_total(self) -> float:
        return self.qty * self.unit_price

    def label(self) -> str:
        size = f", size {self.size}" if self.size else ""
        return f"{self.name}{size} × {self.qty}"


class RefundLine(_Record):
    product_id: str
    name: str
    size: str = ""
    qty: int
    amount: float


class Refund(_Record):
    refund_id: str
    order_id: str
    kind: str  # "return" or "cancellation"
    status: RefundStatus
    reason: str
    lines: list[RefundLine]
    amount: float
    requested_at: datetime
    approved_at: datetime | None = None
    refunded_at: datetime | None = None


class Order(_Record):
    order_id: str
    sender_id: str
    status: OrderStatus
    items: list[OrderItem]
    subtotal: float
    shipping_fee: float
    cod_fee: float = 0
    total: float
    placed_at: datetime
    packed_at: datetime | None = None
    shipped_at: datetime | None = None
    expected_delivery: datetime | None = None
    delivered_at: datetime | None = None
    cancelled_at: datetime | None = None
    address: str
    payment_method: str
    invoice_number: str
    refunds: list[Refund] = []

    @property
    def item_count(self) -> int:
        return sum(item.qty for item in self.items)

    @property
    def payment_label(self) -> str:
        return PAYMENT_METHODS.get(self.payment_method, self.payment_method)

    def headline(self) -> str:
        """'Order SB-100101 (3 items, ₹2,097)'."""
        noun = "item" if self.item_count == 1 else "items"
        return f"Order {self.order_id} ({self.item_count} {noun}, {rupees(self.total)})"

    def status_text(self) -> str:
        """Where the order is, in one or two sentences a shopper can act on."""
        head, expected = self.headline(), day_text(self.expected_delivery)
        match self.status:
            case OrderStatus.PLACED:
                text = (f"{head} was placed on {day_text(self.placed_at)} and is being "
                        f"prepared; expected delivery by {expected}.")
            case OrderStatus.PACKED:
                text = f"{head} is packed and ships soon; expected delivery by {expected}."
            case OrderStatus.SHIPPED:
                text = (f"{head} shipped on {day_text(self.shipped_at)} and is on its way; "
                        f"expected delivery by {expected}.")
            case OrderStatus.OUT_FOR_DELIVERY:
                text = f"{head} is out for delivery and should reach you today."
            case OrderStatus.DELIVERED:
                text = f"{head} was delivered on {day_text(self.delivered_at)}."
            case OrderStatus.CANCELLED:
                text = f"{head} was cancelled on {day_text(self.cancelled_at)}."
            case OrderStatus.RETURN_REQUESTED:
                text = f"{head}: a return is in progress."
            case OrderStatus.RETURNED:
                text = f"{head} was returned."
        refund = self.refunds[-1] if self.refunds else None
        if refund:
            text += " " + refund_text(refund)
        return text

    def payload(self, text_summary: str = "") -> OrderPayload:
        """The order as a reply's ``custom`` payload (see :mod:`shopcore.payloads`)."""
        return OrderPayload(
            order_id=self.order_id, status=self.status.value, total=self.total,
            lines=tuple(OrderLine(id=i.product_id, name=i.name, qty=i.qty,
                                  unit_price=i.unit_price, size=i.size) for i in self.items),
            placed_on=self.placed_at.date().isoformat(),
            expected_delivery=(self.expected_delivery.date().isoformat()
                               if self.expected_delivery else ""),
            text_summary=text_summary or self.status_text())


def refund_text(refund: Refund) -> str:
    match refund.status:
        case RefundStatus.REQUESTED:
            when = f"requested on {day_text(refund.requested_at)}"
            return (f"Refund {refund.refund_id} of {rupees(refund.amount)} was {when}; it is "
                    "approved once the items reach us.")
        case RefundStatus.APPROVED:
            return (f"Refund {refund.refund_id} of {rupees(refund.amount)} was approved on "
                    f"{day_text(refund.approved_at)} and is on its way to you.")
        case RefundStatus.REFUNDED:
            return (f"Refund {refund.refund_id} of {rupees(refund.amount)} was paid on "
                    f"{day_text(refund.refunded_at)}.")
        case _:
            return (f"Refund {refund.refund_id} of {rupees(refund.amount)} was not approved; "
                    "our support team can tell you why.")


@dataclass(frozen=True)
class OrderOutcome:
    """The answer to one order operation: what happened, why, and what to tell the shopper."""

    code: OrderCode
    message: str
    order: Order | None = None
    refund: Refund | None = None
    text: str = ""  # the invoice, for invoice()

    @property
    def ok(self) -> bool:
        return self.code is OrderCode.OK


class PricedLine(Protocol):
    """A cart line with its price decided (``shop.cart.PricedLine`` has this shape)."""

    product_id: str
    name: str
    size: str
    qty: int
    unit_price: float


def normalise_payment(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    key = " ".join(value.lower().replace("-", " ").split())[:40]
    key = _PAYMENT_ALIASES.get(key, key.replace(" ", ""))
    return key if key in PAYMENT_METHODS else None


def clean_address(value: object) -> str:
    """A delivery address fit to ship to, or BadInput saying what is wrong with it."""
    address = clean_text(value, what="address", max_chars=MAX_ADDRESS_CHARS,
                         min_chars=MIN_ADDRESS_CHARS)
    if sum(ch.isalpha() for ch in address) < 3 or not any(ch.isdigit() for ch in address):
        raise BadInput("Please give the full address, with the house number and PIN code.")
    return address


_DATE_COLUMNS = ("placed_at", "packed_at", "shipped_at", "expected_delivery", "delivered_at",
                 "cancelled_at")
_orders, _items, _refunds = tables.orders, tables.order_items, tables.refunds


class OrderStore:
    """Orders, their items and refunds; every read and change is per shopper."""

    def __init__(self, database: Database, rules: OrderRules | None = None) -> None:
        self.db = database
        self.rules = rules or OrderRules()

    # -- reading ---------------------------------------------------------------------------

    def get_for(self, sender_id: str, order_id: str) -> Order | None:
        """The shopper's order; None for unknown ids AND other shoppers' orders alike."""
        wanted = parse_order_id(order_id)
        if wanted is None or not valid_id(sender_id):
            return None
        with self.db.read() as conn:
            found = _load(conn, (_orders.c.order_id == wanted) & (_orders.c.sender_id == sender_id))
        return found[0] if found else None

    def orders_of(self, sender_id: str, limit: int = 20) -> list[Order]:
        """The shopper's orders, newest first."""
        if not valid_id(sender_id):
            return []
        with self.db.read() as conn:
            return _load(conn, _orders.c.sender_id == sender_id, limit=limit)

    def placed_by(self, sender_ids: Iterable[str], since: datetime | None = None
                  ) -> dict[str, int]:
        """How many orders each of these shoppers placed (since ``since``): who bought."""
        wanted = [s for s in set(sender_ids) if valid_id(s)]
        if not wanted:
            return {}
        where = _orders.c.sender_id.in_(wanted)
        if since is not None:
            where = where & (_orders.c.placed_at >= since)
        with self.db.read() as conn:
            rows = conn.execute(select(_orders.c.sender_id, func.count())
                                .where(where).group_by(_orders.c.sender_id))
            return {sender: int(n) for sender, n in rows}

    def track(self, sender_id: str, order_text: str) -> OrderOutcome:
        """Where an order is ("where is my order SB-100234?")."""
        found = self._find(sender_id, order_text, "track")
        if isinstance(found, OrderOutcome):
            return found
        return OrderOutcome(OrderCode.OK, found.status_text(), found)

    def refund_status(self, sender_id: str, order_text: str) -> OrderOutcome:
        """The latest refund on an order (``outcome.refund``; None when there is none)."""
        found = self._find(sender_id, order_text, "refund status")
        if isinstance(found, OrderOutcome):
            return found
        if not found.refunds:
            return OrderOutcome(
                OrderCode.OK, f"There is no refund on order {found.order_id}. "
                + found.status_text(), found)
        refund = found.refunds[-1]
        text = refund_text(refund)
        if refund.status is RefundStatus.APPROVED:
            text += (f" It reaches your {found.payment_label} within {self.rules.refund_days} "
                     "business days of approval.")
        return OrderOutcome(OrderCode.OK, text, found, refund)

    def invoice(self, sender_id: str, order_text: str) -> OrderOutcome:
        """A plain-text invoice summary in ``outcome.text`` (also the message)."""
        found = self._find(sender_id, order_text, "invoice")
        if isinstance(found, OrderOutcome):
            return found
        text = invoice_text(found)
        return OrderOutcome(OrderCode.OK, text, found, text=text)

    # -- shopper changes -------------------------------------------------------------------

    def cancel(
        self, sender_id: str, order_text: str, *, now: datetime | None = None,
        dry_run: bool = False,
    ) -> OrderOutcome:
        """Cancel before shipping; refused with the reason (and what to do instead) after.

        ``dry_run`` answers whether it could be cancelled without changing anything, for the
        form's confirmation question. A prepaid order gets an approved refund of its total.
        """
        now = as_utc(now) or now_utc()
        with self.db.write(str(sender_id)) as conn:
            found = self._find(sender_id, order_text, "cancel", conn)
            if isinstance(found, OrderOutcome):
                return found
            order = found
            refusal = self._cancel_refusal(order, now)
            if refusal:
                logger.info("cancel refused for %s on %s: %s", short(sender_id),
                            order.order_id, order.status)
                return OrderOutcome(OrderCode.NOT_CANCELLABLE, refusal, order)
            if dry_run:
                return OrderOutcome(
                    OrderCode.OK, f"{order.headline()} can still be cancelled.", order)
            conn.execute(update(_orders).where(_orders.c.order_id == order.order_id)
                         .values(status=OrderStatus.CANCELLED.value, cancelled_at=now))
            refund = None
            if order.payment_method != "cod":
                lines = [RefundLine(product_id=i.product_id, name=i.name, size=i.size,
                                    qty=i.qty, amount=i.line_total) for i in order.items]
                refund = _add_refund(conn, order, "cancellation", "order cancelled", lines,
                                     order.total, RefundStatus.APPROVED, now)
            order = _reload(conn, order.order_id)
        if refund:
            money = (f"The refund of {rupees(refund.amount)} ({refund.refund_id}) goes back "
                     f"to your {order.payment_label} within {self.rules.refund_days} "
                     "business days.")
        else:
            money = "Nothing was charged, so there is nothing to refund."
        return OrderOutcome(OrderCode.OK, f"{order.headline()} is cancelled. {money}",
                            order, refund)

    def change_address(
        self, sender_id: str, order_text: str, new_address: str, *,
        dry_run: bool = False,
    ) -> OrderOutcome:
        """Change the delivery address; only possible before the order ships."""
        with self.db.write(str(sender_id)) as conn:
            found = self._find(sender_id, order_text, "change address", conn)
            if isinstance(found, OrderOutcome):
                return found
            order = found
            if order.status not in NOT_SHIPPED:
                logger.info("address change refused for %s on %s: %s", short(sender_id),
                            order.order_id, order.status)
                return OrderOutcome(OrderCode.ADDRESS_LOCKED, _address_refusal(order), order)
            if dry_run:
                return OrderOutcome(OrderCode.OK, f"{order.headline()} hasn't shipped yet, so "
                                    "its delivery address can still be changed.", order)
            try:
                address = clean_address(new_address)
            except BadInput as error:
                logger.info("bad address from %s: %s", short(sender_id), error)
                return OrderOutcome(OrderCode.INVALID_INPUT, str(error), order)
            conn.execute(update(_orders).where(_orders.c.order_id == order.order_id)
                         .values(address=address))
            order = _reload(conn, order.order_id)
        return OrderOutcome(
            OrderCode.OK, f"Done: {order.order_id} will be delivered to {address}.", order)

    def request_return(
        self, sender_id: str, order_text: str, reason: str,
        items: Sequence[str] | None = None, *, now: datetime | None = None,
        dry_run: bool = False,
    ) -> OrderOutcome:
        """Return delivered items within the returns window; creates a refund request.

        ``items`` are product ids from the order (None: everything not yet returned). The
        refund is ``requested`` until the items reach the shop (:meth:`set_refund_status`).
        ``dry_run`` only checks the order can be returned (before asking for the reason).
        """
        now = as_utc(now) or now_utc()
        with self.db.write(str(sender_id)) as conn:
            found = self._find(sender_id, order_text, "return", conn)
            if isinstance(found, OrderOutcome):
                return found
            order = found
            refusal = self._return_refusal(order, now)
            if refusal:
                logger.info("return refused for %s on %s: %s", short(sender_id),
                            order.order_id, refusal[0])
                return OrderOutcome(refusal[0], refusal[1], order)
            if dry_run:
                last_day = day_text(self._return_deadline(order))
                return OrderOutcome(OrderCode.OK, f"{order.headline()} can be returned until "
                                    f"{last_day}.", order)
            try:
                picked = _returnable_lines(order, items)
                why = clean_text(reason, what="reason for the return", max_chars=MAX_REASON_CHARS,
                                 min_chars=2)
            except BadInput as error:
                logger.info("bad return request from %s on %s: %s", short(sender_id),
                            order.order_id, error)
                return OrderOutcome(OrderCode.INVALID_INPUT, str(error), order)
            lines = []
            for line_no, item in picked:
                left = item.qty - item.returned_qty
                conn.execute(update(_items).where((_items.c.order_id == order.order_id)
                                                  & (_items.c.line_no == line_no))
                             .values(returned_qty=_items.c.qty))
                lines.append(RefundLine(product_id=item.product_id, name=item.name,
                                        size=item.size, qty=left, amount=left * item.unit_price))
            amount = sum(line.amount for line in lines)
            refund = _add_refund(conn, order, "return", why, lines, amount,
                                 RefundStatus.REQUESTED, now)
            conn.execute(update(_orders).where(_orders.c.order_id == order.order_id)
                         .values(status=OrderStatus.RETURN_REQUESTED.value))
            order = _reload(conn, order.order_id)
        noun = "item" if sum(x.qty for x in lines) == 1 else "items"
        return OrderOutcome(
            OrderCode.OK,
            f"Return requested for {sum(x.qty for x in lines)} {noun} from order "
            f"{order.order_id} ({refund.refund_id}, {rupees(amount)}). Our courier will pick "
            f"them up; once they reach us the refund goes to your {order.payment_label} "
            f"within {self.rules.refund_days} business days.",
            order, refund,
        )

    def place_order(
        self, sender_id: str, cart_lines: Sequence[PricedLine], address: str, payment: str,
        *, now: datetime | None = None,
    ) -> OrderOutcome:
        """A new order in ``placed`` state from priced lines (no payment taken).

        It leaves the cart alone: a shopper's checkout goes through
        :func:`shop.checkout.checkout`, which also empties the cart in the same transaction
        and never places the same cart twice."""
        try:
            order = self.draft_order(sender_id, cart_lines, address, payment, now=now)
        except BadInput as error:
            logger.info("order not placed for %s: %s", short(sender_id), error)
            return OrderOutcome(OrderCode.INVALID_INPUT, str(error))
        for _attempt in range(20):
            try:
                with self.db.write(sender_id) as conn:
                    insert_order(conn, order)
            except IntegrityError:
                order = with_new_id(order)  # id already taken: draw another
                continue
            return OrderOutcome(OrderCode.OK, placed_text(order), order)
        raise RuntimeError("could not draw a free order id")  # 20 collisions: store is full

    def draft_order(
        self, sender_id: str, cart_lines: Sequence[PricedLine], address: str, payment: str,
        *, now: datetime | None = None,
    ) -> Order:
        """The order these lines would make (fees by the shop's rules, a fresh id), not yet
        saved; :class:`BadInput` says what is wrong with the lines, address or payment."""
        now = as_utc(now) or now_utc()
        if not valid_id(sender_id):
            raise BadInput("I can't place an order without knowing who you are.")
        items = _order_items(cart_lines)
        address = clean_address(address)
        method = normalise_payment(payment)
        if method is None:
            choices = ", ".join(PAYMENT_METHODS.values())
            raise BadInput(f"Please choose how to pay: {choices}.")
        subtotal = round(sum(item.line_total for item in items), 2)
        if method == "cod" and subtotal > self.rules.cod_limit:
            raise BadInput(
                f"Cash on delivery is available up to {rupees(self.rules.cod_limit)}; "
                "please pay this order by UPI, card or net banking.")
        shipping = self.rules.shipping_for(subtotal)
        cod_fee = float(self.rules.cod_fee) if method == "cod" else 0.0
        order_id = _new_order_id()
        return Order(
            order_id=order_id, sender_id=sender_id, status=OrderStatus.PLACED, items=items,
            subtotal=subtotal, shipping_fee=shipping, cod_fee=cod_fee,
            total=round(subtotal + shipping + cod_fee, 2), placed_at=now,
            expected_delivery=now + timedelta(days=self.rules.delivery_days),
            address=address, payment_method=method,
            invoice_number=invoice_number(order_id, now),
        )

    # -- back office -----------------------------------------------------------------------

    def set_status(
        self, order_id: str, status: OrderStatus | str, *, now: datetime | None = None
    ) -> Order | None:
        """Courier progress (packed, shipped, delivered...): forward moves only; stamps dates."""
        now = as_utc(now) or now_utc()
        target = OrderStatus(status)
        stamp = {OrderStatus.PACKED: "packed_at", OrderStatus.SHIPPED: "shipped_at",
                 OrderStatus.DELIVERED: "delivered_at"}.get(target)
        with self.db.write(f"order {order_id}") as conn:
            found = _load(conn, _orders.c.order_id == parse_order_id(order_id))
            if not found or target not in FULFILMENT or found[0].status not in FULFILMENT:
                return None
            if FULFILMENT.index(target) <= FULFILMENT.index(found[0].status):
                return None
            values: dict[str, Any] = {"status": target.value}
            if stamp:
                values[stamp] = now
            conn.execute(update(_orders).where(_orders.c.order_id == found[0].order_id)
                         .values(**values))
            return _reload(conn, found[0].order_id)

    def set_refund_status(
        self, refund_id: str, status: RefundStatus | str, *, now: datetime | None = None
    ) -> Refund | None:
        """Approve, pay or reject a refund; a fully paid-back return marks the order returned."""
        now = as_utc(now) or now_utc()
        target = RefundStatus(status)
        with self.db.write(f"refund {refund_id}") as conn:
            row = conn.execute(select(_refunds.c.order_id, _refunds.c.kind, _refunds.c.approved_at)
                               .where(_refunds.c.refund_id == refund_id)).first()
            if row is None:
                return None
            values: dict[str, Any] = {"status": target.value}
            if target is RefundStatus.APPROVED:
                values["approved_at"] = now
            elif target is RefundStatus.REFUNDED:
                values.update(refunded_at=now, approved_at=row.approved_at or now)
            conn.execute(update(_refunds).where(_refunds.c.refund_id == refund_id)
                         .values(**values))
            order = _reload(conn, row.order_id)
            all_back = all(i.returned_qty >= i.qty for i in order.items)
            if (row.kind == "return" and target is RefundStatus.REFUNDED and all_back
                    and order.status is OrderStatus.RETURN_REQUESTED):
                conn.execute(update(_orders).where(_orders.c.order_id == order.order_id)
                             .values(status=OrderStatus.RETURNED.value))
                order = _reload(conn, order.order_id)
        return next(r for r in order.refunds if r.refund_id == refund_id)

    def anonymise(self, sender_id: str) -> tuple[int, int]:
        """Detach the shopper's orders from them ("forget me"); returns (orders, addresses kept).

        Orders stay: the shop must keep sales records for its accounts and tax. Each order
        gets a random owner token (nothing links it back to the shopper or to their other
        orders) and finished orders lose their address; an order still on its way keeps the
        address until it is delivered, or it could not arrive.
        """
        if not valid_id(sender_id):
            return 0, 0
        finished = [s.value for s in FINISHED]
        with self.db.write(sender_id) as conn:
            rows = conn.execute(select(_orders.c.order_id, _orders.c.status)
                                .where(_orders.c.sender_id == sender_id)).all()
            kept = 0
            for order_id, status in rows:
                values = {"sender_id": f"forgotten:{secrets.token_hex(8)}"}
                if status in finished:
                    values["address"] = REMOVED_ADDRESS
                else:
                    kept += 1
                conn.execute(update(_orders).where(_orders.c.order_id == order_id)
                             .values(**values))
        return len(rows), kept

    def count(self) -> int:
        with self.db.read() as conn:
            return conn.execute(select(func.count()).select_from(_orders)).scalar_one()

    # -- internals -------------------------------------------------------------------------

    def _find(
        self, sender_id: str, order_text: str, doing: str, conn: Connection | None = None
    ) -> Order | OrderOutcome:
        """The shopper's order named in ``order_text``, or the outcome that explains why not."""
        order_id = parse_order_id(order_text)
        if order_id is None:
            logger.info("%s: no order id in %r from %s", doing, str(order_text)[:60],
                        short(sender_id))
            return OrderOutcome(OrderCode.BAD_ORDER_ID,
                                f"That doesn't look like an order number. {ORDER_ID_HELP}")
        found: list[Order] = []
        if valid_id(sender_id):
            where = (_orders.c.order_id == order_id) & (_orders.c.sender_id == sender_id)
            if conn is None:
                with self.db.read() as reader:
                    found = _load(reader, where)
            else:
                found = _load(conn, where)
        if not found:
            logger.info("%s: order %s not found for %s", doing, order_id, short(sender_id))
            return OrderOutcome(
                OrderCode.NOT_FOUND,
                f"I couldn't find order {order_id} on your account. Please check the number: "
                f"{ORDER_ID_HELP}")
        return found[0]

    def _return_deadline(self, order: Order) -> datetime | None:
        if order.delivered_at is None:
            return None
        return order.delivered_at + timedelta(days=self.rules.returns_window_days)

    def _cancel_refusal(self, order: Order, now: datetime) -> str | None:
        head, window = order.headline(), self.rules.returns_window_days
        if order.status in NOT_SHIPPED:
            return None
        if order.status in ON_THE_WAY:
            shipped = f" on {day_text(order.shipped_at)}" if order.shipped_at else ""
            return (f"{head} can't be cancelled: it has already shipped{shipped} and is on its "
                    f"way (expected by {day_text(order.expected_delivery)}). Once it's "
                    f"delivered you can return it within {window} days for a refund.")
        if order.status is OrderStatus.CANCELLED:
            return f"{head} was already cancelled on {day_text(order.cancelled_at)}."
        if order.status is OrderStatus.DELIVERED:
            deadline = self._return_deadline(order)
            if deadline and now <= deadline:
                return (f"{head} was delivered on {day_text(order.delivered_at)}, so it can't "
                        f"be cancelled, but you can return it until {day_text(deadline)}.")
            return (f"{head} was delivered on {day_text(order.delivered_at)}, so it can't be "
                    "cancelled.")
        return f"{head} can't be cancelled: it was delivered and a return is already under way."

    def _return_refusal(self, order: Order, now: datetime) -> tuple[OrderCode, str] | None:
        head, window = order.headline(), self.rules.returns_window_days
        if order.status in NOT_SHIPPED:
            return (OrderCode.NOT_RETURNABLE, f"{head} hasn't shipped yet, so there is nothing "
                    "to return: you can cancel it instead.")
        if order.status in ON_THE_WAY:
            return (OrderCode.NOT_RETURNABLE, f"{head} is still on its way (expected by "
                    f"{day_text(order.expected_delivery)}). Once it's delivered you can return "
                    f"it within {window} days.")
        if order.status is OrderStatus.CANCELLED:
            return (OrderCode.NOT_RETURNABLE,
                    f"{head} was cancelled, so there is nothing to return.")
        if all(i.returned_qty >= i.qty for i in order.items):
            return (OrderCode.NOT_RETURNABLE,
                    f"Everything in {order.order_id} is already being returned or was returned.")
        deadline = self._return_deadline(order)
        if deadline is None or now > deadline:
            return (OrderCode.OUTSIDE_RETURN_WINDOW,
                    f"{head} was delivered on {day_text(order.delivered_at)}; returns close "
                    f"{window} days after delivery (on {day_text(deadline)}), so it can no "
                    "longer be returned. If something is faulty, our support team can help.")
        return None

def _address_refusal(order: Order) -> str:
    if order.status in ON_THE_WAY:
        return (f"{order.headline()} has already shipped, so its delivery address can't be "
                "changed any more. If you won't be there, our support team can help.")
    return (f"{order.headline()} is {order.status.value.replace('_', ' ')}, so its delivery "
            "address can't be changed.")


def _returnable_lines(order: Order, items: Sequence[str] | None) -> list[tuple[int, OrderItem]]:
    """(line number, item) pairs to return: those named by product id, else all not returned."""
    open_lines = [(n, i) for n, i in enumerate(order.items, start=1) if i.returned_qty < i.qty]
    if not items:
        return open_lines
    if isinstance(items, str):
        items = [items]
    wanted = {str(x).strip() for x in items if isinstance(x, str | int)} - {""}
    if not wanted:
        return open_lines
    picked = [(n, i) for n, i in open_lines if i.product_id in wanted]
    known = {i.product_id for i in order.items}
    unknown = [x for x in wanted if x not in known]
    if unknown or not picked:
        names = "; ".join(f"{i.label()} (id {i.product_id})" for _, i in open_lines)
        if unknown:
            return_these = clip(", ".join(sorted(unknown)), 80)
            raise BadInput(f"Order {order.order_id} doesn't contain {return_these}. "
                           f"It can return: {names}.")
        raise BadInput(f"Those items are already being returned. Still returnable: {names}.")
    return picked


def _order_items(cart_lines: Sequence[PricedLine]) -> list[OrderItem]:
    items = []
    for line in list(cart_lines or [])[: MAX_ORDER_LINES + 1]:
        product_id = getattr(line, "product_id", None)
        qty, price = getattr(line, "qty", None), getattr(line, "unit_price", None)
        if (not valid_id(product_id) or not isinstance(qty, int) or not 0 < qty <= MAX_LINE_QTY
                or not isinstance(price, int | float) or not 0 <= price < 10_000_000):
            raise BadInput("Something in your cart can't be ordered; please view the cart and "
                           "try again.")
        name = clip(clean_text(getattr(line, "name", "") or product_id, what="item name",
                               max_chars=10_000), 200)
        size = str(getattr(line, "size", "") or "")[:20]
        items.append(OrderItem(product_id=product_id, name=name, size=size, qty=qty,
                               unit_price=float(price)))
    if not items:
        raise BadInput("Your cart is empty, so there is nothing to order yet.")
    if len(items) > MAX_ORDER_LINES:
        raise BadInput(f"An order can have at most {MAX_ORDER_LINES} different items.")
    return items


def _new_order_id() -> str:
    return f"SB-{secrets.randbelow(900_000) + 100_000}"


def with_new_id(order: Order) -> Order:
    """The same order under another id (and invoice number), after an id collision."""
    order_id = _new_order_id()
    return order.model_copy(update={
        "order_id": order_id, "invoice_number": invoice_number(order_id, order.placed_at)})


def placed_text(order: Order) -> str:
    """What the shopper is told when their order is placed: what it costs and when it comes."""
    fees = f", delivery {rupees(order.shipping_fee)}" if order.shipping_fee else ", free delivery"
    fees += f", cash-on-delivery fee {rupees(order.cod_fee)}" if order.cod_fee else ""
    return (f"{order.headline()} is placed: items {rupees(order.subtotal)}{fees}, paying by "
            f"{order.payment_label}. Expected delivery by {day_text(order.expected_delivery)}.")


def invoice_number(order_id: str, placed_at: datetime) -> str:
    return f"INV-{placed_at.year}-{order_id.removeprefix('SB-')}"


def invoice_text(order: Order) -> str:
    """The invoice summary a shopper can read in chat or copy: plain text, one fact a line."""
    lines = [
        f"Invoice {order.invoice_number} for order {order.order_id}",
        f"Date: {day_text(order.placed_at)} · Payment: {order.payment_label} · "
        f"Status: {order.status.value.replace('_', ' ')}",
        f"Deliver to: {order.address}",
        "",
    ]
    for n, item in enumerate(order.items, start=1):
        size = f" (size {item.size})" if item.size else ""
        lines.append(f"{n}. {item.name}{size} - {item.qty} × {rupees(item.unit_price)} = "
                     f"{rupees(item.line_total)}")
    lines += ["", f"Items: {rupees(order.subtotal)}",
              f"Delivery: {rupees(order.shipping_fee) if order.shipping_fee else 'free'}"]
    if order.cod_fee:
        lines.append(f"Cash-on-delivery fee: {rupees(order.cod_fee)}")
    lines.append(f"Total: {rupees(order.total)}")
    if order.delivered_at:
        lines.append(f"Delivered: {day_text(order.delivered_at)}")
    if order.cancelled_at:
        lines.append(f"Cancelled: {day_text(order.cancelled_at)} (no charge stands)")
    lines += [f"Refund {r.refund_id}: {rupees(r.amount)}, {r.status.value}" for r in order.refunds]
    return "\n".join(lines)

def _load(conn: Connection, where: ColumnElement[bool], limit: int = 100) -> list[Order]:
    rows = conn.execute(select(_orders).where(where)
                        .order_by(_orders.c.placed_at.desc(), _orders.c.order_id.desc())
                        .limit(limit)).mappings().all()
    found = []
    for row in rows:
        items = [
            OrderItem(product_id=r.product_id, name=r.name, size=r.size, qty=r.qty,
                      unit_price=r.unit_price, returned_qty=r.returned_qty)
            for r in conn.execute(select(_items).where(_items.c.order_id == row["order_id"])
                                  .order_by(_items.c.line_no))
        ]
        refunds = [
            Refund(refund_id=r.refund_id, order_id=r.order_id, kind=r.kind, status=r.status,
                   reason=r.reason, lines=r.lines, amount=r.amount, requested_at=r.requested_at,
                   approved_at=r.approved_at, refunded_at=r.refunded_at)
            for r in conn.execute(select(_refunds).where(_refunds.c.order_id == row["order_id"])
                                  .order_by(_refunds.c.requested_at, _refunds.c.refund_id))
        ]
        found.append(Order(**dict(row), items=items, refunds=refunds))
    return found


def _reload(conn: Connection, order_id: str) -> Order:
    return _load(conn, _orders.c.order_id == order_id)[0]


def _add_refund(
    conn: Connection, order: Order, kind: str, reason: str, lines: list[RefundLine],
    amount: float, status: RefundStatus, now: datetime,
) -> Refund:
    number = conn.execute(select(func.count()).select_from(_refunds)
                          .where(_refunds.c.order_id == order.order_id)).scalar_one() + 1
    refund = Refund(
        refund_id=f"RF-{order.order_id.removeprefix('SB-')}-{number}", order_id=order.order_id,
        kind=kind, status=status, reason=reason, lines=lines, amount=round(amount, 2),
        requested_at=now, approved_at=now if status is not RefundStatus.REQUESTED else None,
        refunded_at=now if status is RefundStatus.REFUNDED else None,
    )
    _insert_refund(conn, refund)
    return refund


def order_of_checkout(conn: Connection, sender_id: str, checkout_key: str) -> Order | None:
    """The shopper's order made by the checkout with this key, if that checkout happened."""
    found = _load(conn, (_orders.c.checkout_key == checkout_key)
                  & (_orders.c.sender_id == sender_id), limit=1)
    return found[0] if found else None


def insert_order(conn: Connection, order: Order, checkout_key: str | None = None) -> None:
    """Write a whole order (items and refunds too) inside the caller's transaction;
    ``checkout_key`` marks the checkout that made it (unique: see :mod:`shop.checkout`)."""
    conn.execute(insert(_orders).values(
        order_id=order.order_id, sender_id=order.sender_id, status=order.status.value,
        **{c: getattr(order, c) for c in _DATE_COLUMNS}, address=order.address,
        payment_method=order.payment_method, subtotal=order.subtotal,
        shipping_fee=order.shipping_fee, cod_fee=order.cod_fee, total=order.total,
        invoice_number=order.invoice_number, checkout_key=checkout_key))
    conn.execute(insert(_items), [
        {"order_id": order.order_id, "line_no": n, "product_id": i.product_id, "name": i.name,
         "size": i.size, "qty": i.qty, "unit_price": i.unit_price,
         "returned_qty": i.returned_qty}
        for n, i in enumerate(order.items, start=1)])
    for refund in order.refunds:
        _insert_refund(conn, refund)


def _insert_refund(conn: Connection, refund: Refund) -> None:
    conn.execute(insert(_refunds).values(
        refund_id=refund.refund_id, order_id=refund.order_id, kind=refund.kind,
        status=refund.status.value, reason=refund.reason,
        lines=[line.model_dump() for line in refund.lines], amount=refund.amount,
        requested_at=refund.requested_at, approved_at=refund.approved_at,
        refunded_at=refund.refunded_at))
