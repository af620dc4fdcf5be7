"""The shop's orders: tracking, cancelling, returns and refunds, address changes, invoices.

Order ids look like ``SB-123456`` (``SB-`` and six digits); :func:`parse_order_id` finds one
in free text ("order sb 100234", "#SB-100234", "SB100234"). Every operation is asked *as a
shopper* (``sender_id``) and answers an :class:`OrderOutcome` whose ``message`` the bot can
say as it is. Another shopper's order and an order that does not exist give the same
outcome, word for word, so an order id never tells anyone whose it is. Rules a shop sets
(returns window, delivery fees) come from the policy file through :class:`OrderRules`.

Demo data: :func:`seed_demo_orders` gives the senders in :data:`DEMO_SENDERS`
(``demo-shopper``, ``demo-shopper-2``) orders in every interesting state, with ids
``SB-1001xx`` for the first sender and ``SB-2001xx`` for the second.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict

from shopbot.shopdb import (
    BadInput,
    SQLiteStore,
    as_utc,
    clean_text,
    clip,
    day_text,
    from_db,
    now_utc,
    rupees,
    short,
    to_db,
    valid_id,
)

if TYPE_CHECKING:
    from retrieval.catalog import Product
    from retrieval.policy import ShopPolicy

logger = logging.getLogger(__name__)

ORDER_ID_EXAMPLE = "SB-123456"
ORDER_ID_HELP = (
    f"Order numbers look like {ORDER_ID_EXAMPLE} (SB and six digits); you'll find yours in "
    "the order confirmation email and under My Orders."
)
# "SB-100234", "sb 100234", "#SB100234", "SB:100234"; "#100234" and "order no. 100234" too.
_ORDER_ID_PATTERNS = (
    re.compile(r"(?<![a-z0-9])sb\s*[-_:#.]?\s*(\d{6})(?![\d])", re.IGNORECASE),
    re.compile(r"(?<![\w])#\s*(\d{6})(?![\d])"),
    re.compile(r"\border\b\s*(?:no\.?|num(?:ber)?|id)?\s*[:#]?\s*(\d{6})(?![\d])", re.IGNORECASE),
)
MAX_ORDER_LINES = 50
MAX_LINE_QTY = 10
MAX_ADDRESS_CHARS = 300
MIN_ADDRESS_CHARS = 10
MAX_REASON_CHARS = 500
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


@dataclass(frozen=True)
class OrderRules:
    """The shop's rules orders follow; :meth:`from_policy` reads them from bot/policy.yml."""

    returns_window_days: int = 30
    refund_days: str = "5-7"
    free_shipping_above: float = 999
    shipping_fee: float = 79
    delivery_days: int = 8
    cod_limit: float = 10_000
    cod_fee: float = 29

    @classmethod
    def from_policy(cls, policy: ShopPolicy) -> OrderRules:
        days = [int(d) for d in re.findall(r"\d+", policy.shipping.standard_days_other)]
        return cls(
            returns_window_days=policy.returns.window_days,
            refund_days=policy.returns.refund_days,
            free_shipping_above=policy.shipping.free_above,
            shipping_fee=policy.shipping.standard_fee,
            delivery_days=max(days) if days else cls.delivery_days,
            cod_limit=policy.payment.cod_limit,
            cod_fee=policy.payment.cod_fee,
        )

    def shipping_for(self, subtotal: float) -> float:
        return 0.0 if subtotal >= self.free_shipping_above else float(self.shipping_fee)


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
    """A cart line with its price decided (``cart.PricedLine`` has this shape)."""

    product_id: str
    name: str
    size: str
    qty: int
    unit_price: float


