"""The structured part of a bot reply (Rasa's ``custom`` message): product cards, the cart
and an order, each with one formatter (``to_dict``, ``text``) and one parser (``from_dict``).

The actions build these, the widget and every messaging channel read them, so each shape is
defined here once. A reply's plain ``text`` is complete on its own (``rasa shell``, SMS): an
intro sentence plus the numbered list or the cart lines. A channel that can show cards shows
``intro`` and the cards instead, so nothing is listed twice.

Parsers never raise on what they are given: unknown fields are ignored, a malformed card or
line is skipped, and ``parse_payload`` answers None for anything that is not ours.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from shopcore.money import CURRENCY, price_text, rupees

MAX_CARDS = 10
MAX_CART_LINES = 50


def _number(value: object) -> float | None:
    """A finite number from a payload field, else None (no NaN, no inf, no strings of junk)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and abs(number) < 1e12 else None


def _text(value: object, limit: int = 500) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


@dataclass(frozen=True)
class ProductCard:
    """One product as every channel shows it."""

    id: str
    name: str
    brand: str = ""
    price: float | None = None
    final_price: float | None = None
    discount_percent: float | None = None
    colour: str = ""
    article_type: str = ""
    gender: str = ""
    image_url: str | None = None  # absolute, or /images/<file> on the shop's web server
    note: str = ""  # why it is shown: "because you looked at ..."

    @property
    def price_text(self) -> str:
        if self.price is None and self.final_price is None:
            return ""
        price = self.price if self.price is not None else self.final_price
        return price_text(price, self.final_price, self.discount_percent)  # type: ignore[arg-type]

    def line(self, position: int) -> str:
        """'1. Roadster Red Dress - ₹1,299 (was ₹1,999, 35% off) · Red · id 900001'."""
        details = " · ".join(x for x in (self.colour, f"id {self.id}") if x)
        text = f"{position}. {self.name} - {self.price_text} · {details}"
        return f"{text} - {self.note}" if self.note else text

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        discounted = self.final_price is not None and self.price is not None \
            and self.final_price < self.price
        data["discounted_price"] = self.final_price if discounted else None
        if not self.note:
            del data["note"]
        return data

    @classmethod
    def from_dict(cls, raw: object) -> ProductCard | None:
        if not isinstance(raw, Mapping) or not _text(raw.get("name")):
            return None
        product_id = raw.get("id")
        image = raw.get("image_url")
        return cls(
            id=str(product_id)[:128] if isinstance(product_id, str | int) else "",
            name=_text(raw.get("name"), 200), brand=_text(raw.get("brand"), 100),
            price=_number(raw.get("price")), final_price=_number(raw.get("final_price")),
            discount_percent=_number(raw.get("discount_percent")),
            colour=_text(raw.get("colour"), 60), article_type=_text(raw.get("article_type"), 60),
            gender=_text(raw.get("gender"), 20),
            image_url=image[:2000] if isinstance(image, str) and image else None,
            note=_text(raw.get("note"), 200),
        )


@dataclass(frozen=True)
class ProductCards:
    """Products to show as cards (a carousel), after an intro sentence."""

    TYPE = "product_cards"

    products: tuple[ProductCard, ...]
    intro: str = ""
    query: str = ""  # what the shopper asked, for the widget's "more like this"
    start: int = 1  # the first card's number in the list ("show more" continues at 6)
    listed: bool = True  # False: the intro already says it all (a description, a comparison)

    def text(self) -> str:
        """The reply for text-only channels: the intro, then one numbered line per product."""
        lines = [card.line(self.start + i) for i, card in enumerate(self.products)] \
            if self.listed else []
        return "\n".join(part for part in (self.intro, *lines) if part)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "intro": self.intro, "start": self.start,
                "listed": self.listed, "products": [card.to_dict() for card in self.products],
                "query": self.query}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ProductCards:
        products = raw.get("products")
        cards = [ProductCard.from_dict(p) for p in products[:MAX_CARDS]] \
            if isinstance(products, list) else []
        start = raw.get("start")
        return cls(tuple(card for card in cards if card is not None), _text(raw.get("intro"), 4000),
                   _text(raw.get("query"), 500),
                   start if isinstance(start, int) and 0 < start < 1000 else 1,
                   raw.get("listed") is not False)


@dataclass(frozen=True)
class CartLine:
    id: str
    name: str
    qty: int
    unit_price: float
    line_total: float
    size: str = ""
    image_url: str | None = None
    saving: float = 0.0

    def text(self, position: int) -> str:
        size = f", size {self.size}" if self.size else ""
        saving = f" (you save {rupees(self.saving)})" if self.saving else ""
        return f"{position}. {self.name}{size} × {self.qty} - {rupees(self.line_total)}{saving}"

    @classmethod
    def from_dict(cls, raw: object) -> CartLine | None:
        if not isinstance(raw, Mapping):
            return None
        qty, unit = _number(raw.get("qty")), _number(raw.get("unit_price"))
        total = _number(raw.get("line_total"))
        name = _text(raw.get("name"), 200) or _text(raw.get("id"), 128)
        if not name or qty is None or qty <= 0 or total is None:
            return None
        image = raw.get("image_url")
        return cls(id=_text(raw.get("id"), 128), name=name, qty=int(qty),
                   unit_price=unit if unit is not None else total / qty, line_total=total,
                   size=_text(raw.get("size"), 20),
                   image_url=image[:2000] if isinstance(image, str) and image else None,
                   saving=_number(raw.get("saving")) or 0.0)


