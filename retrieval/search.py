"""Product search: parse the query, filter by hard constraints, rank by meaning.

When the constraints match nothing, the softest one is relaxed (price, then colour, brand,
gender) and the result says which, so the reply can be honest about it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from retrieval.catalog import Product
from retrieval.embeddings import encode
from retrieval.query import SearchConstraints, parse_query, ranking_text
from retrieval.store import ProductStore

logger = logging.getLogger(__name__)

# Relaxed in this order when nothing matches; the article type is never dropped.
RELAX_ORDER = ("price", "colour", "brand", "gender")
CHEAP_POOL = 60
# With no facet understood, weaker matches than this are noise (emoji, gibberish, "banana").
MIN_FREE_TEXT_SCORE = 0.3


@dataclass
class SearchResult:
    """Ranked products plus what the search understood and what it had to relax."""

    products: list[Product]
    constraints: SearchConstraints
    relaxed: list[str] = field(default_factory=list)
    offset: int = 0
    scores: list[float] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.products]


def build_where(constraints: SearchConstraints) -> dict[str, Any] | None:
    """Chroma metadata filter for the hard constraints (None when there are none)."""
    clauses: list[dict[str, Any]] = []

    def one_of(key: str, values: list[str]) -> None:
        if values:
            clauses.append({key: {"$in": values}} if len(values) > 1 else {key: values[0]})

    one_of("article_type", constraints.article_types)
    one_of("base_colour", constraints.colours)
    one_of("brand", constraints.brands)
    one_of("gender", constraints.genders)
    if constraints.min_price is not None:
        clauses.append({"final_price": {"$gte": float(constraints.min_price)}})
    if constraints.max_price is not None:
        clauses.append({"final_price": {"$lte": float(constraints.max_price)}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def relax(constraints: SearchConstraints, what: str) -> SearchConstraints | None:
    """A copy without one kind of constraint, or None when it had none of that kind."""
    if what == "price" and (constraints.min_price is not None
                            or constraints.max_price is not None):
        return replace(constraints, min_price=None, max_price=None)
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


class ProductSearch:
    """The one search entry point used by actions, the CLI and benchmarks."""

    def __init__(self, store: ProductStore) -> None:
        self.store = store

    def understand(
        self, text: str, entities: Iterable[dict[str, Any]] | None = None
    ) -> SearchConstraints:
        return parse_query(text, self.store.vocab, entities)

    def search(
        self,
        text: str,
        *,
        k: int = 10,
        offset: int = 0,
        entities: Iterable[dict[str, Any]] | None = None,
        constraints: SearchConstraints | None = None,
    ) -> SearchResult:
        """Top ``k`` products for ``text`` after ``offset`` (for "show more")."""
        k = max(1, min(int(k), 100))
        offset = max(0, int(offset))
        constraints = constraints or self.understand(text, entities)
        query_vector = encode([ranking_text(text, constraints)])[0]
        wanted = offset + k
        pool = max(wanted, CHEAP_POOL) if constraints.prefer_cheap else wanted

        relaxed: list[str] = []
        active = constraints
        where = build_where(active)
        hits = self.store.query(query_vector, pool, where)
        if where is None:
            hits = [hit for hit in hits if hit[1] >= MIN_FREE_TEXT_SCORE]
        for what in RELAX_ORDER:
            if hits:
                break
            looser = relax(active, what)
            if looser is None:
                continue
            relaxed.append(what)
            active = looser
            extra = max(pool, CHEAP_POOL) if what == "price" else pool
            hits = self.store.query(query_vector, extra, build_where(active))
            if what == "price" and hits:
                # "the closest" to the asked price first, then by relevance.
                hits.sort(key=lambda hit: (_price_distance(hit[0], constraints), -hit[1]))
        if constraints.prefer_cheap and not relaxed:
            hits.sort(key=lambda hit: hit[0].final_price)
        page = hits[offset:wanted]
        if relaxed:
            logger.info("search %r relaxed %s", text[:80], relaxed)
        return SearchResult(
            products=[p for p, _ in page],
            constraints=constraints,
            relaxed=relaxed,
            offset=offset,
            scores=[s for _, s in page],
        )
