"""Catalog versions: replicas on a Chroma server serve one whole version and follow ingests.

Real Chroma only: the session's `chroma run` server (each test empties it first) and
embedded stores in temporary folders. Each ProductStore with its own folder stands for an
action-server replica on its own machine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import chromadb
import pytest
from chromadb.config import Settings as ChromaSettings

from retrieval.catalog import Product, load_catalog
from retrieval.embeddings import encode
from retrieval.ingest import ingest_products
from retrieval.search import ProductSearch, SearchResult
from retrieval.store import HNSW, ProductStore, product_metadata
from retrieval.versions import (
    INDEX_FORMAT,
    build_indexes,
    collection_name,
    is_built,
    version_dir,
)
from retrieval.vocab import VOCAB_FILE

QUERIES = ["show me red dresses", "black heels under 1500", "cheap tshirts",
           "chikankari kurta", "something for a wedding", "blue jeans for men"]
CHECK_S = 0.2
SWITCH_DEADLINE_S = CHECK_S + 10  # the check, then loading (or building) the new indexes


@pytest.fixture(scope="module")
def catalog() -> list[Product]:
    return load_catalog(None)[0]


@pytest.fixture
def server(chroma_server: object) -> Callable[[Path], ProductStore]:
    """Replicas on the session's Chroma server, emptied for this test."""
    port: int = chroma_server.port  # type: ignore[attr-defined]
    client = chromadb.HttpClient(host="127.0.0.1", port=port,
                                 settings=ChromaSettings(anonymized_telemetry=False))
    for collection in client.list_collections():
        client.delete_collection(collection.name)
    return lambda store_dir: ProductStore(store_dir, "127.0.0.1", port, CHECK_S)


def changed_catalog(catalog: list[Product]) -> tuple[list[Product], dict[str, str]]:
    """The catalog with one price and one colour changed, one product gone and one new."""
    priced, coloured, gone = catalog[0], catalog[1], catalog[2]
    new = catalog[3].model_copy(update={"id": "new-1", "name": "Zorblax Women Red Dress"})
    out = []
    for product in catalog:
        if product.id == priced.id:
            product = product.model_copy(update={"price": 9999.0, "discounted_price": 0})
        elif product.id == coloured.id:
            product = product.model_copy(update={"base_colour": "Olive"})
        if product.id != gone.id:
            out.append(product)
    return [*out, new], {"priced": priced.id, "coloured": coloured.id, "gone": gone.id,
                         "new": new.id}


def page(result: SearchResult) -> list[tuple[str, float]]:
    return [(p.id, round(s, 5)) for p, s in zip(result.products, result.scores, strict=True)]


def wait_for_version(search: ProductSearch, number: int) -> SearchResult:
    """Search until the replica serves ``number``; fail after the deadline."""
    deadline = time.monotonic() + SWITCH_DEADLINE_S
    while True:
        result = search.search("red dresses", k=5)
        if result.version == number:
            return result
        assert time.monotonic() < deadline, f"still on v{result.version}, wanted v{number}"
        time.sleep(0.05)


def collections(store: ProductStore) -> set[str]:
    return {c.name for c in store.client.list_collections()}


def test_replicas_serve_the_same_version_and_follow_an_ingest(
        server: Callable[[Path], ProductStore], catalog: list[Product], tmp_path: Path) -> None:
    ingester = server(tmp_path / "machine-a")
    first = ingest_products(ingester, catalog)
    assert first.added == len(catalog) and first.version == ingester.pointer() == 1
    assert is_built(version_dir(tmp_path / "machine-a", 1))

    same_machine = ProductSearch(server(tmp_path / "machine-a"))  # reads the built indexes
    other_machine = ProductSearch(server(tmp_path / "machine-b"))  # builds them from Chroma
    for query in QUERIES:
        a, b = same_machine.search(query, k=8), other_machine.search(query, k=8)
        assert a.version == b.version == 1
        assert page(a) == page(b) and a.relaxed == b.relaxed, query
    assert same_machine.search("red dresses", k=5).products
    assert is_built(version_dir(tmp_path / "machine-b", 1))

    second, changed = changed_catalog(catalog)
    report = ingest_products(ingester, second)
    assert (report.added, report.updated, report.removed) == (1, 2, 1)
    assert report.version == ingester.pointer() == 2
    for replica in (same_machine, other_machine):
        result = wait_for_version(replica, 2)
        assert result.version == 2
        store = replica.store
        assert store.get([changed["priced"]])[0].final_price == 9999.0
        assert store.get([changed["coloured"]])[0].base_colour == "Olive"
        assert store.get([changed["gone"]]) == []
        assert "Olive" in store.vocab.colours
        assert replica.search("zorblax dress", k=3).ids[0] == changed["new"]
    assert is_built(version_dir(tmp_path / "machine-b", 2))

    fresh = ProductSearch(server(tmp_path / "machine-c"))  # a replica started after it all
    assert fresh.search("red dresses", k=5).version == 2
    assert page(fresh.search("red dresses", k=8)) == page(
        other_machine.search("red dresses", k=8))
    assert collections(ingester) >= {collection_name(1), collection_name(2)}, \
        "the previous version stays for replicas still on it"

    third = [p.model_copy(update={"price": p.price + 1}) if i == 5 else p
             for i, p in enumerate(second)]
    ingest_products(ingester, third)
    assert collection_name(1) not in collections(ingester), "older than the previous: gone"
    wait_for_version(other_machine, 3)
    assert not version_dir(tmp_path / "machine-b", 1).exists()