@dataclass(frozen=True)
class Cart:
    """The shopper's cart priced now: lines, totals and what could not be counted."""

    TYPE = "cart"

    lines: tuple[CartLine, ...]
    total: float
    savings: float = 0.0
    shipping_fee: float | None = None  # set at checkout and when the cart is viewed
    flagged: tuple[str, ...] = ()  # "15970 (no longer sold)"
    intro: str = ""  # what just happened: "Added ... to your cart."
    currency: str = CURRENCY

    @property
    def item_count(self) -> int:
        return sum(line.qty for line in self.lines)

    def text(self) -> str:
        """The cart as chat text (every channel shows the cart as text)."""
        out = [self.intro] if self.intro else []
        if not self.lines and not self.flagged:
            out.append("Your cart is empty.")
            return "\n".join(out)
        if self.lines:
            noun = "item" if self.item_count == 1 else "items"
            out.append(f"Your cart ({self.item_count} {noun}):")
            out += [line.text(n) for n, line in enumerate(self.lines, start=1)]
            saved = f" (you save {rupees(self.savings)})" if self.savings else ""
            out.append(f"Items: {rupees(self.total)}{saved}")
            if self.shipping_fee is not None:
                fee = rupees(self.shipping_fee) if self.shipping_fee else "free"
                out.append(f"Delivery: {fee}")
                out.append(f"To pay: {rupees(self.total + self.shipping_fee)}")
        if self.flagged:
            out.append("Not counted: " + "; ".join(self.flagged))
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "intro": self.intro,
                "lines": [asdict(line) for line in self.lines], "total": self.total,
                "savings": self.savings, "shipping_fee": self.shipping_fee,
                "flagged": list(self.flagged), "currency": self.currency}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Cart:
        lines = raw.get("lines")
        parsed = [CartLine.from_dict(line) for line in lines[:MAX_CART_LINES]] \
            if isinstance(lines, list) else []
        kept = tuple(line for line in parsed if line is not None)
        total = _number(raw.get("total"))
        flagged = raw.get("flagged")
        return cls(
            lines=kept, total=total if total is not None else sum(x.line_total for x in kept),
            savings=_number(raw.get("savings")) or 0.0,
            shipping_fee=_number(raw.get("shipping_fee")),
            flagged=tuple(_text(f, 200) for f in flagged[:MAX_CART_LINES] if _text(f))
            if isinstance(flagged, list) else (),
            intro=_text(raw.get("intro"), 2000),
            currency=_text(raw.get("currency"), 8) or CURRENCY,
        )


@dataclass(frozen=True)
class OrderLine:
    id: str
    name: str
    qty: int
    unit_price: float
    size: str = ""


@dataclass(frozen=True)
class Order:
    """An order as a reply shows it (tracking, checkout): the facts, not the shop's records."""

    TYPE = "order"

    order_id: str
    status: str
    total: float
    lines: tuple[OrderLine, ...] = ()
    placed_on: str = ""  # ISO date
    expected_delivery: str = ""  # ISO date, or ''
    text_summary: str = ""  # the shopper-facing sentence about it
    currency: str = CURRENCY

    def text(self) -> str:
        return self.text_summary or f"Order {self.order_id}: {self.status.replace('_', ' ')}, " \
            f"{rupees(self.total)}."

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["type"] = self.TYPE
        return data

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Order | None:
        total = _number(raw.get("total"))
        order_id = _text(raw.get("order_id"), 32)
        if not order_id or total is None:
            return None
        lines = []
        for line in raw.get("lines") or [] if isinstance(raw.get("lines"), list) else []:
            if isinstance(line, Mapping) and _number(line.get("qty")) and \
                    _number(line.get("unit_price")) is not None:
                lines.append(OrderLine(id=_text(line.get("id"), 128),
                                       name=_text(line.get("name"), 200),
                                       qty=int(_number(line.get("qty")) or 0),
                                       unit_price=_number(line.get("unit_price")) or 0.0,
                                       size=_text(line.get("size"), 20)))
        return cls(order_id=order_id, status=_text(raw.get("status"), 40), total=total,
                   lines=tuple(lines), placed_on=_text(raw.get("placed_on"), 32),
                   expected_delivery=_text(raw.get("expected_delivery"), 32),
                   text_summary=_text(raw.get("text_summary"), 2000),
                   currency=_text(raw.get("currency"), 8) or CURRENCY)


Payload = ProductCards | Cart | Order


def parse_payload(custom: object) -> Payload | None:
    """The payload in a message's ``custom`` field, or None when it is none of ours."""
    if not isinstance(custom, Mapping):
        return None
    kind = custom.get("type")
    if kind == ProductCards.TYPE:
        return ProductCards.from_dict(custom)
    if kind == Cart.TYPE:
        return Cart.from_dict(custom)
    if kind == Order.TYPE:
        return Order.from_dict(custom)
    return None


def cards_message(cards: ProductCards) -> dict[str, Any]:
    """``dispatcher.utter_message`` arguments for product cards: full text + payload."""
    return {"text": cards.text(), "json_message": cards.to_dict()}


def cart_message(cart: Cart) -> dict[str, Any]:
    return {"text": cart.text(), "json_message": cart.to_dict()}

