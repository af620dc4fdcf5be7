"""The in-memory search index: bm25s for words, a facet table and the embedding matrix.

Chroma stays the store of record; this index is rebuilt from its full contents at every
ingest and saved beside the Chroma files. Filtered dense search runs here as exact numpy
dot products over the facet mask, because Chroma's filtered queries cost 40-180 ms at 44k
products (broad filters are the slowest) while a masked matrix product costs a few ms.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

import bm25s
import numpy as np

from retrieval.catalog import Product
from retrieval.query import SearchConstraints
from retrieval.vocab import singular

logger = logging.getLogger(__name__)

LEXICAL_DIR = "bm25"
FACETS_FILE = "facets.npz"
VECTORS_FILE = "vectors.npy"
# Above this share of products, a masked search scores every row instead of gathering rows.
BROAD_MASK = 0.1


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-case words of 2+ characters, English stopwords removed, plurals folded."""
    tokens = bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)
    return [[singular(t) for t in doc] for doc in tokens]


CODED_COLUMNS = ("article_type", "colour", "gender", "brand", "usage")

# A description's styling tips ("pair it with leather shoes") speak of other products: their
# words do not describe this one.
_STYLING_TIP = re.compile(
    r"\b(pair|pairs|paired|team|teamed|wear (it|this|them) with|style (it|this|them) with|"
    r"complete the look|add on|goes well with|match (it|this|them) with)\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9]+")
_NON = re.compile(r"\bnon[\s-]+(?=[a-z])")
MAX_WORD = 30


def product_words(product: Product) -> set[str]:
    """The words describing a product (name, attribute values, description less its styling
    tips), plurals folded: what a ruled-out word ("no leather") is checked against. "Non-
    padded" is one word ("nonpadded"): "no padded bras" keeps it."""
    sentences = [s for s in _SENTENCE_END.split(product.description)
                 if not _STYLING_TIP.search(s)]
    text = " ".join([product.name, *product.attributes.values(), *sentences]).lower()
    return {singular(w) for w in _WORD.findall(_NON.sub("non", text)) if len(w) <= MAX_WORD}


def word_forms(word: str) -> set[str]:
    """The forms of a ruled-out word to look for: plurals folded ("prints" -> "print") and
    "-ed" adjectives also as their stem ("printed" -> "print", "striped" -> "stripe")."""
    word = word.lower()
    forms = {singular(word)}
    if word.endswith("ed") and len(word) > 5:
        forms |= {word[:-2], word[:-1]}
    return forms


def is_excluded(product: Product, constraints: SearchConstraints) -> bool:
    """Does the product have something the shopper ruled out? The facet mask's rule for one
    product, for candidates that did not come through the mask (Chroma, old indexes)."""
    if (product.article_type in constraints.excluded_article_types
            or product.base_colour in constraints.excluded_colours
            or product.brand in constraints.excluded_brands):
        return True
    if not constraints.excluded_words:
        return False
    words = product_words(product)
    return any(words & word_forms(w) for w in constraints.excluded_words)


