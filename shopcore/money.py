"""Amounts of money as shoppers read them: one formatter for every reply and channel."""

from __future__ import annotations

CURRENCY = "INR"
SYMBOL = "₹"


def rupees(amount: float) -> str:
    """'₹1,299' for whole amounts, '₹1,299.50' otherwise (never rounded away)."""
    value = round(float(amount), 2)
    return f"{SYMBOL}{value:,.0f}" if value.is_integer() else f"{SYMBOL}{value:,.2f}"


def price_text(price: float, final_price: float | None = None,
               discount_percent: float | None = None) -> str:
    """'₹1,299 (was ₹1,999, 35% off)' for a discounted product, '₹1,299' otherwise."""
    final = price if final_price is None else final_price
    if price > final:
        off = f", {discount_percent:.0f}% off" if discount_percent else ""
        return f"{rupees(final)} (was {rupees(price)}{off})"
    return rupees(final)
