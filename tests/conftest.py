"""Shared fixtures: a real Chroma store of the sample catalog, and the real shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from retrieval.ingest import ingest_catalog  # noqa: E402
from retrieval.search import ProductSearch  # noqa: E402
from retrieval.store import ProductStore  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SHOPBOT_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
REAL_CATALOG = SHARED_DATA / "catalog" / "products.jsonl.gz"
REAL_IMAGES = SHARED_DATA / "catalog" / "images"

needs_shared_data = pytest.mark.skipif(
    not REAL_CATALOG.is_file(), reason=f"real catalog not found at {REAL_CATALOG}"
)


@pytest.fixture(scope="session")
def sample_store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample catalog ingested once into a real embedded Chroma store."""
    store_dir = tmp_path_factory.mktemp("sample-store")
    ingest_catalog(ProductStore(store_dir))
    return store_dir


@pytest.fixture(scope="session")
def sample_store(sample_store_dir: Path) -> ProductStore:
    return ProductStore(sample_store_dir)


@pytest.fixture(scope="session")
def sample_search(sample_store: ProductStore) -> ProductSearch:
    return ProductSearch(sample_store)


@pytest.fixture
def actions_on_sample_store(
    sample_store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Point the actions' settings and cached services at the sample store for one test,
    with a fresh event log of its own."""
    from actions import services
    from shopbot import settings as settings_module

    monkeypatch.setenv("SHOPBOT_STORE_DIR", str(sample_store_dir))
    monkeypatch.setenv("SHOPBOT_EVENTS_DB", str(tmp_path / "events.db"))
    caches = (settings_module.get_settings, services.product_search, services.event_log,
              services.recommender)
    for cache in caches:
        cache.cache_clear()
    yield
    for cache in caches:
        cache.cache_clear()
