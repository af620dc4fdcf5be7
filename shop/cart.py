"""Each shopper's cart, kept across sessions, and its priced summary for viewing and checkout.

The store keeps only what the shopper chose (product id, size, quantity); prices and names
are looked up at summary time, so a cart never shows a stale price, and a product that left
the catalog (or a size no longer offered) is flagged instead of silently charged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from retrieval.cards import image_url
from retrieval.catalog import Product
from shop.rules import MAX_CART_LINES, MAX_LINE_QTY
from shop.sizes import normalise_size, size_text
from shopcore.db import Database, cart_lines, now_utc
from shopcore.ids import short, valid_id
from shopcore.payloads import Cart
from shopcore.payloads import CartLine as CartPayloadLine

logger = logging.getLogger(__name__)

ProductLookup = Callable[[str], Product | None]
_lines_table = cart_lines


class CartCode(StrEnum):
    OK = "ok"
    UNKNOWN_PRODUCT = "unknown_product"
    NEEDS_SIZE = "needs_size"
    BAD_SIZE = "bad_size"
    QTY_LIMIT = "qty_limit"
    CART_FULL = "cart_full"
    NOT_IN_CART = "not_in_cart"
    INVALID_INPUT = "invalid_input"


class CartLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    product_id: str
    size: str = ""  # "" for products sold in one size
    qty: int
    added_at: datetime


@dataclass(frozen=True)
class CartOutcome:
    """What an add/remove did; ``message`` explains a refusal (sizes on offer, limits)."""

    code: CartCode
    message: str
    lines: list[CartLine] = field(default_factory=list)  # the cart after the change

    @property
    def ok(self) -> bool:
        return self.code is CartCode.OK


def _size_part(product: Product, size: str) -> str:
    """', size M' for products sold in several sizes; nothing for one-size things."""
    return f", {size_text(size)}" if size and len(product.sizes) > 1 else ""


class CartStore:
    """Cart lines per shopper; adding the same product and size again adds to its quantity."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def add(
        self, sender_id: str, product: Product | None, size: str | None = None, qty: int = 1,
        *, now: datetime | None = None,
    ) -> CartOutcome:
        """Put ``qty`` of a product in the cart, in a size the product is sold in."""
        if not valid_id(sender_id):
            return self._refuse(sender_id, CartCode.INVALID_INPUT,
                                "I can't keep a cart without knowing who you are.")
        if not isinstance(product, Product):
            return self._refuse(sender_id, CartCode.UNKNOWN_PRODUCT,
                                "That product isn't available any more.")
        if not isinstance(qty, int) or isinstance(qty, bool) or not 0 < qty <= MAX_LINE_QTY:
            return self._refuse(sender_id, CartCode.INVALID_INPUT,
                                f"Please pick a quantity from 1 to {MAX_LINE_QTY}.")
        chosen = ""
        if product.sizes:
            listed = ", ".join(product.sizes)
            if size is None or (isinstance(size, str) and not size.strip()):
                if len(product.sizes) > 1:
                    return self._refuse(sender_id, CartCode.NEEDS_SIZE,
                                        f"Which size of {product.name}? Available: {listed}.")
                chosen = product.sizes[0]
            else:
                chosen = normalise_size(size, product.sizes) or ""
                if not chosen:
                    shown = str(size)[:20]
                    return self._refuse(
                        sender_id, CartCode.BAD_SIZE,
                        f"{product.name} doesn't come in size {shown}. Available: {listed}.")
        line = ((_lines_table.c.sender_id == sender_id) & (_lines_table.c.product_id == product.id)
                & (_lines_table.c.size == chosen))
        with self.db.write(sender_id) as conn:
            have = conn.execute(select(_lines_table.c.qty).where(line)).scalar() or 0
            if have + qty > MAX_LINE_QTY:
                room = MAX_LINE_QTY - have
                more = f"I can add up to {room} more" if room else "I can't add more"
                return self._refuse(
                    sender_id, CartCode.QTY_LIMIT,
                    f"You can have at most {MAX_LINE_QTY} of one item; you already have {have} "
                    f"of {product.name} ({size_text(chosen)}), so {more}.")
            if have:
                conn.execute(update(_lines_table).where(line).values(qty=have + qty))
            else:
                count = conn.execute(select(func.count()).select_from(_lines_table)
                                     .where(_lines_table.c.sender_id == sender_id)).scalar_one()
                if count >= MAX_CART_LINES:
                    return self._refuse(
                        sender_id, CartCode.CART_FULL,
                        f"Your cart already has {MAX_CART_LINES} different items; please "
                        "remove something or check out first.")
                last = conn.execute(select(func.max(_lines_table.c.position))
                                    .where(_lines_table.c.sender_id == sender_id)).scalar()
                conn.execute(insert(_lines_table).values(
                    sender_id=sender_id, product_id=product.id, size=chosen, qty=qty,
                    added_at=now or now_utc(), position=(last or 0) + 1))
            lines = _lines(conn, sender_id)
        total = have + qty
        if have:
            what = f"You now have {total} of them."
        else:
            what = f"{len(lines)} item{'s' if len(lines) != 1 else ''} in your cart."
        added = f"Added {product.name}{_size_part(product, chosen)} to your cart."
        return CartOutcome(CartCode.OK, f"{added} {what}", lines)

    def remove(
        self, sender_id: str, product_id: str, size: str | None = None, qty: int | None = None,
    ) -> CartOutcome:
        """Remove a product (every size unless one is named), or only ``qty`` of it."""
        if not valid_id(sender_id) or not valid_id(product_id):
            return self._refuse(sender_id, CartCode.NOT_IN_CART, "That isn't in your cart.")
        if qty is not None and (not isinstance(qty, int) or qty <= 0):
            return self._refuse(sender_id, CartCode.INVALID_INPUT,
                                "Please say how many to remove (1 or more).")
        of_product = ((_lines_table.c.sender_id == sender_id)
                      & (_lines_table.c.product_id == product_id))
        with self.db.write(sender_id) as conn:
            rows = conn.execute(select(_lines_table.c.size, _lines_table.c.qty)
                                .where(of_product)).all()
            sizes = [r.size for r in rows]
            if size is not None and str(size).strip() and any(sizes):
                sizes = [s for s in sizes if s == (normalise_size(size, sizes) or None)]
            if not sizes:
                return self._refuse(sender_id, CartCode.NOT_IN_CART, "That isn't in your cart.")
            held = {r.size: r.qty for r in rows}
            for s in sizes:
                one = of_product & (_lines_table.c.size == s)
                if qty is None or held[s] <= qty:
                    conn.execute(delete(_lines_table).where(one))
                else:
                    conn.execute(update(_lines_table).where(one).values(qty=held[s] - qty))
            lines = _lines(conn, sender_id)
        return CartOutcome(CartCode.OK, f"Removed. {len(lines)} item"
                           f"{'s' if len(lines) != 1 else ''} left in your cart.", lines)

    def lines(self, sender_id: str) -> list[CartLine]:
        if not valid_id(sender_id):
            return []
        with self.db.read() as conn:
            return _lines(conn, sender_id)

    def clear(self, sender_id: str, conn: Connection | None = None) -> int:
        """Empty the cart (after checkout, or "forget me"); returns lines removed.

        With ``conn`` it runs inside the caller's transaction (checkout)."""
        if not valid_id(sender_id):
            return 0
        statement = delete(_lines_table).where(_lines_table.c.sender_id == sender_id)
        if conn is not None:
            return conn.execute(statement).rowcount
        with self.db.write(sender_id) as own:
            return own.execute(statement).rowcount

    @staticmethod
    def _refuse(sender_id: object, code: CartCode, message: str) -> CartOutcome:
        logger.info("cart change refused for %s: %s", short(sender_id), code)
        return CartOutcome(code, message)


