"""Ingestion into a real embedded Chroma store, and search over it."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import pytest

from retrieval.catalog import load_catalog
from retrieval.ingest import ingest_catalog, ingest_products
from retrieval.search import ProductSearch
from retrieval.store import ProductStore
from tests.conftest import REAL_CATALOG, REAL_IMAGES, needs_shared_data


def test_ingest_is_idempotent_and_incremental(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "store")
    products, _ = load_catalog(None)
    first = ingest_products(store, products)
    assert (first.added, first.updated, first.unchanged) == (len(products), 0, 0)
    assert store.count() == len(products)

    version = store.current()
    built = (version.index_dir / "bm25" / "built.json").stat().st_mtime_ns
    again = ingest_products(store, products)
    assert (again.added, again.updated, again.unchanged) == (0, 0, len(products))
    assert store.current().number == version.number
    assert (version.index_dir / "bm25" / "built.json").stat().st_mtime_ns == built, \
        "nothing changed, so the local index is not rebuilt"
    assert store.count() == len(products)

    changed = [products[0].model_copy(update={"price": products[0].price + 100})] + products[1:]
    third = ingest_products(store, changed)
    assert (third.added, third.updated) == (0, 1)
    assert store.get([products[0].id])[0].price == products[0].price + 100

    fourth = ingest_products(store, changed[:-3])
    assert fourth.removed == 3 and store.count() == len(products) - 3
    kept = ingest_products(store, changed[:10], prune=False)
    assert kept.removed == 0 and store.count() == len(products) - 3


def test_store_survives_reopening(sample_store_dir: Path, sample_store: ProductStore) -> None:
    reopened = ProductStore(sample_store_dir)
    assert reopened.count() == sample_store.count() > 0
    assert "Dresses" in reopened.vocab.article_types


def test_get_keeps_order_and_ignores_unknown_ids(sample_store: ProductStore) -> None:
    ids = sample_store.all_ids()[:3]
    got = sample_store.get([ids[2], "no-such-id", ids[0]])
    assert [p.id for p in got] == [ids[2], ids[0]]
    assert sample_store.get([]) == []


def test_red_dresses_are_red_dresses(sample_search: ProductSearch) -> None:
    result = sample_search.search("show me red dresses", k=5)
    assert len(result.products) == 5
    assert all(p.article_type == "Dresses" and p.base_colour == "Red" for p in result.products)
    assert result.relaxed == []


def test_price_limit_is_respected(sample_search: ProductSearch) -> None:
    result = sample_search.search("black heels under 1500", k=10)
    exact = result.products[:result.exact_matches]
    assert exact
    assert all(p.article_type == "Heels" and p.base_colour == "Black" for p in exact)
    assert all(p.final_price <= 1500 for p in exact)
    if len(result.products) > len(exact):  # the page is filled with the closest, and says so
        assert result.relaxed == ["price"]
        assert all(p.article_type == "Heels" for p in result.products)


def test_show_more_pages_do_not_repeat(sample_search: ProductSearch) -> None:
    first = sample_search.search("dresses", k=5)
    second = sample_search.search("dresses", k=5, offset=5)
    assert len(second.products) == 5
    assert not set(first.ids) & set(second.ids)


def test_impossible_price_relaxes_and_says_so(sample_search: ProductSearch) -> None:
    result = sample_search.search("red dresses under 100", k=3)
    assert result.relaxed == ["price"]
    assert all(p.base_colour == "Red" and p.article_type == "Dresses" for p in result.products)
    prices = [p.final_price for p in result.products]
    assert prices == sorted(prices), "closest to the asked price first"


def test_cheap_sorts_by_price(sample_search: ProductSearch) -> None:
    result = sample_search.search("cheap tshirts", k=5)
    prices = [p.final_price for p in result.products]
    assert prices == sorted(prices)
    assert all(p.article_type == "Tshirts" for p in result.products)


@pytest.mark.parametrize("text", ["😀😀", "asdkjh qwe zzxcv", "'; DROP TABLE products; --",
                                  "红色连衣裙", "x" * 10_000])
def test_nonsense_finds_nothing_rather_than_random_products(
    sample_search: ProductSearch, text: str
) -> None:
    assert sample_search.search(text, k=5).products == []


def test_free_text_without_facets_still_finds_things(sample_search: ProductSearch) -> None:
    result = sample_search.search("something for a wedding", k=5)
    assert result.products
    assert any(p.usage == "Ethnic" for p in result.products)


@needs_shared_data
def test_real_catalog_slice_with_photos(tmp_path: Path) -> None:
    """2,000 real Myntra products: photos attach, facets filter, colours come out right."""
    path = tmp_path / "slice.jsonl.gz"
    with gzip.open(REAL_CATALOG, "rt", encoding="utf-8") as src, \
            gzip.open(path, "wt", encoding="utf-8") as dst:
        for line in itertools.islice(src, 2000):
            dst.write(line)
    store = ProductStore(tmp_path / "store")
    report = ingest_catalog(store, path, images_dir=REAL_IMAGES)
    assert report.loaded == 2000 and report.with_images > 0
    assert store.images_dir == REAL_IMAGES.resolve()
    search = ProductSearch(store)
    result = search.search("men black sports shoes", k=5)
    assert result.products
    assert all(p.article_type == "Sports Shoes" and p.base_colour == "Black"
               and p.gender in ("Men", "Unisex") for p in result.products)
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        first = json.loads(handle.readline())
    assert store.get([str(first["id"])])[0].name == first["name"]


def test_lexical_and_dense_baselines_and_hybrid(sample_search: ProductSearch) -> None:
    lexical = sample_search.search("chikankari kurta", k=3, mode="lexical")
    assert lexical.products and "Chikankari" in lexical.products[0].name
    dense = sample_search.search("party wear dress", k=3, mode="dense")
    assert len(dense.products) == 3
    hybrid = sample_search.search("chikankari kurta", k=3)
    assert "Chikankari" in hybrid.products[0].name


def test_typo_query_end_to_end(sample_search: ProductSearch) -> None:
    result = sample_search.search("snekers for men", k=5)
    assert result.products
    assert all(p.article_type in ("Casual Shoes", "Sports Shoes") for p in result.products)


def test_style_without_article_type_filters_by_style(sample_search: ProductSearch) -> None:
    result = sample_search.search("ethnic wear for men", k=3)
    assert len(result.products) == 3 and not result.relaxed
    assert all(p.usage == "Ethnic" and p.gender in {"Men", "Unisex"} for p in result.products)
    # The sample has three: a longer page is filled with the closest, and says so.
    longer = sample_search.search("ethnic wear for men", k=5)
    assert longer.exact_matches == 3 and longer.relaxed == ["usage"]
    # Named article type: the style only ranks, so formal and casual shirts both qualify.
    shirts = sample_search.search("formal shirts", k=10)
    assert {p.article_type for p in shirts.products} == {"Shirts"}
    assert shirts.products[0].usage == "Formal"
