"""Turn what a shopper typed into structured constraints plus the words left to rank by.

The catalog vocabulary is the source of truth; NLU entities are only a hint (a brand the
parser would not dare to guess from a common word, for example). What the shopper rules out
("but not white", "no leather", "anything but Nike") becomes an exclusion, never a wish.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from retrieval.vocab import CatalogVocabulary, normalise, singular

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
    "heavy", "warm", "cool", "long", "short", "weather", "whether", "sweat", "plain",
    "printed", "solid", "cotton", "silk",
    "leather", "woolen", "woollen", "wool", "linen", "diwali", "gift", "gifts", "present",
    # everyday words a typo of a short facet word is not ("what" is no "hat")
    "what", "which", "where", "when", "there", "these", "those", "that", "this", "them",
    "they", "then", "also", "just", "else", "after", "again", "does", "from", "your", "here",
    "hello", "thanks", "thank", "instead", "other", "others", "same", "okay", "sorry",
    "please", "store", "stores", "shop", "shops", "online", "open", "closed", "hours", "time",
    "timing", "timings", "today", "tomorrow", "phone", "number", "email", "call", "help",
}
_FILLER = re.compile(
    r"\b(show|me|find|get|i|im|i'm|want|need|looking|look|for|some|any|a|an|the|please|pls|"
    r"do|you|have|got|can|could|would|like|to|buy|see|something|stuff|things|options|in|with|"
    r"of|and|or|under|below|above|over|between|rs|inr|price|priced|cost|costing|within|less|"
    r"more|than|upto|up|around|about|cheap|cheaper|budget|affordable|one|ones|my|wear|clothes|"
    r"clothing|outfits?|attire|brands?)\b"
)

_AMOUNT = r"(?:rs\.?|inr|₹)?\s*(-?\d[\d,]*(?:\.\d+)?)\s*(k|thousand)?\s*(?:rs\.?|inr|rupees|/-)?"
# A negation before a price word turns it round: "not under 500" is a floor, "nothing above
# 2000" and "don't want to pay more than 2000" are ceilings.
_NOT = (r"(?:\bnot|\bno|\bnothing|n't)\s+"
        r"(?:(?:want|wanna|like|to|pay|spend|go|going|willing|be)\s+){0,4}")
_PRICE_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("min", re.compile(
        rf"{_NOT}(?:under|below|less than|lower than|cheaper than)\s*{_AMOUNT}")),
    ("range", re.compile(rf"\b(?:between|from)\s+{_AMOUNT}\s*(?:and|to|-)\s*{_AMOUNT}")),
    ("range", re.compile(rf"(?<![\w-]){_AMOUNT}\s*(?:-|to)\s*{_AMOUNT}")),
    ("max", re.compile(
        rf"(?:{_NOT}(?:more than|over|above|higher than|pricier than)|\b(?:under|below|"
        rf"less than|lesser than|cheaper than|upto|up to|within|max|maximum|at most|"
        rf"budget of|budget is|budget))\s*{_AMOUNT}")),
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


# The positive facets that can also be ruled out, with the field holding what was ruled out.
_EXCLUDED_FIELD = {
    "article_types": "excluded_article_types", "colours": "excluded_colours",
    "brands": "excluded_brands", "words": "excluded_words",
}
_MENTION_KEY = {"article_types": "article_type", "colours": "colour", "brands": "brand"}


@dataclass
class SearchConstraints:
    """Hard filters (article type, colour, gender, brand, price), hard exclusions ("not
    white", "no leather": never relaxed) and soft hints for ranking."""

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
    excluded_article_types: list[str] = field(default_factory=list)
    excluded_colours: list[str] = field(default_factory=list)
    excluded_brands: list[str] = field(default_factory=list)
    # Free words ruled out in a product's name, attributes and description ("leather").
    excluded_words: list[str] = field(default_factory=list)
    # What the shopper called each exclusion -> the values it ruled out, for the reply.
    excluded_mentions: dict[str, list[str]] = field(default_factory=dict)

    def usage_filter(self) -> list[str]:
        """The style (formal, ethnic, sports...) filters only when no article type was named:
        "ethnic wear for men" means ethnic products, while in "party dresses" it only ranks."""
        return [] if self.article_types else self.usages

    def has_exclusions(self) -> bool:
        return bool(self.excluded_article_types or self.excluded_colours
                    or self.excluded_brands or self.excluded_words)

    def is_empty(self) -> bool:
        return not (self.article_types or self.colours or self.genders or self.brands
                    or self.usages or self.has_exclusions()
                    or self.min_price is not None or self.max_price is not None or self.text)

    def exclude(self, facet: str, values: list[str], phrase: str) -> None:
        """Rule out ``values`` of ``facet`` ("article_types", "colours", "brands" or
        "words"), which the shopper called ``phrase``. A ruled-out value leaves the positive
        list: "red dresses" then "not red" means no colour wanted, red refused."""
        target = _EXCLUDED_FIELD[facet]
        setattr(self, target, _merge(getattr(self, target), values))
        if facet in _MENTION_KEY:
            kept = [v for v in getattr(self, facet) if v not in values]
            setattr(self, facet, kept)
            if not kept:
                self.mentions = {k: v for k, v in self.mentions.items()
                                 if k != _MENTION_KEY[facet]}
        self.excluded_mentions = {
            **self.excluded_mentions, phrase: _merge(self.excluded_mentions.get(phrase, []),
                                                     values)}

    def allow(self, facet: str, values: list[str]) -> None:
        """Take ``values`` back out of the exclusions: asked for again ("in black after
        all"), they are wanted, not refused."""
        target = _EXCLUDED_FIELD[facet]
        setattr(self, target, [v for v in getattr(self, target) if v not in values])
        ruled_out = {*self.excluded_article_types, *self.excluded_colours,
                     *self.excluded_brands, *self.excluded_words}
        self.excluded_mentions = {phrase: vs for phrase, vs in self.excluded_mentions.items()
                                  if ruled_out & set(vs)}

    def forget(self, facet: str) -> None:
        """Neither want nor rule out any value of ``facet`` ("any colour is fine")."""
        self.allow(facet, getattr(self, _EXCLUDED_FIELD[facet]))
        if facet in _MENTION_KEY:
            setattr(self, facet, [])
            self.mentions = {k: v for k, v in self.mentions.items()
                             if k != _MENTION_KEY[facet]}

    def exclusions(self) -> list[tuple[str, list[str], str]]:
        """What is ruled out as (facet, values, phrase), in the order said: what
        :meth:`exclude` takes, so another search can rule out the same."""
        found: list[tuple[str, list[str], str]] = []
        for phrase, values in self.excluded_mentions.items():
            for facet, target in _EXCLUDED_FIELD.items():
                kept = [v for v in values if v in getattr(self, target)]
                if kept:
                    found.append((facet, kept, phrase))
                    break
        return found

    def excluded_phrases(self) -> list[str]:
        """What was ruled out, in the shopper's words where known ("white", "Nike")."""
        if self.excluded_mentions:
            return list(self.excluded_mentions)
        return [*(t.lower() for t in self.excluded_article_types),
                *(c.lower() for c in self.excluded_colours), *self.excluded_brands,
                *self.excluded_words]

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], {}, "", False)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SearchConstraints:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in (data or {}).items() if k in known})

    def describe(self) -> str:
        """Short human phrase for replies: 'red party dresses for women under ₹2,000',
        'formal shirts for men, not white'."""
        words: list[str] = []
        if self.colours:
            words.append(self.mentions.get("colour") or self.colours[0].lower())
        if self.brands:
            words.append(brand_name(self.brands))
        if self.usages:
            words.append(self.usages[0].lower())
        words.append(self.mentions.get("article_type") or "products")
        if self.genders:
            words.append("for " + (self.mentions.get("gender") or self.genders[0].lower()))
        if self.min_price is not None and self.max_price is not None:
            words.append(f"between ₹{self.min_price:,.0f} and ₹{self.max_price:,.0f}")
        elif self.max_price is not None:
            words.append(f"under ₹{self.max_price:,.0f}")
        elif self.min_price is not None:
            words.append(f"above ₹{self.min_price:,.0f}")
        phrase = " ".join(words)
        excluded = self.excluded_phrases()
        return f"{phrase}, not {' or '.join(excluded)}" if excluded else phrase