def _lines(conn: Connection, sender_id: str) -> list[CartLine]:
    rows = conn.execute(select(_lines_table).where(_lines_table.c.sender_id == sender_id)
                        .order_by(_lines_table.c.position))
    return [CartLine(product_id=r.product_id, size=r.size, qty=r.qty, added_at=r.added_at)
            for r in rows]


class PricedLine(BaseModel):
    """A cart line with today's catalog price; fits ``orders.OrderStore.place_order``."""

    model_config = ConfigDict(frozen=True)

    product: Product
    size: str
    qty: int

    @property
    def product_id(self) -> str:
        return self.product.id

    @property
    def name(self) -> str:
        return self.product.name

    @property
    def unit_price(self) -> float:
        return self.product.final_price

    @property
    def line_total(self) -> float:
        return self.qty * self.product.final_price

    @property
    def line_savings(self) -> float:
        return self.qty * (self.product.price - self.product.final_price)


@dataclass(frozen=True)
class FlaggedLine:
    """A cart line left out of the totals, and why (sold out size, product gone)."""

    line: CartLine
    reason: str


@dataclass(frozen=True)
class CartSummary:
    """The cart priced against the catalog now: lines, totals, savings, and what's flagged."""

    lines: list[PricedLine]
    flagged: list[FlaggedLine]

    @classmethod
    def build(cls, cart_lines: Iterable[CartLine], lookup: ProductLookup) -> CartSummary:
        priced, flagged = [], []
        for line in cart_lines:
            product = lookup(line.product_id)
            if not isinstance(product, Product):
                flagged.append(FlaggedLine(line, "no longer sold"))
            elif product.sizes and line.size not in product.sizes:
                flagged.append(FlaggedLine(line, f"{product.name} no longer comes in "
                                           f"{size_text(line.size)}"))
            else:
                priced.append(PricedLine(product=product, size=line.size, qty=line.qty))
        return cls(priced, flagged)

    @property
    def is_empty(self) -> bool:
        return not self.lines

    @property
    def item_count(self) -> int:
        return sum(line.qty for line in self.lines)

    @property
    def subtotal(self) -> float:
        """What the shopper pays for the items (discounted prices)."""
        return round(sum(line.line_total for line in self.lines), 2)

    @property
    def list_total(self) -> float:
        return round(sum(line.qty * line.product.price for line in self.lines), 2)

    @property
    def savings(self) -> float:
        return round(self.list_total - self.subtotal, 2)

    def payload(self, intro: str = "", shipping_fee: float | None = None) -> Cart:
        """The cart as a reply payload (its ``text()`` is the chat text); with
        ``shipping_fee`` it ends with the amount to pay."""
        lines = tuple(
            CartPayloadLine(id=line.product_id, name=line.name, qty=line.qty,
                            unit_price=line.unit_price, line_total=round(line.line_total, 2),
                            size=line.size if len(line.product.sizes) > 1 else "",
                            image_url=image_url(line.product), saving=round(line.line_savings, 2))
            for line in self.lines)
        flagged = tuple(f"{f.line.product_id} ({f.reason})" for f in self.flagged)
        return Cart(lines=lines, total=self.subtotal, savings=self.savings,
                    shipping_fee=shipping_fee, flagged=flagged, intro=intro)

    def text(self, shipping_fee: float | None = None) -> str:
        return self.payload(shipping_fee=shipping_fee).text()
