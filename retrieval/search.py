"""Product search: parse the query, filter by hard constraints, rank by meaning and words.

Hybrid ranking fuses dense candidates (Chroma, MiniLM, metadata filters) with lexical ones
(bm25s over the same filter, as a weight mask) by reciprocal-rank fusion. When the
constraints match nothing, the softest one is relaxed (price, style, colour, brand, gender)
and the result says which, so the reply can be honest about it. What the shopper ruled out
("not white", "no leather") is never relaxed: no path returns an excluded product.

A shopper's photo (``PhotoQuery``) is another source of candidates: products whose catalog
photo looks most like it, under the same constraints and the same relaxation, plus one
softer constraint of its own, the article type the photo seems to show ("predicted_type").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from retrieval.catalog import Product
from retrieval.embeddings import encode
from retrieval.lexical import is_excluded
from retrieval.query import MAX_QUERY_CHARS, SearchConstraints, parse_query, ranking_text
from retrieval.store import CatalogVersion, ProductStore

if TYPE_CHECKING:  # the photo side loads on the first photo search, not with the text search
    from PIL import Image

    from retrieval.images.classifier import Classification, ImageClassifier
    from retrieval.images.index import CatalogPhotos

logger = logging.getLogger(__name__)

Mode = Literal["hybrid", "dense", "lexical"]

# Relaxed in this order when nothing matches; the article type and exclusions never are.
RELAX_ORDER = ("price", "usage", "colour", "brand", "gender")
# A photo's predicted article type is our guess, not the shopper's word: it goes after all of
# theirs (shoes at the wrong price beat sunglasses at the right one).
PREDICTED_TYPE = "predicted_type"
CHEAP_POOL = 5  # "cheaper" like a photo: the cheapest among this many times k most similar
CANDIDATES = 100
RRF_K = 60
# With no facet understood, weaker dense matches than this are noise (emoji, "banana").
MIN_FREE_TEXT_SCORE = 0.3


@dataclass
class SearchResult:
    """Ranked products plus what the search understood and what it had to relax."""

    products: list[Product]
    constraints: SearchConstraints
    relaxed: list[str] = field(default_factory=list)
    offset: int = 0
    scores: list[float] = field(default_factory=list)
    exact_matches: int | None = None
    classification: Classification | None = None  # what the photo shows (photo searches)
    version: int | None = None  # the catalog version every product here came from

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.products]


@dataclass(frozen=True, eq=False)
class PhotoQuery:
    """A shopper's photo as the search sees it: its encoder vector and what it shows.

    Without a classification the photo ranks by looks alone, with no article-type guess.
    """

    vector: np.ndarray  # [1280] unit length, the same encoder as the catalog photos
    classification: Classification | None = None

    @classmethod
    def from_image(cls, image: Image.Image, classifier: ImageClassifier) -> PhotoQuery:
        """Encode the picture once, with its mirror view (the classification averages both
        answers; the catalog's photos are indexed unmirrored, so the vector is the picture's
        own)."""
        encoded = classifier.encoder.encode_images([image], mirror=True)
        return cls(encoded.features[0], classifier.classify_encoded(encoded)[0])


def build_where(constraints: SearchConstraints) -> dict[str, Any] | None:
    """Chroma metadata filter for the hard constraints (None when there are none). Ruled-out
    words cannot be said in metadata: :func:`has_filters` and the callers see to them."""
    clauses: list[dict[str, Any]] = []

    def one_of(key: str, values: list[str]) -> None:
        if values:
            clauses.append({key: {"$in": values}} if len(values) > 1 else {key: values[0]})

    def none_of(key: str, values: list[str]) -> None:
        if values:
            clauses.append({key: {"$nin": values}} if len(values) > 1 else
                           {key: {"$ne": values[0]}})

    one_of("article_type", constraints.article_types)
    one_of("base_colour", constraints.colours)
    one_of("brand", constraints.brands)
    one_of("gender", constraints.genders)
    one_of("usage", constraints.usage_filter())
    none_of("article_type", constraints.excluded_article_types)
    none_of("base_colour", constraints.excluded_colours)
    none_of("brand", constraints.excluded_brands)
    if constraints.min_price is not None:
        clauses.append({"final_price": {"$gte": float(constraints.min_price)}})
    if constraints.max_price is not None:
        clauses.append({"final_price": {"$lte": float(constraints.max_price)}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def has_filters(constraints: SearchConstraints) -> bool:
    """Whether the constraints filter the catalog at all (exclusions included)."""
    return build_where(constraints) is not None or bool(constraints.excluded_words)


def relax(constraints: SearchConstraints, what: str) -> SearchConstraints | None:
    """A copy without one kind of constraint, or None when it had none of that kind; the
    exclusions always stay."""
    if what == "price" and (constraints.min_price is not None
                            or constraints.max_price is not None):
        return replace(constraints, min_price=None, max_price=None)
    if what == "usage" and constraints.usage_filter():
        return replace(constraints, usages=[])
    if what == "colour" and constraints.colours:
        return replace(constraints, colours=[])
    if what == "brand" and constraints.brands:
        return replace(constraints, brands=[])
    if what == "gender" and constraints.genders:
        return replace(constraints, genders=[])
    return None


def _price_distance(product: Product, constraints: SearchConstraints) -> float:
    price = product.final_price
    if constraints.max_price is not None and price > constraints.max_price:
        return price - constraints.max_price
    if constraints.min_price is not None and price < constraints.min_price:
        return constraints.min_price - price
    return 0.0


def without_excluded(
    fetch: Callable[[int], list[tuple[Product, float]]], n: int, constraints: SearchConstraints
) -> list[tuple[Product, float]]:
    """The best ``n`` hits of ``fetch(size)`` with nothing ruled out, for rankers that cannot
    filter words out themselves (Chroma): asks for more until ``n`` are left or the ranker
    has no more."""
    if not constraints.has_exclusions():
        return fetch(n)
    size = n
    while True:
        hits = fetch(size)
        kept = [hit for hit in hits if not is_excluded(hit[0], constraints)]
        if len(kept) >= n or len(hits) < size:
            return kept[:n]
        size *= 4


def reciprocal_rank_fusion(*rankings: list[str], k: int = RRF_K) -> list[tuple[str, float]]:
    """Fuse ranked id lists: each id scores sum(1 / (k + rank)) over the lists it is in."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, pid in enumerate(ranking, start=1):
            scores[pid] = scores.get(pid, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


class ProductSearch:
    """The one search entry point used by actions, the CLI and benchmarks."""

    def __init__(self, store: ProductStore) -> None:
        self.store = store

    def understand(
        self, text: str, entities: Iterable[dict[str, Any]] | None = None,
        catalog: CatalogVersion | None = None,
    ) -> SearchConstraints:
        return parse_query(text, (catalog or self.store.current()).vocab, entities)

    def search(
        self,
        text: str,
        *,
        k: int = 10,
        offset: int = 0,
        entities: Iterable[dict[str, Any]] | None = None,
        constraints: SearchConstraints | None = None,
        mode: Mode = "hybrid",
        photo: PhotoQuery | None = None,
    ) -> SearchResult:
        """Top ``k`` products for ``text`` after ``offset`` (for "show more").

        ``mode`` "dense" and "lexical" are the unfiltered single-ranker baselines the
        benchmark compares against; shoppers always get "hybrid". With ``photo``, products
        whose photos look most like it are ranked instead (``mode`` does not apply), under
        the constraints understood from ``text``: "like this but in black, under 2000".
        """
        k = max(1, min(int(k), 100))
        offset = max(0, int(offset))
        text = (text or "")[:MAX_QUERY_CHARS]
        cat = self.store.current()  # the one version this whole search reads
        if photo is not None:
            constraints = constraints or self.understand(text, entities, cat)
            result = self._photo(cat, photo, constraints, k, offset)
        elif mode == "dense":
            hits = cat.query(encode([text])[0], offset + k)
            result = self._result([p for p, _ in hits], SearchConstraints(text=text), [],
                                  offset, k)
        elif mode == "lexical":
            ranked = [pid for pid, _ in self._lexical_top(cat, text, offset + k, None)]
            result = self._result(cat.get(ranked), SearchConstraints(text=text), [], offset, k)
        else:
            constraints = constraints or self.understand(text, entities, cat)
            result = self._hybrid(cat, text, constraints, k, offset)
        result.version = cat.number
        return result

    # -- internals ----------------------------------------------------------------------------

    @staticmethod
    def _lexical_top(
        cat: CatalogVersion, text: str, n: int, mask: np.ndarray | None
    ) -> list[tuple[str, float]]:
        lexical = cat.lexical
        return lexical.top(text, n, mask) if lexical is not None else []

    @staticmethod
    def _dense_top(
        cat: CatalogVersion, query_vector: np.ndarray, n: int, constraints: SearchConstraints
    ) -> list[tuple[str, float]]:
        """Exact masked search in the local index; Chroma's filtered HNSW when it is absent."""
        lexical = cat.lexical
        if lexical is not None and lexical.vectors is not None:
            mask = lexical.facets.mask(constraints) if has_filters(constraints) else None
            return lexical.dense_top(query_vector, n, mask)
        where = build_where(constraints)
        hits = without_excluded(lambda size: cat.query(query_vector, size, where), n,
                                constraints)
        return [(p.id, score) for p, score in hits]

    @staticmethod
    def _matching(cat: CatalogVersion, constraints: SearchConstraints) -> int | None:
        """How many products satisfy the constraints (None when the facet table is missing)."""
        lexical = cat.lexical
        return int(lexical.facets.mask(constraints).sum()) if lexical is not None else None

    def _rank(
        self, cat: CatalogVersion, text: str, active: SearchConstraints, wanted: int,
        pool_size: int,
    ) -> list[tuple[Product, float]]:
        """Dense and lexical candidates under ``active`` fused by RRF, best first. Nothing
        ruled out comes back, even from an index too old to filter words itself."""
        query_text = ranking_text(text, active)
        filtered = has_filters(active)
        depth = max(CANDIDATES, wanted)
        dense_ranked = self._dense_top(cat, encode([query_text])[0], depth, active)
        if not filtered:
            dense_ranked = [hit for hit in dense_ranked if hit[1] >= MIN_FREE_TEXT_SCORE]
        lexical = cat.lexical
        mask = lexical.facets.mask(active) if lexical is not None and filtered else None
        lexical_ids = [] if not filtered and not dense_ranked else [
            pid for pid, _ in self._lexical_top(cat, query_text, depth, mask)
        ]
        fused = reciprocal_rank_fusion([pid for pid, _ in dense_ranked], lexical_ids)
        size = max(wanted, pool_size)
        words_unmasked = bool(active.excluded_words) and (
            lexical is None or not lexical.facets.has_words)
        pool = fused if words_unmasked else fused[:size]
        by_id = {p.id: p for p in cat.get([pid for pid, _ in pool])}
        hits = [(by_id[pid], score) for pid, score in pool
                if pid in by_id and not is_excluded(by_id[pid], active)]
        return hits[:size]

    @staticmethod
    def _cheap_cap(cat: CatalogVersion, active: SearchConstraints) -> SearchConstraints:
        """'cheap' means the cheapest quarter of what matches, unless a budget was given."""
        lexical = cat.lexical
        if lexical is None or active.max_price is not None:
            return active
        prices = lexical.facets.price[lexical.facets.mask(active)]
        if len(prices) < 8:
            return active
        return replace(active, max_price=float(np.percentile(prices, 25)))

    @staticmethod
    def _relax_until_matching(
        constraints: SearchConstraints,
        matching: Callable[[SearchConstraints], int | None],
    ) -> tuple[list[str], SearchConstraints]:
        """Drop the softest single constraint that makes something match; failing that,
        drop them cumulatively in RELAX_ORDER. ``matching`` counts the candidates."""
        if matching(constraints) != 0:
            return [], constraints
        for what in RELAX_ORDER:
            looser = relax(constraints, what)
            if looser is not None and matching(looser) != 0:
                return [what], looser
        relaxed: list[str] = []
        active = constraints
        for what in RELAX_ORDER:
            looser = relax(active, what)
            if looser is None:
                continue
            relaxed.append(what)
            active = looser
            if matching(active) != 0:
                break
        return relaxed, active

    def _hybrid(
        self, cat: CatalogVersion, text: str, constraints: SearchConstraints, k: int,
        offset: int,
    ) -> SearchResult:
        relaxed, active = self._relax_until_matching(
            constraints, lambda c: self._matching(cat, c))
        if constraints.prefer_cheap and not relaxed:
            active = self._cheap_cap(cat, active)
        wanted = offset + k
        resort = constraints.prefer_cheap or "price" in relaxed
        ranked = self._rank(cat, text, active, wanted, 60 if resort else wanted)
        if "price" in relaxed:
            # "the closest" to the asked price first, then by relevance.
            ranked.sort(key=lambda hit: (_price_distance(hit[0], constraints), -hit[1]))
        elif constraints.prefer_cheap:
            ranked.sort(key=lambda hit: hit[0].final_price)

        exact = 0 if relaxed else len(ranked)
        if not relaxed and exact < wanted and has_filters(active):
            # Too few exact matches: fill the page with the closest, and say so.
            for what in RELAX_ORDER:
                looser = relax(active, what)
                if looser is None:
                    continue
                seen = {p.id for p, _ in ranked}
                extra = [hit for hit in self._rank(cat, text, looser, wanted, wanted)
                         if hit[0].id not in seen]
                ranked += extra[:wanted - len(ranked)]
                relaxed.append(what)
                break
        if relaxed:
            logger.info("search %r relaxed %s", text[:80], relaxed)
        page = ranked[offset:wanted]
        return SearchResult(
            products=[p for p, _ in page], constraints=constraints, relaxed=relaxed,
            offset=offset, scores=[s for _, s in page], exact_matches=exact,
        )

    # -- photo search -------------------------------------------------------------------------

    def _photo(
        self, cat: CatalogVersion, photo: PhotoQuery, constraints: SearchConstraints, k: int,
        offset: int,
    ) -> SearchResult:
        """Products whose photos look like ``photo``, relaxed exactly as text is; the photo's
        predicted article type applies when the shopper named none, and goes last."""
        from retrieval.images.classifier import predicted_types
        from retrieval.images.index import catalog_photos

        # One snapshot for the whole search, so masks and vectors always line up.
        photos = catalog_photos(self.store) if cat.lexical is not None else None
        guessed: list[str] = []
        if photo.classification is not None and not constraints.article_types:
            guessed = [t for t in predicted_types(photo.classification) if t]

        def matching(types: list[str]) -> Callable[[SearchConstraints], int | None]:
            return lambda c: self._photo_matching(cat, photos, c, types)

        relaxed, active = self._relax_until_matching(constraints, matching(guessed))
        types = guessed
        if guessed and matching(guessed)(active) == 0:  # even without the shopper's terms
            relaxed, active = self._relax_until_matching(constraints, matching([]))
            relaxed, types = [*relaxed, PREDICTED_TYPE], []
        wanted = offset + k
        pool = max(CHEAP_POOL * k, wanted) if constraints.prefer_cheap else wanted
        ranked = self._photo_rank(cat, photos, photo, active, types, pool)
        if constraints.prefer_cheap:
            ranked.sort(key=lambda hit: hit[0].final_price)

        exact = 0 if relaxed else len(ranked)
        if not relaxed and exact < wanted and (types or has_filters(active)):
            # Too few exact matches: fill the page with the closest, and say so.
            for what in (*RELAX_ORDER, PREDICTED_TYPE):
                if what == PREDICTED_TYPE:
                    looser, looser_types = (active if types else None), []
                else:
                    looser, looser_types = relax(active, what), types
                if looser is None:
                    continue
                seen = {p.id for p, _ in ranked}
                extra = [hit for hit in self._photo_rank(cat, photos, photo, looser,
                                                         looser_types, wanted)
                         if hit[0].id not in seen]
                ranked += extra[:wanted - len(ranked)]
                relaxed.append(what)
                break
        if relaxed:
            logger.info("photo search relaxed %s", relaxed)
        page = ranked[offset:wanted]
        return SearchResult(
            products=[p for p, _ in page], constraints=constraints, relaxed=relaxed,
            offset=offset, scores=[s for _, s in page], exact_matches=exact,
            classification=photo.classification,
        )

    @staticmethod
    def _photo_mask(
        cat: CatalogVersion, photos: CatalogPhotos, constraints: SearchConstraints,
        types: list[str],
    ) -> np.ndarray:
        """For each indexed photo: does its product satisfy ``constraints`` and have one of
        ``types``? Photos of products no longer in the store never do."""
        lexical = cat.lexical
        assert lexical is not None  # photos are only loaded for a store with facets
        facets = lexical.facets
        keep = facets.mask(constraints)
        if types:
            keep = keep & facets.mask(SearchConstraints(article_types=types))
        return np.append(keep, False)[photos.rows_in(facets.ids)]  # row -1 reads the False

    def _photo_matching(
        self, cat: CatalogVersion, photos: CatalogPhotos | None, constraints: SearchConstraints,
        types: list[str],
    ) -> int | None:
        """How many photographed products satisfy the constraints (None without facets)."""
        if photos is None:
            return None
        return int(self._photo_mask(cat, photos, constraints, types).sum())

    def _photo_rank(
        self, cat: CatalogVersion, photos: CatalogPhotos | None, photo: PhotoQuery,
        active: SearchConstraints, types: list[str], n: int,
    ) -> list[tuple[Product, float]]:
        """The ``n`` most similar photographed products under ``active`` and ``types``, with
        cosine similarity: exact over the facet mask in memory, else (a store without facets)
        Chroma's filtered HNSW; nothing ruled out either way."""
        from retrieval.images.index import nearest_photos

        where = build_where(active)
        if types:
            clause = {"article_type": {"$in": types}} if len(types) > 1 else {
                "article_type": types[0]}
            where = clause if where is None else {"$and": [where, clause]}

        def fetch(size: int) -> list[tuple[Product, float]]:
            if photos is not None:
                hits = photos.top(photo.vector, size,
                                  self._photo_mask(cat, photos, active, types))
            else:
                hits = nearest_photos(self.store, photo.vector, size, where)
            by_id = {p.id: p for p in cat.get([pid for pid, _ in hits])}
            return [(by_id[pid], score) for pid, score in hits if pid in by_id]

        return without_excluded(fetch, n, active)

    @staticmethod
    def _result(
        products: list[Product], constraints: SearchConstraints, relaxed: list[str],
        offset: int, k: int,
    ) -> SearchResult:
        return SearchResult(products=products[offset:offset + k], constraints=constraints,
                            relaxed=relaxed, offset=offset)