def brand_name(brands: list[str]) -> str:
    """How to name a brand the catalog spells several ways ("ADIDAS", "Adidas")."""
    return next((b for b in brands if not b.isupper()), brands[0])


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


def _lookup(words: list[str], table: dict[str, list[str]]) -> str | None:
    """The table's phrase for these words ("t shirts", or joined: "tshirts"), if any."""
    phrase = " ".join(words)
    if phrase not in table and len(words) == 2 and "".join(words) in table:
        phrase = "".join(words)
    return phrase if phrase in table else None


def _match_phrases(
    tokens: list[str], table: dict[str, list[str]], taken: list[bool]
) -> list[tuple[str, list[str]]]:
    """Longest-first, non-overlapping phrase matches of ``tokens`` against ``table``."""
    matches: list[tuple[str, list[str]]] = []
    for size in range(MAX_NGRAM, 0, -1):
        for start in range(0, len(tokens) - size + 1):
            if any(taken[start:start + size]):
                continue
            phrase = _lookup(tokens[start:start + size], table)
            if phrase is not None:
                matches.append((phrase, table[phrase]))
                for i in range(start, start + size):
                    taken[i] = True
    return matches


def _phrase_at(
    tokens: list[str], start: int, table: dict[str, list[str]], taken: list[bool]
) -> tuple[str, int] | None:
    """The longest phrase of ``table`` starting exactly at ``start``, with its length."""
    for size in range(min(MAX_NGRAM, len(tokens) - start), 0, -1):
        if any(taken[start:start + size]):
            continue
        phrase = _lookup(tokens[start:start + size], table)
        if phrase is not None:
            return phrase, size
    return None


