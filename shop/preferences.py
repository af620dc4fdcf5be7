"""What a shopper says about themselves, as profile facts: "I'm a size 9", "my budget is
2000", "I love Nike and blue", "I shop for women".

:func:`learn_from_text` is a pure function: it only takes what was clearly stated about the
shopper, and it returns nothing rather than guess ("I like the second one" teaches nothing).
The catalog vocabulary, when given, decides what counts as a brand or a colour; without it,
a built-in colour list and capitalised brand names are used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from retrieval.query import AMBIGUOUS_BRAND_WORDS
from retrieval.vocab import GENDER_WORDS, CatalogVocabulary, normalise
from shop.sizes import SIZE_WORDS
from shopcore.money import rupees

GENDERS = ("Men", "Women")
MAX_FAVOURITES = 10
MAX_LEARN_CHARS = 1000
MAX_BUDGET = 10_000_000

# Colours recognised when no catalog vocabulary is at hand (the Myntra base colours).
BASIC_COLOURS = (
    "Black", "White", "Blue", "Navy Blue", "Red", "Green", "Yellow", "Pink", "Purple",
    "Orange", "Brown", "Grey", "Maroon", "Beige", "Cream", "Gold", "Silver", "Olive", "Teal",
    "Turquoise Blue", "Lavender", "Khaki", "Off White", "Magenta", "Peach", "Mustard",
    "Charcoal", "Tan", "Rust", "Multi",
)
_KIND_WORDS = {
    **dict.fromkeys(["shoe", "shoes", "footwear", "feet", "foot", "sneaker", "sneakers",
                     "sandals", "heels", "boots", "trainers"], "shoe"),
    **dict.fromkeys(["waist", "jeans", "trousers", "trouser", "pants", "chinos", "shorts"],
                    "waist"),
    **dict.fromkeys(["clothing", "clothes", "dress", "dresses", "shirt", "shirts", "t-shirt",
                     "t-shirts", "tshirt", "tshirts", "top", "tops", "kurta", "kurtas",
                     "jacket", "jackets"], "clothing"),
}

_KIND = "(?P<kind>" + "|".join(map(re.escape, sorted(_KIND_WORDS, key=len, reverse=True))) + ")"
_VALUE = (r"(?P<value>extra\s+small|extra\s+large|x{0,3}l|xs|small|medium|large|s|m|l|"
          r"\d{1,2}(?:\.5)?)")
_I_AM = r"(?:i'm|i\s+am|im)"
_TRAIL = r"(?:\s+(?:in\s+|for\s+)?(?P<trail>[a-z][a-z'-]*))?"
_SIZE_PATTERNS = (
    re.compile(rf"\bmy\s+{_KIND}\s+size\s+(?:is\s+)?(?:a\s+)?(?:size\s+|uk\s+)?{_VALUE}\b"
               rf"{_TRAIL}", re.I),
    re.compile(rf"\b{_I_AM}\s+(?:a\s+|an\s+)?size\s+{_VALUE}\b{_TRAIL}", re.I),
    re.compile(rf"\bi\s+(?:usually\s+|normally\s+|generally\s+|always\s+)?(?:wear|take)\s+"
               rf"(?:a\s+|an\s+)?(?:size\s+|uk\s+)?{_VALUE}\b{_TRAIL}", re.I),
    re.compile(rf"\bmy\s+size\s+is\s+(?:size\s+)?{_VALUE}\b{_TRAIL}", re.I),
    re.compile(rf"\b{_I_AM}\s+(?:a\s+|an\s+)(?P<value>small|medium|large|extra\s+large|"
               rf"extra\s+small)\b{_TRAIL}", re.I),
    re.compile(r"\bmy\s+(?P<kind>waist)\s+(?:size\s+)?(?:is\s+)?(?P<value>\d{2})\b", re.I),
)
# Words that may follow a size without making it something else ("I wear M usually").
_SIZE_TRAILERS = {"size", "usually", "mostly", "normally", "and", "but", "or", "please", "too",
                  "so", "now", "generally", "always", "in", "uk", "inch", "inches"}
_GENDER_PATTERNS = (
    re.compile(rf"\b{_I_AM}\s+(?:a\s+|an\s+)?(woman|female|lady|man|male|guy|gentleman)\b", re.I),
    re.compile(r"\b(?:i\s+)?(?:usually\s+|mostly\s+|only\s+|always\s+)?shop(?:ping)?\s+"
               r"(?:for|in)\s+(?:the\s+)?(men|women|mens|womens|men's|women's)(?:\s+section)?\b",
               re.I),
)
_AMOUNT = r"(?:rs\.?\s*|inr\s*|₹\s*)?(\d[\d,]*(?:\.\d+)?)\s*(k\b|thousand\b)?"
_BUDGET_PATTERNS = (
    re.compile(rf"\bmy\s+(?:max(?:imum)?\s+|total\s+|usual\s+)?budget\s+(?:is\s+|of\s+)?"
               rf"(?:around\s+|about\s+|under\s+|upto\s+|up\s+to\s+)?{_AMOUNT}", re.I),
    re.compile(rf"\bbudget\s*(?:is|:|=)\s*(?:around\s+|about\s+)?{_AMOUNT}", re.I),
    re.compile(rf"\bi\s+have\s+a\s+budget\s+of\s+{_AMOUNT}", re.I),
    re.compile(rf"\b(?:don't|dont|do\s+not|can't|cant|cannot|won't|will\s+not)\s+(?:want\s+to\s+)?"
               rf"(?:spend|pay)\s+(?:more\s+than|over|above|beyond)\s+{_AMOUNT}", re.I),
    re.compile(rf"\bi\s+can\s+(?:only\s+)?(?:spend|afford)\s+(?:up\s*to\s+|max(?:imum)?\s+|"
               rf"at\s+most\s+)?{_AMOUNT}", re.I),
)
_CLAUSE = r"([^!?;:\n]{1,80})"  # dots stay: "U.S. Polo Assn." (see _candidates)
# (pattern, group of the liked things, group of "brand"/"colour" or None). Only the third
# ("my favourite brand is ...") names a brand plainly enough to take it without a catalog.
_LIKE_PATTERNS = (
    (re.compile(r"\bi\s+(?:really\s+|absolutely\s+|just\s+|only\s+|totally\s+|mostly\s+)?"
                rf"(?:love|like|adore|prefer)\s+{_CLAUSE}", re.I), 1, None),
    (re.compile(rf"\b{_I_AM}\s+(?:a\s+)?(?:big\s+|huge\s+|great\s+)?fan\s+of\s+{_CLAUSE}", re.I),
     1, None),
    (re.compile(r"\bmy\s+(?:favou?rite|fav|fave)\s+(brand|colou?r)s?\s+(?:is|are)\s+"
                rf"{_CLAUSE}", re.I), 2, 1),
    (re.compile(r"\b((?:[\w&.'-]+\s+){0,3}[\w&.'-]+)\s+(?:is|are)\s+my\s+(?:favou?rite|fav|fave)"
                r"\s+(brand|colou?r)s?\b", re.I), 1, 2),
)
# Where the liked things end: "I love Nike, my budget is 3k", "I like blue because...".
_CLAUSE_END = re.compile(r"\b(?:but|because|since|though|although|when|for|as|so|if|in|on|my|i|"
                         r"i'm|im|it|it's|its|which|that|to)\b", re.I)
# Words that may sit around liked brands and colours without changing what is meant.
_LIKE_FILLERS = {
    "and", "or", "the", "a", "also", "too", "both", "all", "of", "things", "stuff", "clothes",
    "products", "items", "a lot", "lot", "very", "much", "so", "really", "most", "best",
    "colour", "colours", "color", "colors", "brand", "brands", "shades", "wear",
    "shoes", "clothing", "ones", "anything", "everything", "from", "by", "s",
}


@dataclass(frozen=True)
class ProfileUpdate:
    """What one message taught about the shopper (empty when it taught nothing)."""

    sizes: dict[str, str] = field(default_factory=dict)
    gender: str | None = None
    budget_max: float | None = None
    brands: tuple[str, ...] = ()
    colours: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.fields()

    def fields(self) -> dict[str, Any]:
        """The learned fields, ready for ``ProfileStore.update(sender_id, **fields)``."""
        found = {"sizes": self.sizes, "gender": self.gender, "budget_max": self.budget_max,
                 "brands": list(self.brands), "colours": list(self.colours)}
        return {k: v for k, v in found.items() if v not in (None, {}, [])}

    def describe(self) -> str:
        """'shoe size 9, shopping for women, a budget of ₹2,000, Nike and blue'."""
        parts = [f"{kind} size {size}" for kind, size in self.sizes.items()]
        if self.gender:
            parts.append(f"shopping for {self.gender.lower()}")
        if self.budget_max:
            parts.append(f"a budget of {rupees(self.budget_max)}")
        likes = [*self.brands, *(c.lower() for c in self.colours)]
        if likes:
            parts.append("you like " + " and ".join(likes))
        return ", ".join(parts)


# -- learning from a message -----------------------------------------------------------------


def learn_from_text(text: object, vocab: CatalogVocabulary | None = None) -> ProfileUpdate:
    """Preferences the shopper stated about themselves in ``text`` (pure; never raises)."""
    if not isinstance(text, str) or not text.strip():
        return ProfileUpdate()
    text = text[:MAX_LEARN_CHARS].replace("\u2019", "'").replace("\u2018", "'")
    brands, colours = _learn_likes(text, vocab)
    return ProfileUpdate(
        sizes=_learn_sizes(text), gender=_learn_gender(text), budget_max=_learn_budget(text),
        brands=tuple(brands), colours=tuple(colours),
    )


def _size_value(raw: str) -> str:
    word = " ".join(raw.lower().split())
    return SIZE_WORDS.get(word, word).upper()


def _size_kind(value: str, kind_word: str | None) -> str | None:
    """Which kind of size this is: the word said so, or the value's shape decides."""
    numeric = value.replace(".", "", 1).isdigit()
    kind = _KIND_WORDS.get(kind_word.lower()) if kind_word else None
    if kind == "shoe":
        return "shoe" if numeric and float(value) <= 48 else None
    if kind == "waist":
        return "waist" if numeric and 20 <= float(value) <= 50 else None
    if kind == "clothing":
        return "clothing"
    if not numeric:
        return "clothing"
    number = float(value)
    if number <= 15:
        return "shoe"
    if 24 <= number <= 34:
        return "waist"
    return "clothing" if 36 <= number <= 48 else None