def _word_columns(products: list[Product]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which products use each word, as (sorted words, starts, rows): the rows of word i
    are rows[starts[i]:starts[i + 1]]."""
    rows_of: dict[str, list[int]] = {}
    for row, product in enumerate(products):
        for word in product_words(product):
            rows_of.setdefault(word, []).append(row)
    words = sorted(rows_of)
    starts = np.zeros(len(words) + 1, dtype=np.int64)
    starts[1:] = np.cumsum([len(rows_of[w]) for w in words])
    rows = np.fromiter(itertools.chain.from_iterable(rows_of[w] for w in words),
                       dtype=np.int32, count=int(starts[-1]))
    return np.array(words, dtype=object), starts, rows


@dataclass
class FacetTable:
    """Per-product facets as numpy arrays, aligned with the lexical index's document order."""

    ids: np.ndarray
    article_type: np.ndarray
    colour: np.ndarray
    gender: np.ndarray
    brand: np.ndarray
    usage: np.ndarray
    price: np.ndarray
    # The word index of _word_columns, for ruled-out words. Empty (no starts at all) in a
    # table saved before it existed: such a table cannot rule words out.
    word_list: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))
    word_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    word_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))

    @classmethod
    def from_products(cls, products: list[Product]) -> FacetTable:
        def column(values: list[str]) -> np.ndarray:
            return np.array(values, dtype=object)

        word_list, word_starts, word_rows = _word_columns(products)
        return cls(
            ids=column([p.id for p in products]),
            article_type=column([p.article_type for p in products]),
            colour=column([p.base_colour for p in products]),
            gender=column([p.gender for p in products]),
            brand=column([p.brand for p in products]),
            usage=column([p.usage for p in products]),
            price=np.array([p.final_price for p in products], dtype=np.float64),
            word_list=word_list, word_starts=word_starts, word_rows=word_rows,
        )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def has_words(self) -> bool:
        """Whether the table can rule out words (one saved before the word index cannot)."""
        return len(self.word_starts) > 0

    def mask(self, constraints: SearchConstraints) -> np.ndarray:
        """True for products that satisfy every hard constraint and have nothing ruled out
        (memoised: one search asks for the same constraints several times while relaxing
        and ranking)."""
        key = (tuple(constraints.article_types), tuple(constraints.colours),
               tuple(constraints.genders), tuple(constraints.brands),
               tuple(constraints.usage_filter()),
               constraints.min_price, constraints.max_price,
               tuple(constraints.excluded_article_types), tuple(constraints.excluded_colours),
               tuple(constraints.excluded_brands), tuple(constraints.excluded_words))
        cache = self.__dict__.setdefault("_masks", {})
        if key not in cache:
            if len(cache) > 64:
                cache.clear()
            cache[key] = self._compute_mask(constraints)
        return cache[key]

    def _compute_mask(self, constraints: SearchConstraints) -> np.ndarray:
        keep = np.ones(len(self), dtype=bool)
        wanted = (constraints.article_types, constraints.colours, constraints.genders,
                  constraints.brands, constraints.usage_filter())
        for values, name in zip(wanted, CODED_COLUMNS, strict=True):
            if values:
                keep &= self._one_of(name, values)
        ruled_out = ((constraints.excluded_article_types, "article_type"),
                     (constraints.excluded_colours, "colour"),
                     (constraints.excluded_brands, "brand"))
        for values, name in ruled_out:
            if values:
                keep &= ~self._one_of(name, values)
        if constraints.excluded_words:
            keep &= ~self._using(constraints.excluded_words)
        if constraints.min_price is not None:
            keep &= self.price >= constraints.min_price
        if constraints.max_price is not None:
            keep &= self.price <= constraints.max_price
        return keep

    def _one_of(self, name: str, values: list[str]) -> np.ndarray:
        """True for products whose ``name`` column holds one of ``values``."""
        index, codes = self._coded(name)
        allowed = np.zeros(len(index), dtype=bool)
        allowed[[index[v] for v in values if v in index]] = True
        return allowed[codes]

    def _using(self, words: Iterable[str]) -> np.ndarray:
        """True for products described with any of ``words`` (in any of its forms)."""
        hit = np.zeros(len(self), dtype=bool)
        if not self.has_words:
            logger.warning("the facet table has no word index (re-ingest the catalog); "
                           "ruled-out words are checked on the results only")
            return hit
        cache = self.__dict__.setdefault("_word_index", {})
        if not cache:
            cache.update((str(w), i) for i, w in enumerate(self.word_list))
        for word in words:
            for form in word_forms(word):
                i = cache.get(form)
                if i is not None:
                    hit[self.word_rows[self.word_starts[i]:self.word_starts[i + 1]]] = True
        return hit

    def _coded(self, name: str) -> tuple[dict[str, int], np.ndarray]:
        """A text column as integer codes, so a filter is one table lookup per product
        instead of string comparisons (about 10x faster at 1M products)."""
        cache = self.__dict__.setdefault("_coded_columns", {})
        if name not in cache:
            categories, codes = np.unique(getattr(self, name).astype(str), return_inverse=True)
            index = {str(category): code for code, category in enumerate(categories)}
            cache[name] = (index, codes.astype(np.int32).reshape(-1))
        return cache[name]

    def save(self, path: Path) -> None:
        columns = {f.name: getattr(self, f.name) for f in fields(self)}
        arrays = {k: np.asarray(v, dtype=str if v.dtype == object else v.dtype)
                  for k, v in columns.items()}
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> FacetTable:
        with np.load(path, allow_pickle=False) as data:
            return cls(**{k: (data[k].astype(object) if data[k].dtype.kind == "U" else data[k])
                          for k in data.files})