def parse_order_id(text: object) -> str | None:
    """The first order id in free text, as ``SB-123456``; None when there is none."""
    if not isinstance(text, str):
        return None
    text = text[:2000]
    for pattern in _ORDER_ID_PATTERNS:
        match = pattern.search(text)
        if match:
            return f"SB-{match.group(1)}"
    return None


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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    sender_id TEXT NOT NULL,
    status TEXT NOT NULL,
    placed_at TEXT NOT NULL,
    packed_at TEXT,
    shipped_at TEXT,
    expected_delivery TEXT,
    delivered_at TEXT,
    cancelled_at TEXT,
    address TEXT NOT NULL,
    payment_method TEXT NOT NULL,
    subtotal REAL NOT NULL,
    shipping_fee REAL NOT NULL,
    cod_fee REAL NOT NULL DEFAULT 0,
    total REAL NOT NULL,
    invoice_number TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS orders_by_sender ON orders (sender_id, placed_at);
CREATE TABLE IF NOT EXISTS order_items (
    order_id TEXT NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    line_no INTEGER NOT NULL,
    product_id TEXT NOT NULL,
    name TEXT NOT NULL,
    size TEXT NOT NULL DEFAULT '',
    qty INTEGER NOT NULL CHECK (qty > 0),
    unit_price REAL NOT NULL CHECK (unit_price >= 0),
    returned_qty INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (order_id, line_no)
);
CREATE TABLE IF NOT EXISTS refunds (
    refund_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    lines TEXT NOT NULL,
    amount REAL NOT NULL,
    requested_at TEXT NOT NULL,
    approved_at TEXT,
    refunded_at TEXT
);
CREATE INDEX IF NOT EXISTS refunds_by_order ON refunds (order_id);
"""
_DATE_COLUMNS = ("placed_at", "packed_at", "shipped_at", "expected_delivery", "delivered_at",
                 "cancelled_at")


class OrderStore(SQLiteStore):
    """Orders, their items and refunds in SQLite; every read and change is per shopper."""

    SCHEMA = _SCHEMA

    def __init__(self, path: Path | str, rules: OrderRules | None = None) -> None:
        super().__init__(path)
        self.rules = rules or OrderRules()

    # -- reading ---------------------------------------------------------------------------

    def get_for(self, sender_id: str, order_id: str) -> Order | None:
        """The shopper's order; None for unknown ids AND other shoppers' orders alike."""
        wanted = parse_order_id(order_id)
        if wanted is None or not valid_id(sender_id):
            return None
        with self._read() as db:
            orders = self._load(db, "order_id = ? AND sender_id = ?", (wanted, sender_id))
        return orders[0] if orders else None

    def orders_of(self, sender_id: str, limit: int = 20) -> list[Order]:
        """The shopper's orders, newest first."""
        if not valid_id(sender_id):
            return []
        with self._read() as db:
            return self._load(db, "sender_id = ?", (sender_id,), limit=limit)

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
        with self._write() as db:
            found = self._find(sender_id, order_text, "cancel", db)
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
            db.execute("UPDATE orders SET status = ?, cancelled_at = ? WHERE order_id = ?",
                       (OrderStatus.CANCELLED.value, to_db(now), order.order_id))
            refund = None
            if order.payment_method != "cod":
                lines = [RefundLine(product_id=i.product_id, name=i.name, size=i.size,
                                    qty=i.qty, amount=i.line_total) for i in order.items]
                refund = self._add_refund(db, order, "cancellation", "order cancelled", lines,
                                          order.total, RefundStatus.APPROVED, now)
            order = self._load(db, "order_id = ?", (order.order_id,))[0]
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
        with self._write() as db:
            found = self._find(sender_id, order_text, "change address", db)
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
            db.execute("UPDATE orders SET address = ? WHERE order_id = ?",
                       (address, order.order_id))
            order = self._load(db, "order_id = ?", (order.order_id,))[0]
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
        with self._write() as db:
            found = self._find(sender_id, order_text, "return", db)
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
                db.execute("UPDATE order_items SET returned_qty = qty "
                           "WHERE order_id = ? AND line_no = ?", (order.order_id, line_no))
                lines.append(RefundLine(product_id=item.product_id, name=item.name,
                                        size=item.size, qty=left, amount=left * item.unit_price))
            amount = sum(line.amount for line in lines)
            refund = self._add_refund(db, order, "return", why, lines, amount,
                                      RefundStatus.REQUESTED, now)
            db.execute("UPDATE orders SET status = ? WHERE order_id = ?",
                       (OrderStatus.RETURN_REQUESTED.value, order.order_id))
            order = self._load(db, "order_id = ?", (order.order_id,))[0]
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
        """Checkout: a new order in ``placed`` state from priced cart lines (no payment taken)."""
        now = as_utc(now) or now_utc()
        try:
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
        except BadInput as error:
            logger.info("order not placed for %s: %s", short(sender_id), error)
            return OrderOutcome(OrderCode.INVALID_INPUT, str(error))
        shipping = self.rules.shipping_for(subtotal)
        cod_fee = float(self.rules.cod_fee) if method == "cod" else 0.0
        for _attempt in range(20):
            order_id = f"SB-{secrets.randbelow(900_000) + 100_000}"
            order = Order(
                order_id=order_id, sender_id=sender_id, status=OrderStatus.PLACED, items=items,
                subtotal=subtotal, shipping_fee=shipping, cod_fee=cod_fee,
                total=round(subtotal + shipping + cod_fee, 2), placed_at=now,
                expected_delivery=now + timedelta(days=self.rules.delivery_days),
                address=address, payment_method=method,
                invoice_number=invoice_number(order_id, now),
            )
            try:
                with self._write() as db:
                    _insert_order(db, order)
            except sqlite3.IntegrityError:
                continue  # id already taken: draw another
            fees = f", delivery {rupees(shipping)}" if shipping else ", free delivery"
            fees += f", cash-on-delivery fee {rupees(cod_fee)}" if cod_fee else ""
            return OrderOutcome(
                OrderCode.OK,
                f"{order.headline()} is placed: items {rupees(subtotal)}{fees}, paying by "
                f"{order.payment_label}. Expected delivery by {day_text(order.expected_delivery)}.",
                order)
        raise RuntimeError("could not draw a free order id")  # 20 collisions: store is full

    # -- back office -----------------------------------------------------------------------

    def set_status(
        self, order_id: str, status: OrderStatus | str, *, now: datetime | None = None
    ) -> Order | None:
        """Courier progress (packed, shipped, delivered...): forward moves only; stamps dates."""
        now = as_utc(now) or now_utc()
        target = OrderStatus(status)
        stamp = {OrderStatus.PACKED: "packed_at", OrderStatus.SHIPPED: "shipped_at",
                 OrderStatus.DELIVERED: "delivered_at"}.get(target)
        with self._write() as db:
            orders = self._load(db, "order_id = ?", (parse_order_id(order_id),))
            if not orders or target not in FULFILMENT or orders[0].status not in FULFILMENT:
                return None
            if FULFILMENT.index(target) <= FULFILMENT.index(orders[0].status):
                return None
            if stamp:
                db.execute(f"UPDATE orders SET status = ?, {stamp} = ? WHERE order_id = ?",
                           (target.value, to_db(now), orders[0].order_id))
            else:
                db.execute("UPDATE orders SET status = ? WHERE order_id = ?",
                           (target.value, orders[0].order_id))
            return self._load(db, "order_id = ?", (orders[0].order_id,))[0]

    def set_refund_status(
        self, refund_id: str, status: RefundStatus | str, *, now: datetime | None = None
    ) -> Refund | None:
        """Approve, pay or reject a refund; a fully paid-back return marks the order returned."""
        now = as_utc(now) or now_utc()
        target = RefundStatus(status)
        with self._write() as db:
            row = db.execute("SELECT order_id, kind FROM refunds WHERE refund_id = ?",
                             (refund_id,)).fetchone()
            if row is None:
                return None
            if target is RefundStatus.APPROVED:
                db.execute("UPDATE refunds SET status = ?, approved_at = ? WHERE refund_id = ?",
                           (target.value, to_db(now), refund_id))
            elif target is RefundStatus.REFUNDED:
                db.execute("UPDATE refunds SET status = ?, refunded_at = ?, "
                           "approved_at = COALESCE(approved_at, ?) WHERE refund_id = ?",
                           (target.value, to_db(now), to_db(now), refund_id))
            else:
                db.execute("UPDATE refunds SET status = ? WHERE refund_id = ?",
                           (target.value, refund_id))
            order = self._load(db, "order_id = ?", (row["order_id"],))[0]
            all_back = all(i.returned_qty >= i.qty for i in order.items)
            if (row["kind"] == "return" and target is RefundStatus.REFUNDED and all_back
                    and order.status is OrderStatus.RETURN_REQUESTED):
                db.execute("UPDATE orders SET status = ? WHERE order_id = ?",
                           (OrderStatus.RETURNED.value, order.order_id))
                order = self._load(db, "order_id = ?", (order.order_id,))[0]
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
        with self._write() as db:
            total = db.execute("SELECT COUNT(*) FROM orders WHERE sender_id = ?",
                               (sender_id,)).fetchone()[0]
            finished = [s.value for s in FINISHED]
            marks = ",".join("?" for _ in finished)
            db.execute(f"UPDATE orders SET address = ? WHERE sender_id = ? "
                       f"AND status IN ({marks})", (REMOVED_ADDRESS, sender_id, *finished))
            kept = db.execute(f"SELECT COUNT(*) FROM orders WHERE sender_id = ? "
                              f"AND status NOT IN ({marks})", (sender_id, *finished)).fetchone()[0]
            db.execute("UPDATE orders SET sender_id = 'forgotten:' || lower(hex(randomblob(8))) "
                       "WHERE sender_id = ?", (sender_id,))
        return total, kept

    def count(self) -> int:
        with self._read() as db:
            return db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]

    # -- internals -------------------------------------------------------------------------

    def _find(
        self, sender_id: str, order_text: str, doing: str, db: sqlite3.Connection | None = None
    ) -> Order | OrderOutcome:
        """The shopper's order named in ``order_text``, or the outcome that explains why not."""
        order_id = parse_order_id(order_text)
        if order_id is None:
            logger.info("%s: no order id in %r from %s", doing, str(order_text)[:60],
                        short(sender_id))
            return OrderOutcome(OrderCode.BAD_ORDER_ID,
                                f"That doesn't look like an order number. {ORDER_ID_HELP}")
        orders: list[Order] = []
        if valid_id(sender_id):
            if db is None:
                with self._read() as reader:
                    orders = self._load(reader, "order_id = ? AND sender_id = ?",
                                        (order_id, sender_id))
            else:
                orders = self._load(db, "order_id = ? AND sender_id = ?", (order_id, sender_id))
        if not orders:
            logger.info("%s: order %s not found for %s", doing, order_id, short(sender_id))
            return OrderOutcome(
                OrderCode.NOT_FOUND,
                f"I couldn't find order {order_id} on your account. Please check the number: "
                f"{ORDER_ID_HELP}")
        return orders[0]

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

    def _add_refund(
        self, db: sqlite3.Connection, order: Order, kind: str, reason: str,
        lines: list[RefundLine], amount: float, status: RefundStatus, now: datetime,
    ) -> Refund:
        number = db.execute("SELECT COUNT(*) FROM refunds WHERE order_id = ?",
                            (order.order_id,)).fetchone()[0] + 1
        refund = Refund(
            refund_id=f"RF-{order.order_id.removeprefix('SB-')}-{number}", order_id=order.order_id,
            kind=kind, status=status, reason=reason, lines=lines, amount=round(amount, 2),
            requested_at=now, approved_at=now if status is not RefundStatus.REQUESTED else None,
            refunded_at=now if status is RefundStatus.REFUNDED else None,
        )
        _insert_refund(db, refund)
        return refund

    @staticmethod
    def _load(
        db: sqlite3.Connection, where: str, params: tuple[Any, ...], limit: int = 100
    ) -> list[Order]:
        rows = db.execute(f"SELECT * FROM orders WHERE {where} "
                          "ORDER BY placed_at DESC, order_id DESC LIMIT ?",
                          (*params, limit)).fetchall()
        orders = []
        for row in rows:
            items = [
                OrderItem(product_id=r["product_id"], name=r["name"], size=r["size"],
                          qty=r["qty"], unit_price=r["unit_price"], returned_qty=r["returned_qty"])
                for r in db.execute("SELECT * FROM order_items WHERE order_id = ? "
                                    "ORDER BY line_no", (row["order_id"],))
            ]
            refunds = [
                Refund(refund_id=r["refund_id"], order_id=r["order_id"], kind=r["kind"],
                       status=r["status"], reason=r["reason"], lines=json.loads(r["lines"]),
                       amount=r["amount"], requested_at=from_db(r["requested_at"]),
                       approved_at=from_db(r["approved_at"]),
                       refunded_at=from_db(r["refunded_at"]))
                for r in db.execute("SELECT * FROM refunds WHERE order_id = ? "
                                    "ORDER BY requested_at, refund_id", (row["order_id"],))
            ]
            fields = dict(row)
            fields.update({c: from_db(row[c]) for c in _DATE_COLUMNS})
            orders.append(Order(**fields, items=items, refunds=refunds))
        return orders


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