def _learn_sizes(text: str) -> dict[str, str]:
    sizes: dict[str, str] = {}
    for pattern in _SIZE_PATTERNS:
        for match in pattern.finditer(text):
            found = match.groupdict()
            kind_word, trail = found.get("kind"), (found.get("trail") or "").lower()
            if trail in _KIND_WORDS:
                kind_word = kind_word or trail
            elif trail and trail not in _SIZE_TRAILERS:
                continue  # "I wear large earrings", "I'm a small business owner"
            value = _size_value(found["value"])
            kind = _size_kind(value, kind_word)
            if kind:
                sizes.setdefault(kind, value)
    return sizes


def _learn_gender(text: str) -> str | None:
    for pattern in _GENDER_PATTERNS:
        match = pattern.search(text)
        if match:
            word = match.group(1).lower().replace("'", "")
            word = {"mens": "men", "womens": "women"}.get(word, word)
            targets = GENDER_WORDS.get(word, [])
            return targets[0] if targets and targets[0] in GENDERS else None
    return None


def _learn_budget(text: str) -> float | None:
    for pattern in _BUDGET_PATTERNS:
        match = pattern.search(text)
        if not match:
            continue
        try:
            value = float(match.group(1).replace(",", ""))
        except ValueError:
            continue
        if match.group(2):
            value *= 1000
        if 50 <= value <= MAX_BUDGET:
            return value
    return None