class LexicalIndex:
    """BM25 over each product's full search text, with facet filtering by weight mask."""

    def __init__(
        self, retriever: bm25s.BM25, facets: FacetTable, vectors: np.ndarray | None = None
    ) -> None:
        self.retriever = retriever
        self.facets = facets
        self.vectors = vectors
        for name in CODED_COLUMNS:  # pay the one-off coding at load, not in a shopper's query
            facets._coded(name)

    @classmethod
    def build(cls, products: list[Product], vectors: np.ndarray | None = None) -> LexicalIndex:
        retriever = bm25s.BM25()
        retriever.index(tokenize([p.search_text() for p in products]), show_progress=False)
        return cls(retriever, FacetTable.from_products(products), vectors)

    def save(self, store_dir: Path) -> None:
        target = store_dir / LEXICAL_DIR
        target.mkdir(parents=True, exist_ok=True)
        self.retriever.save(str(target), show_progress=False)
        self.facets.save(store_dir / FACETS_FILE)
        if self.vectors is not None:
            np.save(store_dir / VECTORS_FILE, self.vectors.astype(np.float32))
        (target / "built.json").write_text(json.dumps({"documents": len(self.facets)}))

    @classmethod
    def load(cls, store_dir: Path) -> LexicalIndex | None:
        target = store_dir / LEXICAL_DIR
        if not (target / "built.json").is_file() or not (store_dir / FACETS_FILE).is_file():
            return None
        retriever = bm25s.BM25.load(str(target), show_progress=False)
        facets = FacetTable.load(store_dir / FACETS_FILE)
        vectors_path = store_dir / VECTORS_FILE
        vectors = np.load(vectors_path) if vectors_path.is_file() else None
        if vectors is not None and len(vectors) != len(facets):
            logger.warning("vectors.npy does not match the facet table; ignoring it")
            vectors = None
        return cls(retriever, facets, vectors)

    def top(self, text: str, k: int, mask: np.ndarray | None = None) -> list[tuple[str, float]]:
        """Best ``k`` product ids for ``text`` among ``mask`` (all when None), with scores."""
        tokens = tokenize([text])[0]
        known = [t for t in tokens if t in self.retriever.vocab_dict]
        if not known or len(self.facets) == 0:
            return []
        scores = self.retriever.get_scores(known)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        k = min(k, len(scores))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best])]
        return [(str(self.facets.ids[i]), float(scores[i])) for i in best if scores[i] > 0]

    def dense_top(
        self, query_vector: np.ndarray, k: int, mask: np.ndarray | None = None
    ) -> list[tuple[str, float]]:
        """Exact cosine top ``k`` among ``mask`` (vectors are unit length)."""
        if self.vectors is None or len(self.facets) == 0:
            return []
        return [(str(self.facets.ids[row]), score)
                for row, score in cosine_top(self.vectors, query_vector, k, mask)]


def cosine_top(vectors: np.ndarray, query: np.ndarray, k: int,
               mask: np.ndarray | None = None) -> list[tuple[int, float]]:
    """(row, score) of the ``k`` rows of unit ``vectors`` closest to ``query`` among ``mask``
    (all when None), best first: the one exact scan both text and photo search use."""
    if len(vectors) == 0 or k <= 0:
        return []
    query = np.asarray(query, dtype=np.float32).ravel()
    if mask is None:  # no copy of the whole matrix for unfiltered queries
        rows, scores = None, vectors @ query
    elif mask.mean() > BROAD_MASK:  # scoring all beats copying most of the matrix
        rows, scores = None, np.where(mask, vectors @ query, -np.inf)
    else:
        rows = np.flatnonzero(mask)
        if len(rows) == 0:
            return []
        scores = vectors[rows] @ query
    k = min(k, len(scores))
    best = np.argpartition(-scores, k - 1)[:k]
    best = best[np.argsort(-scores[best], kind="stable")]
    positions = best if rows is None else rows[best]
    return [(int(p), float(scores[b]))
            for p, b in zip(positions, best, strict=True) if np.isfinite(scores[b])]
