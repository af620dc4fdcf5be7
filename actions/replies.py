"""Reply text shared by the actions: prices and product lines written one way everywhere."""

from __future__ import annotations

from retrieval.catalog import Product


def rupees(amount: float) -> str:
    return f"₹{amount:,.0f}"


def price_text(product: Product) -> str:
    if product.discount_percent:
        return (f"{rupees(product.final_price)} (was {rupees(product.price)}, "
                f"{product.discount_percent}% off)")
    return rupees(product.final_price)


def product_line(position: int, product: Product) -> str:
    """'1. Roadster Women Red Dress - ₹1,299 (was ₹1,999, 35% off) · Red · id 900001'."""
    details = " · ".join(x for x in (product.base_colour, f"id {product.id}") if x)
    return f"{position}. {product.name} - {price_text(product)} · {details}"


def product_list(products: list[Product], start: int = 1) -> str:
    return "\n".join(product_line(start + i, p) for i, p in enumerate(products))
