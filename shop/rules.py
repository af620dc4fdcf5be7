"""The limits and the shop's rules every store follows, in one place.

Limits keep one shopper's data bounded (an order of 1,000 lines is a mistake or an attack);
:class:`OrderRules` are the shop's own terms, read from its policy file (bot/policy.yml).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retrieval.policy import ShopPolicy

MAX_LINE_QTY = 10  # of one product in one size, in the cart and in an order
MAX_CART_LINES = 30
MAX_ORDER_LINES = 50
MAX_ADDRESS_CHARS = 300
MIN_ADDRESS_CHARS = 10
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class OrderRules:
    """The shop's terms orders follow; :meth:`from_policy` reads them from bot/policy.yml."""

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
