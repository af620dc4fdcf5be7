"""What the shop remembers about a shopper (sizes, gender, budget, favourite brands and colours).

Learned from what shoppers say ("I'm a size 9", "my budget is 2000", "I love Nike") by
:func:`learn_from_text`, a pure function: it only takes what was clearly stated about the
shopper, and it returns nothing rather than guess ("I like the second one" teaches nothing).
The catalog vocabulary, when given, decides what counts as a brand or a colour; without it,
a built-in colour list and capitalised brand names are used. :func:`with_profile_defaults`
turns a profile into the search constraints a fresh search starts from.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from retrieval.catalog import Product
from retrieval.query import AMBIGUOUS_BRAND_WORDS, SearchConstraints
from retrieval.vocab import GENDER_WORDS, CatalogVocabulary, normalise
from shopbot.cart import SIZE_WORDS, normalise_size
from shopbot.shopdb import (
    BadInput,
    SQLiteStore,
    clean_text,
    from_db,
    now_utc,
    rupees,
    short,
    to_db,
    valid_id,
)

logger = logging.getLogger(__name__)

SIZE_KINDS = ("shoe", "clothing", "waist")
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
_FOOTWEAR_TYPES = {"Casual Shoes", "Sports Shoes", "Formal Shoes", "Heels", "Flats", "Sandals",
                   "Sports Sandals", "Flip Flops", "Booties"}
_WAIST_TYPES = {"Jeans", "Trousers", "Shorts", "Capris", "Track Pants", "Belts", "Skirts"}

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


class Profile(BaseModel):
    """One shopper's remembered preferences; empty for a shopper the shop doesn't know."""

    model_config = ConfigDict(frozen=True)

    sender_id: str
    sizes: dict[str, str] = {}  # kind (shoe, clothing, waist) -> size as the catalog writes it
    gender: str = ""  # "Men" or "Women"
    budget_max: float | None = None
    brands: list[str] = []  # most recently stated first
    colours: list[str] = []
    updated_at: datetime | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.sizes or self.gender or self.budget_max or self.brands or self.colours)


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


# -- learning from a message -------------------------------------------------------------------


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


# -- the store -----------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    sender_id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""


class ProfileStore(SQLiteStore):
    """Profiles per shopper; updates merge into what is already known."""

    SCHEMA = _SCHEMA

    def get(self, sender_id: str) -> Profile:
        if not valid_id(sender_id):
            return Profile(sender_id="")
        with self._read() as db:
            return self._get(db, sender_id)

    def update(self, sender_id: str, **fields: Any) -> Profile:
        """Merge fields into the profile: sizes per kind and single values replace, brands and
        colours are added (most recent first). Invalid values are dropped with a log line."""
        if not valid_id(sender_id):
            logger.warning("profile not updated: bad sender id %s", short(sender_id))
            return Profile(sender_id="")
        with self._write() as db:
            current = self._get(db, sender_id)
            merged = _merge(current, fields)
            if merged == current:
                return current
            merged = merged.model_copy(update={"updated_at": now_utc()})
            data = merged.model_dump(mode="json", exclude={"sender_id", "updated_at"})
            db.execute(
                "INSERT INTO profiles (sender_id, data, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (sender_id) DO UPDATE SET data = excluded.data, "
                "updated_at = excluded.updated_at",
                (sender_id, json.dumps(data, ensure_ascii=False), to_db(merged.updated_at)))
        return merged

    def apply(self, sender_id: str, learned: ProfileUpdate) -> Profile:
        """Store what :func:`learn_from_text` found."""
        return self.update(sender_id, **learned.fields()) if not learned.is_empty \
            else self.get(sender_id)

    def delete(self, sender_id: str) -> int:
        if not valid_id(sender_id):
            return 0
        with self._write() as db:
            return db.execute("DELETE FROM profiles WHERE sender_id = ?", (sender_id,)).rowcount

    @staticmethod
    def _get(db, sender_id: str) -> Profile:  # noqa: ANN001 - sqlite3.Connection
        row = db.execute("SELECT data, updated_at FROM profiles WHERE sender_id = ?",
                         (sender_id,)).fetchone()
        if row is None:
            return Profile(sender_id=sender_id)
        return Profile(sender_id=sender_id, **json.loads(row["data"]),
                       updated_at=from_db(row["updated_at"]))


def _merge(profile: Profile, fields: dict[str, Any]) -> Profile:
    changes: dict[str, Any] = {}
    for name, value in fields.items():
        try:
            if name == "sizes":
                changes["sizes"] = {**profile.sizes, **_valid_sizes(value)}
            elif name == "gender":
                changes["gender"] = _valid_gender(value)
            elif name == "budget_max":
                changes["budget_max"] = _valid_budget(value)
            elif name in ("brands", "colours"):
                changes[name] = _favourites(value, getattr(profile, name))
            else:
                raise BadInput(f"unknown profile field {name!r}")
        except BadInput as error:
            logger.warning("profile field %s for %s not stored: %s", name,
                           short(profile.sender_id), error)
    return profile.model_copy(update=changes)


def _valid_sizes(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise BadInput("sizes must map a kind to a size")
    sizes = {}
    for kind, size in value.items():
        if kind not in SIZE_KINDS:
            raise BadInput(f"unknown size kind {str(kind)[:20]!r}")
        if not isinstance(size, str) or not re.fullmatch(r"[A-Za-z0-9.\- ]{1,10}", size):
            raise BadInput(f"not a size: {str(size)[:20]!r}")
        sizes[kind] = size.strip()
    return sizes


def _valid_gender(value: Any) -> str:
    for gender in GENDERS:
        if isinstance(value, str) and value.strip().lower() in (gender.lower(),
                                                                gender.lower().rstrip("n")):
            return gender
    targets = GENDER_WORDS.get(str(value).strip().lower()[:20], []) if value else []
    if targets and targets[0] in GENDERS:
        return targets[0]
    raise BadInput(f"not a gender the catalog uses: {str(value)[:20]!r}")


def _valid_budget(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 < value <= MAX_BUDGET:
        raise BadInput(f"not a budget: {str(value)[:20]!r}")
    return float(value)


def _favourites(value: Any, current: list[str]) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise BadInput("expected a list of names")
    new = [clean_text(v, what="name", max_chars=60) for v in value]
    merged: list[str] = []
    for name in [*reversed(new), *current]:
        if name.lower() not in {m.lower() for m in merged}:
            merged.append(name)
    return merged[:MAX_FAVOURITES]


# -- using the profile ---------------------------------------------------------------------------


def search_defaults(profile: Profile) -> dict[str, Any]:
    """Profile facts as ``SearchConstraints`` fields: ``genders`` and ``max_price``."""
    defaults: dict[str, Any] = {}
    if profile.gender in GENDERS:
        defaults["genders"] = list(GENDER_WORDS[profile.gender.lower()])
    if profile.budget_max:
        defaults["max_price"] = profile.budget_max
    return defaults


def with_profile_defaults(
    constraints: SearchConstraints, profile: Profile
) -> tuple[SearchConstraints, list[str]]:
    """Fill what the query left open from the profile; returns what was filled
    ("gender", "price") so the reply can say so. A query's own words always win."""
    defaults = search_defaults(profile)
    changes: dict[str, Any] = {}
    if "genders" in defaults and not constraints.genders:
        changes["genders"] = defaults["genders"]
    price_open = constraints.max_price is None and (
        constraints.min_price is None or constraints.min_price < defaults.get("max_price", 0))
    if "max_price" in defaults and price_open:
        changes["max_price"] = defaults["max_price"]
    filled = [{"genders": "gender", "max_price": "price"}[k] for k in changes]
    return replace(constraints, **changes), filled


def size_kind(product: Product) -> str | None:
    """Which profile size fits this product (None for one-size things like bags)."""
    if product.article_type in _FOOTWEAR_TYPES or product.master_category == "Footwear":
        return "shoe"
    if not product.sizes or product.sizes in (["Onesize"],):
        return None
    if product.article_type in _WAIST_TYPES and all(s.isdigit() for s in product.sizes):
        return "waist"
    return "clothing" if product.master_category in ("Apparel", "") else None


def preferred_size(profile: Profile, product: Product) -> str | None:
    """The shopper's size for this product when they told us one and the product has it."""
    kind = size_kind(product)
    wanted = profile.sizes.get(kind) if kind else None
    return normalise_size(wanted, product.sizes) if wanted else None