def _entity_values(entities: Iterable[dict[str, Any]] | None, name: str) -> set[str]:
    return {
        normalise(str(e.get("value", ""))) for e in entities or () if e.get("entity") == name
    }


def _merge(values: list[str], extra: list[str]) -> list[str]:
    return values + [v for v in extra if v not in values]


# (constraint field, mentions key, phrase table) for the facets matched by phrase.
FacetTables = list[tuple[str, str, dict[str, list[str]]]]


def _fuzzy_match(token: str, tables: FacetTables) -> tuple[str, str, list[str], str] | None:
    """(field, mention key, values, catalog word) of a close single-word match, for typos
    ("snekers", "tshrit", "adiddas")."""
    if len(token) < 4 or _FILLER.fullmatch(token) or token.isdigit() or token in _PROTECTED_WORDS:
        return None
    for attribute, mention, table in tables:
        words = [w for w in table if " " not in w and abs(len(w) - len(token)) <= 2]
        close = difflib.get_close_matches(token, words, n=1, cutoff=FUZZY_CUTOFF)
        if close:
            return attribute, mention, list(table[close[0]]), close[0]
    return None


def _fuzzy_facets(
    tokens: list[str], taken: list[bool], tables: FacetTables, found: SearchConstraints
) -> None:
    """Second pass for typos: a close word fills a kind of facet nothing filled yet."""
    for i, token in enumerate(tokens):
        if taken[i]:
            continue
        match = _fuzzy_match(token, [t for t in tables if not getattr(found, t[0])])
        if match is not None:
            attribute, mention, values, word = match
            setattr(found, attribute, values)
            found.mentions.setdefault(mention, word)
            taken[i] = True


