"""Shared fixtures: settings isolated from the repository's var/, a real Chroma store of the
sample catalog, the actions' services over it, and the one end-to-end stack.

Every test runs with ``SHOPBOT_VAR_DIR`` in a temporary folder, so nothing a test (or a
stack it starts) writes lands in the repository's ``var/``. Trained and exported models are
the exception on purpose: they are a cache keyed by their inputs (``var/models``), shared
between runs because training the Rasa model takes minutes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shopcore.settings import PROJECT_ROOT, Settings, reset_settings

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["SHOPBOT_VAR_DIR"] = tempfile.mkdtemp(prefix="shopbot-tests-")
os.environ.setdefault("SHOPBOT_MODELS_DIR", str(PROJECT_ROOT / "var" / "models"))
os.environ.setdefault("SHOPBOT_DEMO", "true")  # the stacks have demo-shopper; tests turn it off

from retrieval.ingest import ingest_catalog  # noqa: E402
from retrieval.search import ProductSearch  # noqa: E402
from retrieval.store import ProductStore  # noqa: E402

# The shop backend's key for customer tokens in the test stacks (tests mint tokens with it).
CUSTOMER_TOKEN_SECRET = "test-shop-backend-customer-token-key-32b"
SHARED_DATA = Path(os.environ.get("SHOPBOT_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
REAL_CATALOG = SHARED_DATA / "catalog" / "products.jsonl.gz"
REAL_IMAGES = SHARED_DATA / "catalog" / "images"

needs_shared_data = pytest.mark.skipif(
    not REAL_CATALOG.is_file(), reason=f"real catalog not found at {REAL_CATALOG}"
)


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Each test reads the environment again (tests set SHOPBOT_* variables)."""
    reset_settings()
    yield
    reset_settings()


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
def services_on_sample_store(sample_store_dir: Path, tmp_path: Path) -> Iterator[Settings]:
    """The actions' services over the sample store, with a shop database of this test's own
    (the demo shoppers' orders seeded, as the stack does in demo mode)."""
    from actions.services import reset_services
    from shop.demo import DEMO_PRODUCT_POOL, seed_demo_orders

    settings = Settings(store_dir=sample_store_dir, var_dir=tmp_path)
    services = reset_services(settings)
    store = services.store
    seed_demo_orders(services.records.orders,
                     store.get(sorted(store.all_ids())[:DEMO_PRODUCT_POOL]))
    yield settings
    reset_services()


@pytest.fixture(scope="session")
def stack(sample_store_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The bot on the sample catalog: action server, Rasa and the web server on free loopback
    ports, with a var folder of its own. Shared by every end-to-end module that needs nothing
    special (tests keep to their own sender ids)."""
    from tests.e2e import running_stack

    run_dir = tmp_path_factory.mktemp("stack")
    settings = Settings(store_dir=sample_store_dir, var_dir=run_dir,
                        customer_token_secret=CUSTOMER_TOKEN_SECRET)
    with running_stack(settings) as started:
        yield started


@pytest.fixture(scope="session")
def photo_shop(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The bot on a small shop with real photos, for the photo, recommendation and widget
    tests: with ../shared/data, six article types cut from the real catalog (40 products
    each, the photo head trained by `shopbot images train`, 3 products per type held out as
    unseen photos); without it, the sample catalog and no photos."""
    from tests.e2e import PhotoShop, build_photo_shop, free_port, running_stack

    run_dir = tmp_path_factory.mktemp("photo-shop")
    if REAL_CATALOG.is_file() and REAL_IMAGES.is_dir():
        store_dir, held_out, photo = build_photo_shop(run_dir, REAL_CATALOG, REAL_IMAGES)
        query = "show me tshirts"
    else:
        store_dir, held_out, photo = request.getfixturevalue("sample_store_dir"), [], None
        query = "show me red dresses"
    allowed_port = free_port()  # the widget test serves a page from this origin
    settings = Settings(store_dir=store_dir, var_dir=run_dir / "var",
                        cors_origins=[f"http://127.0.0.1:{allowed_port}"],
                        customer_token_secret=CUSTOMER_TOKEN_SECRET)
    with running_stack(settings) as started:
        yield PhotoShop(started, ProductStore(store_dir), held_out, photo, query, allowed_port)


# -- real servers on loopback (PostgreSQL, Redis, a Chroma server), one each per session --------

@pytest.fixture(scope="session")
def servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def postgres_server(servers_dir: Path) -> Iterator[object]:
    """A PostgreSQL 15 server (Debian's package) with database ``shopbot``: the Service, with
    ``.port``; tests that need a database of their own make one (:func:`fresh_postgres_url`)."""
    from shopbot import servers
    from shopbot.stack import free_port

    service = servers.postgres(servers_dir / "pg", free_port(), servers_dir / "pg.log")
    service.start()
    try:
        servers.wait_ready([service])
        servers.create_database(service.port)
        yield service
    finally:
        service.stop()


@pytest.fixture
def fresh_postgres_url(postgres_server: object) -> str:
    """An empty PostgreSQL database for one test (named after a counter)."""
    from shopbot import servers

    fresh_postgres_url.count = getattr(fresh_postgres_url, "count", 0) + 1  # type: ignore[attr-defined]
    name = f"test_{os.getpid()}_{fresh_postgres_url.count}"  # type: ignore[attr-defined]
    servers.create_database(postgres_server.port, name)  # type: ignore[attr-defined]
    return servers.postgres_url(postgres_server.port, name)  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each engine the shop runs on: a SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shop.db'}"
    return request.getfixturevalue("fresh_postgres_url")


@pytest.fixture(scope="session")
def redis_server(servers_dir: Path) -> Iterator[object]:
    """A Redis 7 server (Debian's package): the Service, with ``.port``."""
    from shopbot import servers
    from shopbot.stack import free_port

    service = servers.redis(servers_dir / "redis", free_port(), servers_dir / "redis.log")
    service.start()
    try:
        servers.wait_ready([service])
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def chroma_server(servers_dir: Path) -> Iterator[object]:
    """Chroma's own server (`chroma run`): the Service; its port is in ``health_url``."""
    from shopbot import servers
    from shopbot.stack import free_port

    port = free_port()
    service = servers.chroma_server(servers_dir / "chroma", port, servers_dir / "chroma.log")
    service.port = port  # type: ignore[attr-defined]
    service.start()
    try:
        servers.wait_ready([service], timeout=60)
        yield service
    finally:
        service.stop()
