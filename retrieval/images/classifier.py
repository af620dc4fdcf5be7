"""What a photo shows: article type and colour with calibrated scores, for the reply to hedge on.

``ImageClassifier`` uses the store's trained head when there is one; without it, the
ImageNet prediction's fashion classes are folded onto the store's article types (by name,
else by text similarity) and the colour is estimated from pixel statistics.
``predicted_types`` turns a classification into the article-type filter a photo search
applies when the shopper named no type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from retrieval.images.encoder import Encoded, ImageEncoder
from retrieval.images.head import ImageHead
from retrieval.images.preprocess import GREY_BINS, HUE_BINS

Source = Literal["head", "imagenet"]


@dataclass
class Classification:
    """What the photo shows, with calibrated scores for the reply to hedge on."""

    article_type: str
    colour: str
    score: float
    top: list[tuple[str, float]]
    colour_score: float
    source: Source
    confident: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "article_type": self.article_type, "colour": self.colour,
            "score": round(self.score, 4),
            "top": [[label, round(score, 4)] for label, score in self.top],
            "colour_score": round(self.colour_score, 4), "source": self.source,
            "confident": self.confident,
        }


# ImageNet classes that are products a fashion shop sells: index -> (what it is, the Myntra
# article type it usually is). Other catalogs are mapped by text similarity to the phrase.
IMAGENET_FASHION: dict[int, tuple[str, str]] = {
    399: ("abaya robe", "Kurtas"), 400: ("gown robe", "Dresses"), 411: ("apron", "Tops"),
    414: ("backpack", "Backpacks"), 409: ("analog wrist watch", "Watches"),
    433: ("swimming cap", "Caps"), 445: ("bikini swimwear", "Swimwear"),
    451: ("bolo tie", "Ties"), 452: ("bonnet hat", "Hat"), 457: ("bow tie", "Ties"),
    459: ("bra", "Bra"), 464: ("belt buckle", "Belts"), 465: ("vest jacket", "Jackets"),
    474: ("cardigan sweater", "Sweaters"), 488: ("chain necklace", "Necklace and Chains"),
    501: ("cloak", "Jackets"), 502: ("clogs shoes", "Casual Shoes"),
    514: ("boots", "Casual Shoes"), 515: ("cowboy hat", "Hat"), 531: ("digital watch", "Watches"),
    552: ("feather boa scarf", "Scarves"), 568: ("fur coat", "Jackets"),
    578: ("gown dress", "Dresses"), 584: ("hair slide", "Hair Accessory"),
    585: ("hair spray deodorant", "Deodorant"),
    601: ("hoopskirt", "Skirts"), 608: ("jeans denim", "Jeans"),
    610: ("t-shirt jersey", "Tshirts"), 614: ("kimono", "Kurtas"), 617: ("lab coat", "Jackets"),
    629: ("lipstick", "Lipstick"), 630: ("loafer shoes", "Casual Shoes"),
    631: ("body lotion", "Body Lotion"), 636: ("messenger bag", "Messenger Bag"),
    638: ("swimsuit", "Swimwear"), 639: ("swimsuit", "Swimwear"),
    652: ("military uniform jacket", "Jackets"), 655: ("miniskirt", "Skirts"),
    658: ("mittens gloves", "Gloves"), 679: ("necklace", "Necklace and Chains"),
    689: ("overskirt", "Skirts"), 697: ("pyjamas nightwear", "Night suits"),
    709: ("pencil pouch", "Mobile Pouch"), 711: ("perfume", "Perfume and Body Mist"),
    735: ("poncho", "Jackets"), 748: ("purse handbag", "Handbags"),
    770: ("running shoes sneakers", "Sports Shoes"), 774: ("sandals", "Sandals"),
    775: ("sarong", "Sarees"), 806: ("socks", "Socks"), 808: ("sombrero hat", "Hat"),
    824: ("stole scarf", "Stoles"), 826: ("stopwatch watch", "Watches"),
    834: ("suit blazer", "Blazers"), 836: ("sunglasses", "Sunglasses"),
    837: ("sunglasses", "Sunglasses"), 838: ("sunscreen", "Sunscreen"),
    841: ("sweatshirt", "Sweatshirts"), 842: ("swimming trunks shorts", "Shorts"),
    869: ("trench coat", "Jackets"), 879: ("umbrella", "Umbrellas"),
    893: ("wallet", "Wallets"), 906: ("necktie", "Ties"),
}
IMAGENET_MIN_SIMILARITY = 0.45  # phrase -> article type by MiniLM; weaker matches are dropped
IMAGENET_CUT = 0.35  # fallback probability mass under which the bot asks instead of asserting

# Hue (12 bins from red) x (dark, light) and 5 grey levels -> catalog colour names.
_HUE_NAMES = (("Maroon", "Red"), ("Brown", "Orange"), ("Olive", "Yellow"), ("Olive", "Green"),
              ("Green", "Green"), ("Green", "Sea Green"), ("Teal", "Turquoise Blue"),
              ("Navy Blue", "Blue"), ("Navy Blue", "Blue"), ("Purple", "Lavender"),
              ("Purple", "Pink"), ("Maroon", "Pink"))
_GREY_NAMES = ("Black", "Black", "Grey", "Grey", "White")


def estimate_colour(histogram: np.ndarray) -> tuple[str, float]:
    """A catalog colour name from a foreground colour histogram, and its pixel share.

    Uses the centre-weighted half (the garment, not the model's jeans); a pixel-statistics
    stand-in for the colour head when there is none.
    """
    size = 2 * HUE_BINS + GREY_BINS
    centre = histogram[size:2 * size] if len(histogram) >= 2 * size else histogram[:size]
    names = [name for pair in _HUE_NAMES for name in pair] + list(_GREY_NAMES)
    totals: dict[str, float] = {}
    for name, weight in zip(names, centre, strict=True):
        totals[name] = totals.get(name, 0.0) + float(weight)
    name = max(totals, key=totals.__getitem__)
    return name, totals[name]


class ImagenetFallback:
    """ImageNet's fashion classes folded onto the store's article types (no head trained)."""

    def __init__(self, article_types: Sequence[str] = ()) -> None:
        self.targets: dict[int, str] = {}
        known = set(article_types)
        unmatched = {i: phrase for i, (phrase, default) in IMAGENET_FASHION.items()
                     if known and default not in known}
        for i, (_phrase, default) in IMAGENET_FASHION.items():
            if not known or default in known:
                self.targets[i] = default
        if unmatched:
            self.targets |= self._by_similarity(unmatched, list(article_types))

    @staticmethod
    def _by_similarity(phrases: dict[int, str], article_types: list[str]) -> dict[int, str]:
        from retrieval.embeddings import encode

        phrase_vectors = encode(list(phrases.values()))
        type_vectors = encode(article_types)
        similarity = phrase_vectors @ type_vectors.T
        return {i: article_types[int(row.argmax())]
                for i, row in zip(phrases, similarity, strict=True)
                if float(row.max()) >= IMAGENET_MIN_SIMILARITY}

    def predict(self, logits: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
        """Article types by the ImageNet probability mass that maps onto them, best first."""
        shifted = logits - logits.max()
        probabilities = np.exp(shifted) / np.exp(shifted).sum()
        mass: dict[str, float] = {}
        for i, article_type in self.targets.items():
            mass[article_type] = mass.get(article_type, 0.0) + float(probabilities[i])
        return sorted(mass.items(), key=lambda kv: -kv[1])[:k]


class ImageClassifier:
    """Article type and colour of a photo: the store's trained head, else ImageNet fallback."""

    def __init__(self, head: ImageHead | None, fallback: ImagenetFallback,
                 encoder: ImageEncoder | None = None) -> None:
        self.head = head
        self.fallback = fallback
        self._encoder = encoder

    @classmethod
    def load(cls, store_dir: Path) -> ImageClassifier:
        """The head in ``store_dir`` if trained there; ImageNet fallback onto its article types.

        Works on a store with no products (fallback onto Myntra-style article types).
        """
        from retrieval.versions import newest_index_dir
        from retrieval.vocab import CatalogVocabulary

        store_dir = Path(store_dir)
        head = ImageHead.load(store_dir)
        fallback_types: list[str] = []
        if head is None:
            fallback_types = list(CatalogVocabulary.load(newest_index_dir(store_dir))
                                  .article_types)
        return cls(head, ImagenetFallback(fallback_types))

    @property
    def encoder(self) -> ImageEncoder:
        if self._encoder is None:
            self._encoder = ImageEncoder.get()
        return self._encoder

    @property
    def source(self) -> Source:
        return "head" if self.head else "imagenet"

    @property
    def cut(self) -> float:
        """Score above which the answer is stated ("Looks like ..."), below which it is asked."""
        return self.head.cut if self.head else IMAGENET_CUT

    def classify(self, image: Image.Image) -> Classification:
        return self.classify_encoded(self.encoder.encode_images([image], mirror=True))[0]

    def classify_many(self, images: Sequence[Image.Image]) -> list[Classification]:
        return self.classify_encoded(self.encoder.encode_images(list(images), mirror=True))

    def classify_encoded(self, encoded: Encoded, k: int = 3) -> list[Classification]:
        results: list[Classification] = []
        if self.head is not None:
            types, colours = self.head.predict(encoded)
            for type_row, colour_row in zip(types, colours, strict=True):
                order = np.argsort(-type_row)[:k]
                top = [(self.head.article_types[i], float(type_row[i])) for i in order]
                colour_i = int(colour_row.argmax())
                results.append(Classification(
                    top[0][0], self.head.colours[colour_i], top[0][1], top,
                    float(colour_row[colour_i]), "head", top[0][1] >= self.cut))
            return results
        for logits, histogram in zip(encoded.logits, encoded.colour, strict=True):
            top = self.fallback.predict(logits, k) or [("", 0.0)]
            colour, colour_score = estimate_colour(histogram)
            results.append(Classification(top[0][0], colour, top[0][1], top, colour_score,
                                          "imagenet", top[0][1] >= self.cut))
        return results


def predicted_types(classification: Classification, mass: float = 0.9,
                    most: int = 3) -> list[str]:
    """The type to filter on when confident, else the few likeliest types covering ``mass``."""
    if classification.confident:
        return [classification.article_type]
    chosen, total = [], 0.0
    for label, score in classification.top[:most]:
        chosen.append(label)
        total += score
        if total >= mass:
            break
    return [c for c in chosen if c]