def _brand_table(
    vocab: CatalogVocabulary, tokens: list[str], hints: set[str], colours: dict[str, list[str]]
) -> dict[str, list[str]]:
    """The brand phrases this message may mean. A single word that is also a colour ("in
    red") is the colour whatever the NLU tagged, unless called a brand ("brand red"); a
    several-word name ("red tape") is always the brand; other everyday words ("only") are a
    brand when the NLU said so."""
    named: set[str] = set()
    for i, token in enumerate(tokens):
        if token in ("brand", "brands"):
            for size in range(1, MAX_NGRAM + 1):
                named.add(" ".join(tokens[i + 1:i + 1 + size]))
                named.add(" ".join(tokens[max(0, i - size):i]))
    # A one-word brand phrase that is a word of a product type ("sports", a phrase of the
    # brand "F Sports", in "sports shoes") is that product type, as a colour word is a colour.
    product_words = vocab.product_type_words()
    table: dict[str, list[str]] = {}
    for phrase, brands in vocab.brand_phrases().items():
        colour_word = " " not in phrase and phrase in colours
        ambiguous = (phrase in AMBIGUOUS_BRAND_WORDS or phrase in product_words) \
            and phrase not in hints
        if phrase in named or not (colour_word or ambiguous):
            table[phrase] = brands
    return table


# Cues that rule out what follows: "not white", "anything but black", "no leather".
# Longer cues first; a "but" just before a cue belongs to it ("but not white").
_NEGATION_CUES: tuple[tuple[str, ...], ...] = (
    ("anything", "but"), ("everything", "but"), ("colour", "but"), ("color", "but"),
    ("brand", "but"), ("other", "than"), ("apart", "from"),
    ("except", "for"), ("except",), ("excluding",), ("not",), ("no",), ("non",),
    ("without",), ("avoid",), ("nothing",), ("don't",), ("dont",), ("aren't",), ("arent",),
    ("isn't",), ("isnt",), ("never",), ("hate",), ("dislike",),
)
# Words that may stand between a cue and what it rules out: "not in black", "don't want
# anything in white", "nothing from Nike".
_NEGATION_GAP = {
    "a", "an", "any", "the", "in", "from", "by", "of", "with", "made", "want", "like", "need",
    "anything", "something", "brand", "brands", "colour", "color", "colours", "colors",
    "coloured", "colored",
}
_LIST_JOINERS = {"or", "nor", "and"}
# Never a free word to rule out, whatever a catalog's attributes hold ("no thanks").
_NOT_A_THING = {
    "all", "only", "just", "that", "this", "these", "those", "it", "them", "yet", "now",
    "really", "sure", "thanks", "thank", "way", "much", "too", "very", "what", "which", "so",
    "problem", "worries", "idea", "interested", "bad", "good", "right", "exactly", "quite",
    "again", "anymore", "today", "here", "there", "yes", "else", "above", "below", "other",
    "same", "more", "less", "big", "small",
}
# "no, the black ones": a "no" that answers the bot rules nothing out.
_ANSWER_NO = re.compile(r"\bno\s*[,.!?;:]+")

RuledOut = tuple[str, list[str], str]  # (field or "words", values, the shopper's phrase)


def _cue_length(tokens: list[str], start: int) -> int:
    for cue in _NEGATION_CUES:
        if tuple(tokens[start:start + len(cue)]) == cue:
            return len(cue)
    return 0


def _ruled_out_at(
    tokens: list[str], start: int, taken: list[bool], tables: FacetTables,
    words: dict[str, int],
) -> tuple[RuledOut, int] | None:
    """What a negation rules out starting exactly at ``start``, and how many tokens it
    spans: a brand, product type or colour phrase, else a word of the catalog's attributes
    ("leather"), else a typo of a facet."""
    for attribute, _mention, table in tables:
        hit = _phrase_at(tokens, start, table, taken)
        if hit is not None:
            phrase, size = hit
            values = table[phrase]
            return (attribute, values,
                    brand_name(values) if attribute == "brands" else phrase), size
    token = tokens[start]
    if taken[start] or token in _NOT_A_THING or _FILLER.fullmatch(token):
        return None
    if token in words or singular(token) in words:
        return ("words", [token], token), 1
    fuzzy = _fuzzy_match(token, tables)
    if fuzzy is not None:
        attribute, _mention, values, word = fuzzy
        return (attribute, values, brand_name(values) if attribute == "brands" else word), 1
    return None