def test_no_search_mixes_two_versions(server: Callable[[Path], ProductStore],
                                      catalog: list[Product], tmp_path: Path) -> None:
    ingester = server(tmp_path / "ingester")
    ingest_products(ingester, catalog)
    # Every price changes in version 2: a search that read one part from each version
    # (ranking from one, products from the other) would show a price of the wrong one.
    second = [p.model_copy(update={"price": p.price + 1000, "discounted_price": 0})
              for p in catalog]
    prices = {1: {p.id: p.final_price for p in catalog},
              2: {p.id: p.final_price for p in second}}
    replica = ProductSearch(server(tmp_path / "replica"))
    assert replica.search("dresses", k=5).version == 1

    ingest = threading.Thread(target=ingest_products, args=(ingester, second))
    ingest.start()
    seen: dict[int, int] = {}
    checked = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for query in ("dresses under 2000", "cheap tshirts", "black heels", "watches"):
            result = replica.search(query, k=10)
            assert result.version in prices
            for product in result.products:
                assert product.final_price == prices[result.version][product.id], \
                    f"{query!r}: {product.id} priced from another version than v{result.version}"
            checked += len(result.products)
            seen[result.version] = seen.get(result.version, 0) + 1
        if not ingest.is_alive() and seen.get(2, 0) >= 10:
            break
    ingest.join()
    assert seen.get(1) and seen.get(2, 0) >= 10, seen
    assert checked > 100


def legacy_store(store_dir: Path, products: list[Product]) -> None:
    """A store as ingested before versions: one ``products`` collection, indexes beside it."""
    client = chromadb.PersistentClient(path=str(store_dir / "chroma"),
                                       settings=ChromaSettings(anonymized_telemetry=False))
    collection = client.create_collection("products", configuration=HNSW)  # type: ignore[arg-type]
    vectors = encode([p.embedding_text() for p in products])
    collection.upsert(ids=[p.id for p in products], embeddings=vectors,
                      metadatas=[product_metadata(p) for p in products])
    vocab, lexical = build_indexes(products, vectors)
    vocab.save(store_dir)
    lexical.save(store_dir)
    (store_dir / "store.json").write_text(f'{{"index_format": {INDEX_FORMAT}}}')


def test_a_store_from_before_versions_still_serves_and_upgrades(
        catalog: list[Product], tmp_path: Path) -> None:
    store_dir = tmp_path / "old-store"
    legacy_store(store_dir, catalog)
    store = ProductStore(store_dir, catalog_check_s=CHECK_S)
    search = ProductSearch(store)
    before = search.search("show me red dresses", k=5)
    assert before.version == 0 and store.pointer() is None
    assert store.current().index_dir == store_dir and store.lexical is not None
    assert all(p.article_type == "Dresses" and p.base_colour == "Red"
               for p in before.products) and len(before.products) == 5

    same = ingest_products(store, catalog)
    assert same.unchanged == len(catalog) and store.pointer() == 0
    assert is_built(version_dir(store_dir, 0)) and collections(store) >= {"products"}
    assert page(search.search("show me red dresses", k=5)) == page(before)

    second, changed = changed_catalog(catalog)
    ingest_products(store, second)
    assert store.pointer() == 1 and search.search("red dresses").version == 1
    assert store.get([changed["priced"]])[0].final_price == 9999.0
    assert "products" in collections(store), "version 0 is the previous one: kept"
    ingest_products(store, catalog)
    assert store.pointer() == 2 and "products" not in collections(store)
    assert not (store_dir / VOCAB_FILE).exists() and not version_dir(store_dir, 0).exists()
    assert page(search.search("show me red dresses", k=5)) == page(before)


def test_reingesting_an_unchanged_catalog_makes_no_version(
        catalog: list[Product], tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "store", catalog_check_s=CHECK_S)
    ingest_products(store, catalog[:60])
    built = (version_dir(store.store_dir, 1) / "index.json").stat().st_mtime_ns
    names = collections(store)
    again = ingest_products(store, catalog[:60])
    assert again.unchanged == 60 and (again.added, again.updated, again.removed) == (0, 0, 0)
    assert again.version == store.pointer() == 1 and collections(store) == names
    assert (version_dir(store.store_dir, 1) / "index.json").stat().st_mtime_ns == built
    assert not version_dir(store.store_dir, 2).exists()