def _insert_order(db: sqlite3.Connection, order: Order) -> None:
    db.execute(
        "INSERT INTO orders (order_id, sender_id, status, placed_at, packed_at, shipped_at, "
        "expected_delivery, delivered_at, cancelled_at, address, payment_method, subtotal, "
        "shipping_fee, cod_fee, total, invoice_number) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (order.order_id, order.sender_id, order.status.value,
         *(to_db(getattr(order, c)) for c in _DATE_COLUMNS), order.address,
         order.payment_method, order.subtotal, order.shipping_fee, order.cod_fee, order.total,
         order.invoice_number),
    )
    db.executemany(
        "INSERT INTO order_items (order_id, line_no, product_id, name, size, qty, unit_price, "
        "returned_qty) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(order.order_id, n, i.product_id, i.name, i.size, i.qty, i.unit_price, i.returned_qty)
         for n, i in enumerate(order.items, start=1)],
    )
    for refund in order.refunds:
        _insert_refund(db, refund)


def _insert_refund(db: sqlite3.Connection, refund: Refund) -> None:
    db.execute(
        "INSERT INTO refunds (refund_id, order_id, kind, status, reason, lines, amount, "
        "requested_at, approved_at, refunded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (refund.refund_id, refund.order_id, refund.kind, refund.status.value, refund.reason,
         json.dumps([line.model_dump() for line in refund.lines], ensure_ascii=False),
         refund.amount, to_db(refund.requested_at), to_db(refund.approved_at),
         to_db(refund.refunded_at)),
    )


# -- demo data -------------------------------------------------------------------------------

DEMO_SENDERS = ("demo-shopper", "demo-shopper-2")
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
    with store._write() as db:
        for index, sender_id in enumerate(list(senders)[:9]):
            templates = (_DEMO_ORDERS if index == 0 else
                         [t for t in _DEMO_ORDERS if t.suffix in _OTHER_SENDER_ORDERS])
            for template in templates:
                order = _demo_order(template, index, sender_id, pool, now, store.rules)
                if reset:
                    db.execute("DELETE FROM orders WHERE order_id = ?", (order.order_id,))
                elif db.execute("SELECT 1 FROM orders WHERE order_id = ?",
                                (order.order_id,)).fetchone():
                    continue
                _insert_order(db, order)
                created += 1
    logger.info("seeded %d demo orders", created)
    return created