def _basic_vocab() -> CatalogVocabulary:
    return CatalogVocabulary(colours=dict.fromkeys(BASIC_COLOURS, 1))


def _learn_likes(text: str, vocab: CatalogVocabulary | None) -> tuple[list[str], list[str]]:
    if not any(pattern.search(text) for pattern, _, _ in _LIKE_PATTERNS):
        return [], []  # most messages: skip building the phrase tables
    tables = _LikeTables(
        colours=(vocab or _basic_vocab()).colour_phrases(),
        brands=vocab.brand_phrases() if vocab else {},
        articles=set(vocab.article_phrases()) if vocab else set(),
    )
    brands: list[str] = []
    colours: list[str] = []
    for pattern, clause_group, kind_group in _LIKE_PATTERNS:
        for match in pattern.finditer(text):
            kind = (match.group(kind_group) or "").lower()[:5] if kind_group else ""
            plainly = pattern is _LIKE_PATTERNS[2][0]
            anchored_at_end = pattern is _LIKE_PATTERNS[-1][0]
            for words in _candidates(match.group(clause_group), anchored_at_end):
                found = _liked_things(words, kind, tables, plainly)
                if found is not None:
                    brands += [b for b in found[0] if b not in brands]
                    colours += [c for c in found[1] if c not in colours]
                    break
    return brands, colours


