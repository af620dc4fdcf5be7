"""Sizes as shoppers say them and as the catalog writes them ("medium" is "M", "UK 9" is "9"),
and which kind of size (shoe, clothing, waist) a product takes."""

from __future__ import annotations

import re
from collections.abc import Iterable

from retrieval.catalog import Product

SIZE_KINDS = ("shoe", "clothing", "waist")
SIZE_WORDS = {
    "extra small": "XS", "x small": "XS", "small": "S", "medium": "M", "large": "L",
    "extra large": "XL", "x large": "XL", "double xl": "XXL", "2xl": "XXL", "xx large": "XXL",
    "extra extra large": "XXL", "3xl": "XXXL", "one size": "Onesize", "free size": "Onesize",
}
FOOTWEAR_TYPES = {"Casual Shoes", "Sports Shoes", "Formal Shoes", "Heels", "Flats", "Sandals",
                  "Sports Sandals", "Flip Flops", "Booties"}
WAIST_TYPES = {"Jeans", "Trousers", "Shorts", "Capris", "Track Pants", "Belts", "Skirts"}


def size_text(size: str) -> str:
    return f"size {size}" if size and size.lower() != "onesize" else "one size"


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


def size_kind(product: Product) -> str | None:
    """Which kind of size fits this product (None for one-size things like bags)."""
    if product.article_type in FOOTWEAR_TYPES or product.master_category == "Footwear":
        return "shoe"
    if not product.sizes or product.sizes in (["Onesize"],):
        return None
    if product.article_type in WAIST_TYPES and all(s.isdigit() for s in product.sizes):
        return "waist"
    return "clothing" if product.master_category in ("Apparel", "") else None