def _negations(
    tokens: list[str], taken: list[bool], tables: FacetTables, words: dict[str, int]
) -> list[RuledOut]:
    """Everything the message rules out ("not white or black", "no red, no pink"); marks
    the negations' tokens taken, so no later pass reads them as wanted."""
    ruled_out: list[RuledOut] = []
    i = 0
    while i < len(tokens):
        cue = _cue_length(tokens, i)
        if cue and tokens[i] == "non" and " ".join(tokens[i:i + 2]) in words:
            cue = 0  # "non padded": what the catalog calls a kind of product
        end = i + cue
        while cue and end < len(tokens) and tokens[end] in _NEGATION_GAP:
            end += 1
        found: list[RuledOut] = []
        while cue and end < len(tokens):
            item = _ruled_out_at(tokens, end, taken, tables, words)
            if item is None:
                break
            found.append(item[0])
            end += item[1]
            joined = end + 1 < len(tokens) and tokens[end] in _LIST_JOINERS
            if not (joined and _ruled_out_at(tokens, end + 1, taken, tables, words)):
                break
            end += 1
        if not found:
            i += 1
            continue
        ruled_out += found
        first = i - 1 if i and tokens[i - 1] == "but" and not taken[i - 1] else i
        for k in range(first, end):
            taken[k] = True
        i = end
    return ruled_out


def parse_query(
    text: str,
    vocab: CatalogVocabulary,
    entities: Iterable[dict[str, Any]] | None = None,
) -> SearchConstraints:
    """Extract constraints from free text; unknown words stay in ``text`` for ranking.
    What the shopper rules out ("but not white") becomes an exclusion, never a wish."""
    entities = list(entities or [])
    found = SearchConstraints()
    lowered = (text or "")[:MAX_QUERY_CHARS].lower().replace("\u2019", "'")
    lowered = _parse_price(lowered, found)
    if _CHEAP_WORDS.search(lowered):
        found.prefer_cheap = True
    lowered = _ANSWER_NO.sub(" ", lowered)
    tokens = [t.removesuffix("'s")
              for t in re.findall(r"[a-z0-9]+(?:'[a-z]+)?", normalise(lowered))]
    taken = [False] * len(tokens)

    colours = vocab.colour_phrases()
    brands = _brand_table(vocab, tokens, _entity_values(entities, "brand"), colours)
    tables: FacetTables = [("brands", "brand", brands),
                           ("article_types", "article_type", vocab.article_phrases()),
                           ("colours", "colour", colours)]
    ruled_out = _negations(tokens, taken, tables, vocab.attribute_words)
    # Brands first: "red tape shoes" is a brand, not a colour.
    for attribute, mention, table in tables:
        for phrase, values in _match_phrases(tokens, table, taken):
            setattr(found, attribute, _merge(getattr(found, attribute), values))
            found.mentions.setdefault(mention, phrase)
    for phrase, genders in _match_phrases(tokens, vocab.gender_phrases(), taken):
        found.genders = _merge(found.genders, genders)
        found.mentions.setdefault("gender", phrase)
    for _phrase, usages in _match_phrases(tokens, vocab.usage_phrases(), taken):
        found.usages = _merge(found.usages, usages)

    _fuzzy_facets(tokens, taken, [tables[1], tables[0], tables[2]], found)
    for facet, values, phrase in ruled_out:
        found.exclude(facet, values, phrase)
    leftover = " ".join(t for t, used in zip(tokens, taken, strict=True) if not used)
    found.text = " ".join(_FILLER.sub(" ", leftover).split())
    return found


def ranking_text(raw_text: str, constraints: SearchConstraints) -> str:
    """The text a dense or lexical ranker should see: the query minus chit-chat (and minus
    what it rules out: "anything but black" must not rank black first)."""
    words = [constraints.mentions.get(k, "") for k in ("colour", "brand", "article_type")]
    words += [u.lower() for u in constraints.usages]
    words.append(constraints.text)
    cleaned = " ".join(w for w in words if w).strip()
    if cleaned or constraints.has_exclusions():
        return cleaned
    return " ".join((raw_text or "")[:MAX_QUERY_CHARS].split())