def _candidates(clause: str, anchored_at_end: bool) -> list[list[str]]:
    """Word lists the liked things may be, most likely first.

    A dot may end the sentence ("I like blue. Show me shirts") or an abbreviation
    ("U.S. Polo Assn."), so each cut at a dot is tried, shortest first. "Honestly Nike is my
    favourite brand" is anchored at its end, so there the cuts drop leading words instead.
    """
    if anchored_at_end:
        words = re.findall(r"[\w&'.-]+", clause)
        return [words[start:] for start in range(len(words))]
    cuts = [m.start() for m in re.finditer(r"\.(?=\s|$)", clause)] + [len(clause)]
    found = []
    for cut in cuts:
        part = clause[:cut]
        end = _CLAUSE_END.search(part)
        words = re.findall(r"[\w&'.-]+", part[: end.start()] if end else part)
        if words and words not in found:
            found.append(words)
    return found


@dataclass(frozen=True)
class _LikeTables:
    colours: dict[str, list[str]]
    brands: dict[str, list[str]]  # empty: no catalog, brands are capitalised names
    articles: set[str]


def _liked_things(
    words: list[str], kind: str, tables: _LikeTables, plainly: bool = False
) -> tuple[list[str], list[str]] | None:
    """Brands and colours making up the whole clause, or None if it speaks of anything else.

    ``kind`` is "brand" or "colo(u)r" when the shopper said which, else "". Without a catalog,
    brands must be capitalised names unless ``plainly`` named ("my favourite brand is ...").
    """
    tokens = [" ".join(re.sub(r"[^a-z0-9]+", " ", normalise(w)).split()) for w in words]
    taken = [not t or t in _LIKE_FILLERS for t in tokens]
    brands: list[str] = []
    colours: list[str] = []
    for size in range(4, 0, -1):
        for start in range(len(tokens) - size + 1):
            if any(taken[start:start + size]):
                continue
            phrase = " ".join(tokens[start:start + size])
            if kind != "brand" and phrase in tables.colours:
                colours.append(tables.colours[phrase][0])
            elif (not kind.startswith("colo") and phrase in tables.brands
                  and (kind == "brand" or phrase not in AMBIGUOUS_BRAND_WORDS)):
                brands.append(tables.brands[phrase][0])
            elif phrase not in tables.articles:  # "Nike sneakers": the product word is fine
                continue
            taken[start:start + size] = [True] * size
    if all(taken):
        return (brands, colours) if brands or colours else None
    if tables.brands or kind.startswith("colo"):
        return None  # something that is neither a catalog brand nor a colour
    # No catalog: each run of words between fillers must be a capitalised name.
    runs: list[list[str]] = [[]]
    for word, used in zip(words, taken, strict=True):
        if used:
            runs.append([])
        else:
            runs[-1].append(word.strip(".'"))
    for run in (r for r in runs if r):
        name = " ".join(run)
        if (len(run) > 3 or name.lower() in AMBIGUOUS_BRAND_WORDS | {"it", "this", "that"}
                or not ((plainly and kind == "brand") or all(w[:1].isupper() for w in run))):
            return None
        brands.append(name)
    return brands, colours
