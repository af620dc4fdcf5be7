"""Product cards: the structured payload every channel renders (web carousel, messengers)."""

from __future__ import annotations

from typing import Any

from retrieval.catalog import Product

IMAGE_ROUTE = "/images/"


def image_url(product: Product) -> str | None:
    """Absolute URLs from the catalog pass through; local photos are served under /images/."""
    if not product.image:
        return None
    if product.image.startswith(("http://", "https://")):
        return product.image
    return IMAGE_ROUTE + product.image.rsplit("/", 1)[-1]


def product_card(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "name": product.name,
        "brand": product.brand,
        "price": product.price,
        "discounted_price": product.final_price if product.discount_percent else None,
        "final_price": product.final_price,
        "discount_percent": product.discount_percent,
        "colour": product.base_colour,
        "article_type": product.article_type,
        "gender": product.gender,
        "image_url": image_url(product),
    }


def cards_payload(products: list[Product], **extra: Any) -> dict[str, Any]:
    """The ``custom`` message a widget turns into a carousel."""
    return {"type": "product_cards", "products": [product_card(p) for p in products], **extra}
