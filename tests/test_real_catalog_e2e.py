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
from tests.e2e import cards, refinement_conversation, running_stack, say, texts

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


# Issue 15, section 2: short follow-ups after a search refine it on the 44k catalog, whatever
# intent the NLU guesses for them ("in black" used to be a fallback, "brown" a new search).
FOLLOW_UPS = [
    ("running shoes", "in black",
     lambda p: p.article_type == "Sports Shoes" and p.base_colour == "Black"),
    ("sunglasses", "brown", lambda p: p.article_type == "Sunglasses" and p.base_colour == "Brown"),
    ("casio watches", "something under 2000",
     lambda p: p.article_type == "Watches" and p.brand.lower() == "casio"
     and p.final_price <= 2000),
    ("backpacks", "what about something under 1500",
     lambda p: p.article_type == "Backpacks" and p.final_price <= 1500),
    ("black heels under 1500 for a party", "in red",
     lambda p: p.article_type == "Heels" and p.base_colour == "Red" and p.final_price <= 1500),
]


@pytest.mark.parametrize(("first", "follow_up", "fits"), FOLLOW_UPS,
                         ids=[f"{a} > {b}" for a, b, _ in FOLLOW_UPS])
def test_short_follow_up_refines_the_search(real_stack: Stack, real_store: ProductStore,
                                            first: str, follow_up: str, fits: object) -> None:
    sender = "real-follow-up-" + first.replace(" ", "-")
    assert cards(say(real_stack, sender, first))
    reply = say(real_stack, sender, follow_up)
    found = real_store.get([c["id"] for c in cards(reply)])
    assert len(found) >= 3, texts(reply)
    assert all(fits(p) for p in found), [(p.name, p.final_price) for p in found]  # type: ignore[operator]


NEGATIONS = [
    ("formal shirts for men but not white", "white",
     lambda p: p.article_type == "Shirts" and p.gender == "Men" and p.base_colour != "White"),
    ("sports shoes not Nike", "nike",
     lambda p: p.article_type == "Sports Shoes" and p.brand != "Nike"),
    ("handbags, anything but black", "black",
     lambda p: p.article_type == "Handbags" and p.base_colour != "Black"),
]


@pytest.mark.parametrize(("query", "excluded", "fits"), NEGATIONS, ids=[q for q, _, _ in NEGATIONS])
def test_negation_excludes_and_says_so(real_stack: Stack, real_store: ProductStore,
                                       query: str, excluded: str, fits: object) -> None:
    reply = say(real_stack, "real-not-" + excluded, query)
    found = real_store.get([c["id"] for c in cards(reply)])
    assert len(found) >= 3, texts(reply)
    assert all(fits(p) for p in found), [p.name for p in found]  # type: ignore[operator]
    assert f"not {excluded}" in texts(reply).lower()


def test_negation_as_a_follow_up(real_stack: Stack, real_store: ProductStore) -> None:
    sender = "real-no-leather"
    first = real_store.get([c["id"] for c in cards(say(real_stack, sender, "men's wallets"))])
    assert first and all(p.article_type == "Wallets" for p in first)
    reply = say(real_stack, sender, "no leather")
    found = real_store.get([c["id"] for c in cards(reply)])
    assert found and all(p.article_type == "Wallets" for p in found), texts(reply)
    assert not any("leather" in (p.name + " " + p.description).lower() for p in found)
    assert "leather" in texts(reply).lower()
