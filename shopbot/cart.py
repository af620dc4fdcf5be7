"""Each shopper's cart, kept across sessions, and its priced summary for viewing and checkout.

The store keeps only what the shopper chose (product id, size, quantity); prices and names
are looked up at summary time, so a cart never shows a stale price, and a product that left
the catalog (or a size no longer offered) is flagged instead of silently charged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from retrieval.catalog import Product
from shopbot.orders import MAX_LINE_QTY
from shopbot.shopdb import SQLiteStore, from_db, now_utc, rupees, short, to_db, valid_id

logger = logging.getLogger(__name__)

MAX_CART_LINES = 30
SIZE_WORDS = {
    "extra small": "XS", "x small": "XS", "small": "S", "medium": "M", "large": "L",
    "extra large": "XL", "x large": "XL", "double xl": "XXL", "2xl": "XXL", "xx large": "XXL",
    "extra extra large": "XXL", "3xl": "XXXL", "one size": "Onesize", "free size": "Onesize",
}

ProductLookup = Callable[[str], Product | None]


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


def size_text(size: str) -> str:
    return f"size {size}" if size and size.lower() != "onesize" else "one size"


def _size_part(product: Product, size: str) -> str:
    """', size M' for products sold in several sizes; nothing for one-size things."""
    return f", {size_text(size)}" if size and len(product.sizes) > 1 else ""


def _size_key(size: str) -> str:
    return re.sub(r"[^a-z0-9.]", "", size.lower()).removesuffix(".0")


def normalise_size(text: object, sizes: Iterable[str]) -> str | None:
    """The catalog size the shopper meant ("m", "Medium", "size 9", "UK 9", "2-3y"), or None."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    wanted = " ".join(re.sub(r"[^a-z0-9.-]+", " ", text.lower()).split())
    wanted = re.sub(r"^(?:size|uk|us|eu|in)\s+", "", wanted)
    wanted = SIZE_WORDS.get(wanted, wanted)
    return {_size_key(s): s for s in sizes}.get(_size_key(wanted))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS cart_lines (
    sender_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    size TEXT NOT NULL DEFAULT '',
    qty INTEGER NOT NULL CHECK (qty > 0),
    added_at TEXT NOT NULL,
    PRIMARY KEY (sender_id, product_id, size)
);
"""


class CartStore(SQLiteStore):
    """Cart lines per shopper; adding the same product and size again adds to its quantity."""

    SCHEMA = _SCHEMA

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
        with self._write() as db:
            row = db.execute(
                "SELECT qty FROM cart_lines WHERE sender_id = ? AND product_id = ? AND size = ?",
                (sender_id, product.id, chosen)).fetchone()
            have = row["qty"] if row else 0
            if have + qty > MAX_LINE_QTY:
                room = MAX_LINE_QTY - have
                more = f"I can add up to {room} more" if room else "I can't add more"
                return self._refuse(
                    sender_id, CartCode.QTY_LIMIT,
                    f"You can have at most {MAX_LINE_QTY} of one item; you already have {have} "
                    f"of {product.name} ({size_text(chosen)}), so {more}.")
            if row is None:
                count = db.execute("SELECT COUNT(*) FROM cart_lines WHERE sender_id = ?",
                                   (sender_id,)).fetchone()[0]
                if count >= MAX_CART_LINES:
                    return self._refuse(
                        sender_id, CartCode.CART_FULL,
                        f"Your cart already has {MAX_CART_LINES} different items; please "
                        "remove something or check out first.")
            db.execute(
                "INSERT INTO cart_lines (sender_id, product_id, size, qty, added_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (sender_id, product_id, size) "
                "DO UPDATE SET qty = qty + excluded.qty",
                (sender_id, product.id, chosen, qty, to_db(now or now_utc())))
            lines = self._lines(db, sender_id)
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
        with self._write() as db:
            rows = db.execute("SELECT size, qty FROM cart_lines WHERE sender_id = ? "
                              "AND product_id = ?", (sender_id, product_id)).fetchall()
            sizes = [r["size"] for r in rows]
            if size is not None and str(size).strip() and any(sizes):
                sizes = [s for s in sizes if s == (normalise_size(size, sizes) or None)]
            if not sizes:
                return self._refuse(sender_id, CartCode.NOT_IN_CART, "That isn't in your cart.")
            for s in sizes:
                if qty is None:
                    db.execute("DELETE FROM cart_lines WHERE sender_id = ? AND product_id = ? "
                               "AND size = ?", (sender_id, product_id, s))
                else:
                    db.execute("UPDATE cart_lines SET qty = qty - ? WHERE sender_id = ? "
                               "AND product_id = ? AND size = ?", (qty, sender_id, product_id, s))
                    db.execute("DELETE FROM cart_lines WHERE sender_id = ? AND product_id = ? "
                               "AND size = ? AND qty <= 0", (sender_id, product_id, s))
            lines = self._lines(db, sender_id)
        return CartOutcome(CartCode.OK, f"Removed. {len(lines)} item"
                           f"{'s' if len(lines) != 1 else ''} left in your cart.", lines)

    def lines(self, sender_id: str) -> list[CartLine]:
        if not valid_id(sender_id):
            return []
        with self._read() as db:
            return self._lines(db, sender_id)

    def clear(self, sender_id: str) -> int:
        """Empty the cart (after checkout, or "forget me"); returns lines removed."""
        if not valid_id(sender_id):
            return 0
        with self._write() as db:
            return db.execute("DELETE FROM cart_lines WHERE sender_id = ?",
                              (sender_id,)).rowcount

    @staticmethod
    def _lines(db, sender_id: str) -> list[CartLine]:  # noqa: ANN001 - sqlite3.Connection
        rows = db.execute("SELECT product_id, size, qty, added_at FROM cart_lines "
                          "WHERE sender_id = ? ORDER BY added_at, rowid", (sender_id,))
        return [CartLine(product_id=r["product_id"], size=r["size"], qty=r["qty"],
                         added_at=from_db(r["added_at"])) for r in rows]

    @staticmethod
    def _refuse(sender_id: object, code: CartCode, message: str) -> CartOutcome:
        logger.info("cart change refused for %s: %s", short(sender_id), code)
        return CartOutcome(code, message)


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

    def text(self, shipping_fee: float | None = None) -> str:
        """The cart as chat text; with ``shipping_fee`` it ends with the amount to pay."""
        if self.is_empty and not self.flagged:
            return "Your cart is empty."
        out = []
        if self.lines:
            noun = "item" if self.item_count == 1 else "items"
            out.append(f"Your cart ({self.item_count} {noun}):")
            for n, line in enumerate(self.lines, start=1):
                size = _size_part(line.product, line.size)
                saving = f" (you save {rupees(line.line_savings)})" if line.line_savings else ""
                out.append(f"{n}. {line.name}{size} × {line.qty} - {rupees(line.line_total)}"
                           f"{saving}")
            saved = f" (you save {rupees(self.savings)})" if self.savings else ""
            out.append(f"Items: {rupees(self.subtotal)}{saved}")
            if shipping_fee is not None:
                out.append(f"Delivery: {rupees(shipping_fee) if shipping_fee else 'free'}")
                out.append(f"To pay: {rupees(self.subtotal + shipping_fee)}")
        if self.flagged:
            out.append("Not counted: " + "; ".join(
                f"{f.line.product_id} ({f.reason})" for f in self.flagged))
        return "\n".join(out)
