"""The refinement conversation over REST on the real 44,441-product Myntra catalog.

Ingesting the full catalog takes about five minutes on a 2-core machine; the store is kept
under test-artifacts/cache/ (not the repository's var/, which belongs to `make run`) so
later runs only check that nothing changed (a few seconds).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest

from retrieval.ingest import ingest_catalog
from retrieval.search import ProductSearch
from retrieval.store import ProductStore
from shopbot.stack import Stack
from shopcore.settings import PROJECT_ROOT, Settings
from tests.conftest import REAL_CATALOG, REAL_IMAGES, needs_shared_data
from tests.e2e import cards, refinement_conversation, running_stack, say

pytestmark = [pytest.mark.e2e, pytest.mark.shared_data, needs_shared_data]


@pytest.fixture(scope="module")
def real_store() -> ProductStore:
    store = ProductStore(PROJECT_ROOT / "test-artifacts" / "cache" / "catalog-products")
    report = ingest_catalog(store, REAL_CATALOG, images_dir=REAL_IMAGES)
    assert report.loaded == 44441 and report.skipped == 0
    assert store.count() == 44441
    return store


@pytest.fixture(scope="module")
def real_stack(real_store: ProductStore,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run_dir = tmp_path_factory.mktemp("real-stack")
    with running_stack(Settings(store_dir=real_store.store_dir, var_dir=run_dir)) as stack:
        yield stack


def test_refinement_on_the_real_catalog(real_stack: Stack, real_store: ProductStore) -> None:
    refinement_conversation(real_stack, real_store, "real-refiner")


def test_real_catalog_cards_carry_photos(real_stack: Stack, real_store: ProductStore) -> None:
    found = cards(say(real_stack, "real-shoes", "men black sports shoes under 3000"))
    products = real_store.get([c["id"] for c in found])
    assert products and all(p.article_type == "Sports Shoes" and p.final_price <= 3000
                            for p in products)
    search = ProductSearch(real_store)
    pictured = next(p for p in real_store.get([str(i) for i in range(10000, 10400)])
                    if p.image and p.id in search.search(p.name, k=5).ids)
    found = cards(say(real_stack, "real-photos", pictured.name))
    card = next(c for c in found if c["id"] == pictured.id)
    assert card["image_url"] == f"/images/{pictured.id}.jpg"
    with urllib.request.urlopen(real_stack.web_url + card["image_url"], timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/jpeg"
        assert response.read(3) == b"\xff\xd8\xff"
