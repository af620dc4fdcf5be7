"""Catalog products as reply cards (:class:`shopcore.payloads.ProductCard`), the one shape
the widget, the demo page and every messaging channel show."""

from __future__ import annotations

from retrieval.catalog import Product
from shopcore.payloads import ProductCard

IMAGE_ROUTE = "/images/"


def image_url(product: Product) -> str | None:
    """Absolute URLs from the catalog pass through; local photos are served under /images/."""
    if not product.image:
        return None
    if product.image.startswith(("http://", "https://")):
        return product.image
    return IMAGE_ROUTE + product.image.rsplit("/", 1)[-1]


def product_card(product: Product, note: str = "") -> ProductCard:
    return ProductCard(
        id=product.id, name=product.name, brand=product.brand, price=product.price,
        final_price=product.final_price, discount_percent=product.discount_percent or None,
        colour=product.base_colour, article_type=product.article_type, gender=product.gender,
        image_url=image_url(product), note=note,
    )
