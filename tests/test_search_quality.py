"""Unit tests of the search-quality benchmark's relevance grading and NDCG (no real data)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load_module():
    spec = importlib.util.spec_from_file_location("bench_search_quality",
                                                  BENCH / "search_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sq = _load_module()


def product(**overrides):
    base = {
        "id": 1, "name": "Catwalk Women Black Heels", "brand": "Catwalk", "price": 1999,
        "discounted_price": 0, "gender": "Women", "master_category": "Footwear",
        "sub_category": "Shoes", "article_type": "Heels", "base_colour": "Black",
        "season": "Summer", "usage": "Casual",
    }
    base.update(overrides)
    return base


HEELS_SPEC = {
    "query": "black heels under 1500 for a party",
    "article_type": ["Heels"],
    "base_colour": ["Black"],
    "gender": ["Women", "Unisex"],
    "max_price": 1500,
    "usage": ["Party"],
}


# ---------------------------------------------------------------- graded_relevance


def test_wrong_article_type_is_irrelevant():
    assert sq.graded_relevance(product(article_type="Flats", price=999), HEELS_SPEC) == 0.0


def test_all_hard_facets_match_is_top_grade():
    assert sq.graded_relevance(product(price=1200), HEELS_SPEC) == 3.0


def test_soft_facet_bonus_is_capped_at_three():
    assert sq.graded_relevance(product(price=1200, usage="Party"), HEELS_SPEC) == 3.0


def test_one_hard_facet_missed_is_two():
    # Price 1999 is over the 1500 limit; colour and gender match.
    assert sq.graded_relevance(product(), HEELS_SPEC) == 2.0


def test_two_hard_facets_missed_is_one():
    assert sq.graded_relevance(product(base_colour="Red"), HEELS_SPEC) == 1.0
    assert sq.graded_relevance(product(base_colour="Red", gender="Men"), HEELS_SPEC) == 1.0


def test_soft_facet_adds_half_below_the_top():
    assert sq.graded_relevance(product(usage="Party"), HEELS_SPEC) == 2.5
    assert sq.graded_relevance(product(base_colour="Red", usage="Party"), HEELS_SPEC) == 1.5


def test_soft_bonus_needs_every_soft_facet():
    spec = {"query": "summer party heels", "article_type": ["Heels"], "base_colour": ["Red"],
            "usage": ["Party"], "season": ["Summer"]}
    assert sq.graded_relevance(product(usage="Party", season="Summer"), spec) == 2.5
    assert sq.graded_relevance(product(usage="Party", season="Winter"), spec) == 2.0


def test_effective_price_uses_real_discount_only():
    assert sq.effective_price(product(price=1999, discounted_price=1299)) == 1299
    assert sq.effective_price(product(price=1999, discounted_price=0)) == 1999
    assert sq.effective_price(product(price=1999, discounted_price=2500)) == 1999
    # Discounted under the limit: all hard facets match.
    assert sq.graded_relevance(product(price=1999, discounted_price=1299), HEELS_SPEC) == 3.0


def test_price_range_is_inclusive():
    spec = {"query": "heels between 500 and 1000", "article_type": ["Heels"],
            "min_price": 500, "max_price": 1000}
    assert sq.graded_relevance(product(price=500), spec) == 3.0
    assert sq.graded_relevance(product(price=1000), spec) == 3.0
    assert sq.graded_relevance(product(price=1001), spec) == 2.0
    assert sq.graded_relevance(product(price=499), spec) == 2.0


def test_values_match_case_insensitively_and_any_of_list():
    spec = {"query": "adiddas heels", "article_type": ["heels", "Flats"], "brand": ["CATWALK"]}
    assert sq.graded_relevance(product(), spec) == 3.0
    assert sq.graded_relevance(product(article_type="Flats", brand="Rocia"), spec) == 2.0


def test_article_type_only_spec_grades_every_match_three():
    spec = {"query": "heels", "article_type": ["Heels"]}
    assert sq.graded_relevance(product(), spec) == 3.0
    assert sq.graded_relevance(product(article_type="Flats"), spec) == 0.0


def test_required_facet_without_article_type():
    spec = {"query": "catwalk for women under 1500", "required": ["brand"],
            "brand": ["Catwalk"], "gender": ["Women"], "max_price": 1500}
    assert sq.graded_relevance(product(brand="Rocia", price=999), spec) == 0.0
    assert sq.graded_relevance(product(price=999), spec) == 3.0
    assert sq.graded_relevance(product(), spec) == 2.0
    assert sq.graded_relevance(product(gender="Men"), spec) == 1.0


def test_required_soft_facet_gates():
    spec = {"query": "formal shirts", "article_type": ["Heels"], "usage": ["Formal"],
            "required": ["usage"]}
    assert sq.graded_relevance(product(usage="Casual"), spec) == 0.0
    assert sq.graded_relevance(product(usage="Formal"), spec) == 3.0


def test_spec_without_required_facet_is_rejected():
    with pytest.raises(ValueError):
        sq.graded_relevance(product(), {"query": "black things", "base_colour": ["Black"]})
    with pytest.raises(ValueError):
        sq.graded_relevance(product(), {"query": "x", "required": ["brand"]})


def test_vectorised_relevance_equals_scalar():
    products = [
        product(id=1, price=1200),
        product(id=2),
        product(id=3, base_colour="Red", usage="Party"),
        product(id=4, article_type="Flats"),
        product(id=5, price=1999, discounted_price=1400, usage="Party", gender="Unisex"),
        product(id=6, base_colour="Red", gender="Men", price=3000),
    ]
    arrays = sq.CatalogArrays(products)
    specs = [
        HEELS_SPEC,
        {"query": "q", "required": ["brand"], "brand": ["Catwalk"], "gender": ["Men"]},
        {"query": "q", "article_type": ["Heels"], "season": ["Summer"], "min_price": 1500},
    ]
    for spec in specs:
        assert arrays.relevance(spec).tolist() == [sq.graded_relevance(p, spec)
                                                   for p in products]
    assert arrays.index["5"] == 4


# ---------------------------------------------------------------- ndcg_at_k


def test_perfect_ranking_is_one():
    rels = [3, 2, 1, 0, 0]
    assert sq.ndcg_at_k([3, 2, 1], rels, 10) == pytest.approx(1.0)


def test_reversed_ranking_is_below_one():
    rels = [3, 2, 1, 0.5]
    score = sq.ndcg_at_k([0.5, 1, 2, 3], rels, 10)
    assert 0 < score < 1


def test_empty_ranking_is_zero():
    assert sq.ndcg_at_k([], [3, 2, 1], 10) == 0.0


def test_nothing_relevant_is_zero():
    assert sq.ndcg_at_k([0, 0], [0, 0, 0], 10) == 0.0


def test_ndcg_known_value():
    # DCG = (2^1-1)/log2(2) + (2^3-1)/log2(3); ideal = (2^3-1)/1 + (2^1-1)/log2(3).
    expected = (1 + 7 / math.log2(3)) / (7 + 1 / math.log2(3))
    assert sq.ndcg_at_k([1, 3], [3, 1, 0], 10) == pytest.approx(expected)


def test_ndcg_cuts_at_k_and_ideal_comes_from_all_candidates():
    # Only the first k ranked items count; the ideal uses the best k of all candidates.
    assert sq.ndcg_at_k([3, 3, 0], [3] * 5, 2) == pytest.approx(1.0)
    assert sq.ndcg_at_k([3], [3] * 5, 2) == pytest.approx(1 / (1 + 1 / math.log2(3)))


# ---------------------------------------------------------------- the judged query set


def test_query_set_loads_and_is_complete():
    queries = sq.load_queries(BENCH / "search_queries.yml")
    assert len(queries) >= 80
    texts = [q["query"] for q in queries]
    assert len(set(texts)) == len(texts), "duplicate queries"
    for spec in queries:
        assert isinstance(spec["query"], str) and spec["query"].strip()
        assert spec.get("article_type") or spec.get("required"), spec["query"]
        unknown = set(spec) - {"query", "required", "min_price", "max_price", *sq.VALUE_FACETS}
        assert not unknown, (spec["query"], unknown)
    article_types = {a for q in queries for a in q.get("article_type", [])}
    assert len(article_types) >= 30


# ---------------------------------------------------------------- evaluation wiring


class _Result:
    def __init__(self, ids):
        self.ids = ids


class _SearchWithModes:
    def search(self, text, *, k=10, mode="hybrid"):
        rankings = {"dense": ["4", "1"], "lexical": ["99"], "hybrid": ["1", "5", "2", "3"]}
        return _Result(rankings[mode])


class _SearchWithoutModes:
    def __init__(self):
        self.calls = 0

    def search(self, text, *, k=10):
        self.calls += 1
        return _Result(["1", "5", "2", "3"])


def _tiny_catalog():
    return sq.CatalogArrays([
        product(id=1, price=1200),
        product(id=2),
        product(id=3, base_colour="Red"),
        product(id=4, article_type="Flats"),
        product(id=5, price=999, discounted_price=0),
    ])


def test_evaluate_scores_each_mode():
    results = sq.evaluate(_tiny_catalog(), [HEELS_SPEC], sq.searcher_for(_SearchWithModes()),
                          ["dense", "lexical", "hybrid"])
    assert set(results) == {"dense", "lexical", "hybrid"}
    assert results["hybrid"]["ndcg"] == pytest.approx(1.0)  # 3, 3, 2, 1: the ideal order
    assert results["lexical"]["ndcg"] == 0.0  # unknown id counts as irrelevant
    assert 0 < results["dense"]["ndcg"] < 1
    assert results["hybrid"]["rows"][0]["top_grade_count"] == 2


def test_evaluate_without_mode_argument_reports_hybrid_once():
    search = _SearchWithoutModes()
    results = sq.evaluate(_tiny_catalog(), [HEELS_SPEC], sq.searcher_for(search),
                          ["dense", "lexical", "hybrid"])
    assert list(results) == ["hybrid"]
    assert results["hybrid"]["ndcg"] == pytest.approx(1.0)
    assert search.calls == 2  # warm-up plus one query, not one run per mode
