"""Turn what a shopper typed into structured constraints plus the words left to rank by.

The catalog vocabulary is the source of truth; NLU entities are only a hint (a brand the
parser would not dare to guess from a common word, for example).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from retrieval.vocab import CatalogVocabulary, normalise

MAX_QUERY_CHARS = 500
MAX_NGRAM = 4
FUZZY_CUTOFF = 0.8

# Brand names that are also ordinary words: only taken as a brand when the NLU said so.
AMBIGUOUS_BRAND_WORDS = {
    "only", "w", "free", "people", "style", "fashion", "global", "united", "basics", "gap",
    "guess", "next", "mango", "red", "black", "white", "blue", "wear", "bare", "and", "in",
    "for", "the", "smart", "forever", "kids", "men", "women", "casual", "party", "sport",
    "denim", "gold", "silver", "classic", "basic", "urban", "royal", "active", "street",
}
# Words the typo pass must never bend into a facet ("winter" is not a typo of "wine").
_PROTECTED_WORDS = {
    "summer", "winter", "spring", "autumn", "fall", "monsoon", "festive", "wedding", "party",
    "formal", "casual", "ethnic", "office", "sports", "travel", "wear", "outfit", "clothes",
    "nice", "good", "best", "latest", "new", "stylish", "trendy", "comfortable", "light",
    "heavy", "warm", "cool", "long", "short", "plain", "printed", "solid", "cotton", "silk",
    "leather", "woolen", "woollen", "wool", "linen", "diwali", "gift", "gifts", "present",
}
_FILLER = re.compile(
    r"\b(show|me|find|get|i|im|i'm|want|need|looking|look|for|some|any|a|an|the|please|pls|"
    r"do|you|have|got|can|could|would|like|to|buy|see|something|stuff|things|options|in|with|"
    r"of|and|or|under|below|above|over|between|rs|inr|price|priced|cost|costing|within|less|"
    r"more|than|upto|up|around|about|cheap|cheaper|budget|affordable|one|ones|my|wear|clothes|"
    r"clothing|outfits?|attire)\b"
)

_AMOUNT = r"(?:rs\.?|inr|₹)?\s*(-?\d[\d,]*(?:\.\d+)?)\s*(k|thousand)?\s*(?:rs\.?|inr|rupees|/-)?"
_PRICE_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("range", re.compile(rf"\b(?:between|from)\s+{_AMOUNT}\s*(?:and|to|-)\s*{_AMOUNT}")),
    ("range", re.compile(rf"(?<![\w-]){_AMOUNT}\s*(?:-|to)\s*{_AMOUNT}")),
    ("max", re.compile(
        rf"\b(?:under|below|less than|lesser than|cheaper than|upto|up to|within|max|maximum|"
        rf"not more than|no more than|at most|budget of|budget is|budget)\s*{_AMOUNT}")),
    ("max", re.compile(rf"<\s*{_AMOUNT}")),
    ("max", re.compile(rf"{_AMOUNT}\s*(?:or less|and below|and under|or below|max)\b")),
    ("min", re.compile(
        rf"\b(?:above|over|more than|greater than|at least|min|minimum|starting at|"
        rf"starting from)\s*{_AMOUNT}")),
    ("min", re.compile(rf">\s*{_AMOUNT}")),
    ("min", re.compile(rf"{_AMOUNT}\s*(?:or more|and above|plus|\+)")),
    ("around", re.compile(rf"\b(?:around|about|approx|approximately|roughly|near)\s*{_AMOUNT}")),
]
_CHEAP_WORDS = re.compile(r"\b(cheap|cheaper|cheapest|budget|affordable|inexpensive|low cost)\b")


@dataclass
class SearchConstraints:
    """Hard filters (article type, colour, gender, brand, price) and soft hints for ranking."""

    article_types: list[str] = field(default_factory=list)
    colours: list[str] = field(default_factory=list)
    genders: list[str] = field(default_factory=list)
    brands: list[str] = field(default_factory=list)
    min_price: float | None = None
    max_price: float | None = None
    usages: list[str] = field(default_factory=list)
    prefer_cheap: bool = False
    text: str = ""
    mentions: dict[str, str] = field(default_factory=dict)

    def usage_filter(self) -> list[str]:
        """The style (formal, ethnic, sports...) filters only when no article type was named:
        "ethnic wear for men" means ethnic products, while in "party dresses" it only ranks."""
        return [] if self.article_types else self.usages

    def is_empty(self) -> bool:
        return not (self.article_types or self.colours or self.genders or self.brands
                    or self.usages
                    or self.min_price is not None or self.max_price is not None or self.text)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], {}, "", False)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SearchConstraints:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in (data or {}).items() if k in known})

    def describe(self) -> str:
        """Short human phrase for replies: 'red dresses for women under ₹2,000'."""
        words: list[str] = []
        if self.colours:
            words.append(self.mentions.get("colour") or self.colours[0].lower())
        if self.brands:
            words.append(self.brands[0])
        if self.usage_filter():
            words.append(self.usage_filter()[0].lower())
        words.append(self.mentions.get("article_type") or "products")
        if self.genders:
            words.append("for " + (self.mentions.get("gender") or self.genders[0].lower()))
        if self.min_price is not None and self.max_price is not None:
            words.append(f"between ₹{self.min_price:,.0f} and ₹{self.max_price:,.0f}")
        elif self.max_price is not None:
            words.append(f"under ₹{self.max_price:,.0f}")
        elif self.min_price is not None:
            words.append(f"above ₹{self.min_price:,.0f}")
        return " ".join(words)


def _amount(number: str, suffix: str | None) -> float | None:
    try:
        value = float(number.replace(",", ""))
    except ValueError:
        return None
    if suffix:
        value *= 1000
    return value if 0 < value < 10_000_000 else None


def _parse_price(text: str, found: SearchConstraints) -> str:
    """Fill min/max price from the first price phrase; returns text with it removed."""
    for kind, pattern in _PRICE_PATTERNS:
        match = pattern.search(text)
        if not match:
            continue
        groups = match.groups()
        if kind == "range":
            low, high = _amount(groups[0], groups[1]), _amount(groups[2], groups[3])
            if low is not None and high is not None:
                found.min_price, found.max_price = min(low, high), max(low, high)
        else:
            value = _amount(groups[0], groups[1])
            if value is not None:
                if kind == "max":
                    found.max_price = value
                elif kind == "min":
                    found.min_price = value
                else:
                    found.min_price, found.max_price = round(value * 0.8), round(value * 1.2)
        return text[: match.start()] + " " + text[match.end():]
    return text


def _match_phrases(
    tokens: list[str], table: dict[str, list[str]], taken: list[bool]
) -> list[tuple[str, list[str]]]:
    """Longest-first, non-overlapping phrase matches of ``tokens`` against ``table``."""
    matches: list[tuple[str, list[str]]] = []
    for size in range(MAX_NGRAM, 0, -1):
        for start in range(0, len(tokens) - size + 1):
            if any(taken[start:start + size]):
                continue
            phrase = " ".join(tokens[start:start + size])
            if phrase not in table and size == 2 and "".join(tokens[start:start + 2]) in table:
                phrase = "".join(tokens[start:start + 2])
            if phrase in table:
                matches.append((phrase, table[phrase]))
                for i in range(start, start + size):
                    taken[i] = True
    return matches


def _entity_values(entities: Iterable[dict[str, Any]] | None, name: str) -> set[str]:
    return {
        normalise(str(e.get("value", ""))) for e in entities or () if e.get("entity") == name
    }


def _merge(values: list[str], extra: list[str]) -> list[str]:
    return values + [v for v in extra if v not in values]


def _fuzzy_facets(
    tokens: list[str],
    taken: list[bool],
    vocab: CatalogVocabulary,
    brand_table: dict[str, list[str]],
    found: SearchConstraints,
) -> None:
    """Second pass for typos ("snekers", "tshrit", "adiddas"): close single-word matches."""
    tables = [
        ("article_type", "article_types", vocab.article_phrases()),
        ("brand", "brands", brand_table),
        ("colour", "colours", vocab.colour_phrases()),
    ]
    for i, token in enumerate(tokens):
        if (taken[i] or len(token) < 4 or _FILLER.fullmatch(token) or token.isdigit()
                or token in _PROTECTED_WORDS):
            continue
        for mention, attribute, table in tables:
            if getattr(found, attribute):
                continue
            words = [w for w in table if " " not in w and abs(len(w) - len(token)) <= 2]
            close = difflib.get_close_matches(token, words, n=1, cutoff=FUZZY_CUTOFF)
            if close:
                setattr(found, attribute, list(table[close[0]]))
                found.mentions.setdefault(mention, close[0])
                taken[i] = True
                break


def parse_query(
    text: str,
    vocab: CatalogVocabulary,
    entities: Iterable[dict[str, Any]] | None = None,
) -> SearchConstraints:
    """Extract constraints from free text; unknown words stay in ``text`` for ranking."""
    entities = list(entities or [])
    found = SearchConstraints()
    lowered = (text or "")[:MAX_QUERY_CHARS].lower()
    lowered = _parse_price(lowered, found)
    if _CHEAP_WORDS.search(lowered):
        found.prefer_cheap = True
    tokens = re.findall(r"[a-z0-9]+(?:'[a-z]+)?", normalise(lowered))
    taken = [False] * len(tokens)

    brand_hints = _entity_values(entities, "brand")
    brand_table = {
        phrase: brands for phrase, brands in vocab.brand_phrases().items()
        if phrase not in AMBIGUOUS_BRAND_WORDS or phrase in brand_hints
    }
    # Brands first: "red tape shoes" is a brand, not a colour.
    for phrase, brands in _match_phrases(tokens, brand_table, taken):
        found.brands = _merge(found.brands, brands)
        found.mentions.setdefault("brand", phrase)
    for phrase, articles in _match_phrases(tokens, vocab.article_phrases(), taken):
        found.article_types = _merge(found.article_types, articles)
        found.mentions.setdefault("article_type", phrase)
    for phrase, colours in _match_phrases(tokens, vocab.colour_phrases(), taken):
        found.colours = _merge(found.colours, colours)
        found.mentions.setdefault("colour", phrase)
    for phrase, genders in _match_phrases(tokens, vocab.gender_phrases(), taken):
        found.genders = _merge(found.genders, genders)
        found.mentions.setdefault("gender", phrase)
    for _phrase, usages in _match_phrases(tokens, vocab.usage_phrases(), taken):
        found.usages = _merge(found.usages, usages)

    _fuzzy_facets(tokens, taken, vocab, brand_table, found)
    leftover = " ".join(t for t, used in zip(tokens, taken, strict=True) if not used)
    found.text = " ".join(_FILLER.sub(" ", leftover).split())
    return found


def ranking_text(raw_text: str, constraints: SearchConstraints) -> str:
    """The text a dense or lexical ranker should see: the query minus chit-chat."""
    words = [constraints.mentions.get(k, "") for k in ("colour", "brand", "article_type")]
    words += [u.lower() for u in constraints.usages]
    words.append(constraints.text)
    cleaned = " ".join(w for w in words if w).strip()
    return cleaned or " ".join((raw_text or "")[:MAX_QUERY_CHARS].split())
