"""The catalog's own vocabulary (colours, article types, brands...), built at ingest time.

Query understanding matches shopper words against what this shop actually sells, so the
same code works for any catalog; only the small synonym table below is hand-made.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

from retrieval.catalog import Product

T = TypeVar("T")

VOCAB_FILE = "vocab.json"

# Shopper words -> catalog article types. Targets the catalog lacks are dropped at match time.
ARTICLE_SYNONYMS: dict[str, list[str]] = {
    "tee": ["Tshirts"], "tees": ["Tshirts"], "t shirt": ["Tshirts"], "t shirts": ["Tshirts"],
    "tshirt": ["Tshirts"], "polo": ["Tshirts"], "polos": ["Tshirts"],
    "sneaker": ["Casual Shoes", "Sports Shoes"], "sneakers": ["Casual Shoes", "Sports Shoes"],
    "trainers": ["Sports Shoes", "Casual Shoes"], "running shoes": ["Sports Shoes"],
    "shoes": ["Casual Shoes", "Sports Shoes", "Formal Shoes"],
    "shoe": ["Casual Shoes", "Sports Shoes", "Formal Shoes"],
    "footwear": ["Casual Shoes", "Sports Shoes", "Formal Shoes", "Heels", "Flats", "Sandals"],
    "loafers": ["Casual Shoes"], "boots": ["Casual Shoes", "Formal Shoes"],
    "stilettos": ["Heels"], "pumps": ["Heels"], "wedges": ["Heels"],
    "slippers": ["Flip Flops", "Sandals"], "chappals": ["Flip Flops", "Sandals"],
    "floaters": ["Sandals"], "ballerinas": ["Flats"],
    "shades": ["Sunglasses"], "sunglass": ["Sunglasses"], "goggles": ["Sunglasses"],
    "purse": ["Handbags", "Clutches", "Wallets"], "purses": ["Handbags", "Clutches", "Wallets"],
    "bag": ["Handbags", "Backpacks", "Laptop Bag", "Duffel Bag", "Messenger Bag", "Clutches"],
    "bags": ["Handbags", "Backpacks", "Laptop Bag", "Duffel Bag", "Messenger Bag", "Clutches"],
    "tote": ["Handbags"], "sling bag": ["Handbags"],
    "pants": ["Trousers", "Track Pants"], "chinos": ["Trousers"], "joggers": ["Track Pants"],
    "trackpants": ["Track Pants"], "denims": ["Jeans"],
    "hoodie": ["Sweatshirts"], "hoodies": ["Sweatshirts"], "pullover": ["Sweaters"],
    "cardigan": ["Sweaters"], "gown": ["Dresses"], "frock": ["Dresses"],
    "kurti": ["Kurtis", "Kurtas"], "kurtis": ["Kurtis", "Kurtas"],
    "sari": ["Sarees"], "saris": ["Sarees"], "hat": ["Caps", "Hats"], "hats": ["Caps", "Hats"],
    "perfume": ["Perfume and Body Mist"], "perfumes": ["Perfume and Body Mist"],
    "deo": ["Deodorant"], "deodorant": ["Deodorant"], "scent": ["Perfume and Body Mist"],
    "necklace": ["Necklace and Chains"], "chain": ["Necklace and Chains"],
    "watch": ["Watches"], "wristwatch": ["Watches"], "blazer": ["Blazers"],
    "tracksuit": ["Tracksuits"], "swimsuit": ["Swimwear"], "bikini": ["Swimwear"],
    "nightsuit": ["Night suits"], "pyjamas": ["Lounge Pants", "Night suits"],
    "salwar suit": ["Kurta Sets", "Salwar and Dupatta"],
    "salwar kameez": ["Kurta Sets", "Salwar and Dupatta"], "suit set": ["Kurta Sets"],
    "kurta pyjama": ["Kurta Sets", "Kurtas"], "kurta set": ["Kurta Sets"],
    "jhumka": ["Earrings"], "jhumkas": ["Earrings"], "jhumki": ["Earrings"],
    "studs": ["Earrings"], "bangle": ["Bangle"], "bangles": ["Bangle"],
    "cuff links": ["Cufflinks"], "sweatpants": ["Track Pants"],
}

# Shopper words that widen an exact catalog type: women's sandals are often filed as
# Flats or Heels, so "sandals" means all of them.
ARTICLE_WIDENING: dict[str, list[str]] = {
    "sandals": ["Sandals", "Sports Sandals", "Flats", "Heels"],
    "sandal": ["Sandals", "Sports Sandals", "Flats", "Heels"],
}

# Colours a shopper treats as one: asking for one also accepts the others.
COLOUR_FAMILIES: list[set[str]] = [
    {"Maroon", "Burgundy", "Wine"},
    {"Off White", "Cream"},
    {"Grey", "Grey Melange"},
    {"Gold", "Golden"},
]

COLOUR_SYNONYMS: dict[str, list[str]] = {
    "navy": ["Navy Blue"], "gray": ["Grey"], "golden": ["Gold"], "burgundy": ["Maroon"],
    "wine": ["Maroon"], "offwhite": ["Off White"], "off white": ["Off White"],
    "multicolour": ["Multi"], "multicolor": ["Multi"], "multi colour": ["Multi"],
    "multi color": ["Multi"], "colourful": ["Multi"], "colorful": ["Multi"],
    "violet": ["Purple"], "lavender": ["Lavender", "Purple"], "tan": ["Tan", "Brown"],
}

GENDER_WORDS: dict[str, list[str]] = {
    **dict.fromkeys(
        ["men", "man", "mens", "male", "males", "him", "his", "boyfriend", "husband",
         "dad", "father", "gents", "guy", "guys"],
        ["Men", "Unisex"]),
    **dict.fromkeys(
        ["women", "woman", "womens", "female", "ladies", "lady", "her", "wife", "girlfriend",
         "mom", "mother", "sister"],
        ["Women", "Unisex"]),
    **dict.fromkeys(["boys", "boy", "son"], ["Boys"]),
    **dict.fromkeys(["girls", "girl", "daughter"], ["Girls"]),
    **dict.fromkeys(["kids", "kid", "children", "child", "baby"], ["Boys", "Girls"]),
    "unisex": ["Unisex"],
}

USAGE_WORDS: dict[str, str] = {
    "formal": "Formal", "office": "Formal", "work": "Formal",
    "casual": "Casual", "everyday": "Casual",
    "party": "Party", "partywear": "Party",
    "sports": "Sports", "sport": "Sports", "gym": "Sports", "running": "Sports",
    "workout": "Sports", "training": "Sports",
    "ethnic": "Ethnic", "traditional": "Ethnic", "festive": "Ethnic", "wedding": "Ethnic",
    "diwali": "Ethnic",
    "travel": "Travel", "smart casual": "Smart Casual",
}


_ATTRIBUTE_WORD = re.compile(r"[a-z]{3,}")
_NON_COMPOUND = re.compile(r"\bnon[\s-]+([a-z]{3,})")


def _attribute_words(value: str) -> set[str]:
    """The words of an attribute value, plus its "non x" compounds ("Non-Padded" is a kind
    of product, not a refusal of padding)."""
    return {*_ATTRIBUTE_WORD.findall(value), *("non " + w for w in _NON_COMPOUND.findall(value))}


def _norm(text: str) -> str:
    return " ".join(text.lower().replace("-", " ").replace("&", " and ").split())


def singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def _built_once(method: Callable[[CatalogVocabulary], T]) -> Callable[[CatalogVocabulary], T]:
    """A phrase table is built on first use and kept: every message is parsed against the
    same tables (the vocabulary changes only by loading a new one)."""
    @functools.wraps(method)
    def table(self: CatalogVocabulary) -> T:
        built = self.__dict__.setdefault("_tables", {})  # not a field: never saved
        if method.__name__ not in built:
            built[method.__name__] = method(self)
        return built[method.__name__]
    return table


@dataclass
class CatalogVocabulary:
    """What the catalog sells, as phrase -> canonical catalog values lookups."""

    article_types: dict[str, int] = field(default_factory=dict)
    colours: dict[str, int] = field(default_factory=dict)
    brands: dict[str, int] = field(default_factory=dict)
    genders: dict[str, int] = field(default_factory=dict)
    usages: dict[str, int] = field(default_factory=dict)
    # Words of the products' attribute values (materials, patterns, cuts: "leather",
    # "printed", "sleeveless"): what a shopper can rule out by name ("no leather").
    attribute_words: dict[str, int] = field(default_factory=dict)
    product_count: int = 0

    @classmethod
    def from_products(cls, products: Iterable[Product]) -> CatalogVocabulary:
        counters: dict[str, Counter[str]] = {
            k: Counter() for k in ("article_types", "colours", "brands", "genders", "usages")
        }
        words: Counter[str] = Counter()
        count = 0
        for p in products:
            count += 1
            counters["article_types"][p.article_type] += 1
            counters["colours"][p.base_colour] += 1
            counters["brands"][p.brand] += 1
            counters["genders"][p.gender] += 1
            counters["usages"][p.usage] += 1
            words.update({w for value in p.attributes.values()
                          for w in _attribute_words(value.lower())})
        values = {k: {v: n for v, n in c.most_common() if v} for k, c in counters.items()}
        return cls(**values, attribute_words={w: n for w, n in words.most_common() if n > 1},
                   product_count=count)

    def save(self, store_dir: Path) -> None:
        store_dir.mkdir(parents=True, exist_ok=True)
        tmp = store_dir / (VOCAB_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), ensure_ascii=False, indent=1), encoding="utf-8")
        tmp.replace(store_dir / VOCAB_FILE)

    @classmethod
    def load(cls, store_dir: Path) -> CatalogVocabulary:
        path = store_dir / VOCAB_FILE
        if not path.is_file():
            return cls()
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    # -- phrase tables used by the query parser ---------------------------------------------

    @_built_once
    def article_phrases(self) -> dict[str, list[str]]:
        table: dict[str, list[str]] = {}
        for article in self.article_types:
            phrase = _norm(article)
            for form in {phrase, singular(phrase), phrase.replace(" ", "")}:
                table.setdefault(form, []).append(article)
        for word, targets in ARTICLE_SYNONYMS.items():
            present = [t for t in targets if t in self.article_types]
            if present and word not in table:
                table[word] = present
        for word, targets in ARTICLE_WIDENING.items():
            present = [t for t in targets if t in self.article_types]
            if present:
                table[word] = present
        return table

    @_built_once
    def product_type_words(self) -> set[str]:
        """Words of several-word product types ("sports" of "sports shoes"): never a brand
        on their own."""
        return {w for phrase in self.article_phrases() if " " in phrase for w in phrase.split()}

    @_built_once
    def colour_phrases(self) -> dict[str, list[str]]:
        table: dict[str, list[str]] = {}
        for colour in self.colours:
            phrase = _norm(colour)
            table.setdefault(phrase, []).append(colour)
        # A bare hue also means its shades the catalog names ("blue" -> Navy Blue, Teal Blue).
        for colour in self.colours:
            words = _norm(colour).split()
            if len(words) > 1 and words[-1] in table and colour not in table[words[-1]]:
                table[words[-1]].append(colour)
        for word, targets in COLOUR_SYNONYMS.items():
            present = [t for t in targets if t in self.colours]
            if present and word not in table:
                table[word] = present
        for colours in table.values():
            for family in COLOUR_FAMILIES:
                if family & set(colours):
                    colours.extend(c for c in sorted(family) if c in self.colours
                                   and c not in colours)
        return table

    @_built_once
    def brand_phrases(self) -> dict[str, list[str]]:
        table: dict[str, list[str]] = {}
        for brand in self.brands:
            # "U.S. Polo Assn." -> "u s polo assn" and "us polo assn"; "Ray-Ban" -> "rayban".
            words = re.sub(r"[^a-z0-9 ]", " ", _norm(brand)).split()
            if not words:
                continue
            for form in {" ".join(words), "".join(words),
                         " ".join(w for w in words if len(w) > 1)}:
                if form and brand not in table.get(form, []):
                    table.setdefault(form, []).append(brand)
        return table

    @_built_once
    def gender_phrases(self) -> dict[str, list[str]]:
        table: dict[str, list[str]] = {}
        for word, targets in GENDER_WORDS.items():
            present = [t for t in targets if t in self.genders] or targets
            table[word] = present
        return table

    @_built_once
    def usage_phrases(self) -> dict[str, list[str]]:
        return {word: [usage] for word, usage in USAGE_WORDS.items()}


normalise = _norm
