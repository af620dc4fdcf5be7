"""Process-wide handles to the library code actions call, opened once per action server."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from bot.channels.linking import LinkStore
from recsys.events import EventLog, EventType
from recsys.serving import Recommender
from retrieval.catalog import Product
from retrieval.images import ImageClassifier
from retrieval.policy import current_policy
from retrieval.search import ProductSearch
from retrieval.store import ProductStore
from shopbot.cart import CartStore
from shopbot.orders import OrderRules, OrderStore, seed_demo_orders
from shopbot.profile import ProfileStore
from shopbot.settings import get_settings
from shopbot.tickets import TicketStore

RECOMMENDER_FILE = "recommender.pt"

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def product_search() -> ProductSearch:
    """The product search over the configured store (Chroma embedded or server)."""
    store = ProductStore.from_settings(get_settings())
    if store.count() == 0:
        logger.warning("product store %s is empty: run `shopbot ingest` first", store.store_dir)
    return ProductSearch(store)


@lru_cache(maxsize=1)
def event_log() -> EventLog:
    return EventLog(get_settings().events_db)


def log_event(sender_id: str, product_ids: Iterable[str], event_type: EventType) -> None:
    """Record what the shopper saw or did; a failing log never breaks the reply."""
    try:
        event_log().log(sender_id, list(product_ids), event_type)
    except Exception:
        logger.exception("could not log %s events for %s", event_type, sender_id)


def recommender_path() -> Path:
    settings = get_settings()
    return settings.recsys_model or product_search().store.store_dir / RECOMMENDER_FILE


@lru_cache(maxsize=1)
def recommender() -> Recommender:
    """The trained model (if any) over the current catalog, with content vectors and the
    log's popularity as fallbacks; loaded once per action-server process."""
    store = product_search().store
    lexical = store.lexical
    if lexical is None:
        raise RuntimeError(f"product store {store.store_dir} has no index: run `shopbot ingest`")
    path = recommender_path()
    if not path.is_file():
        logger.info("no trained recommender at %s: content similarity and popularity only", path)
    return Recommender.from_file(
        path if path.is_file() else None,
        [str(pid) for pid in lexical.facets.ids],
        item_vectors=lexical.vectors,
        popularity=event_log().popularity(),
    )


@lru_cache(maxsize=1)
def image_classifier() -> ImageClassifier:
    """The store's photo head (or the ImageNet fallback), loaded once per process."""
    return ImageClassifier.load(product_search().store.store_dir)


def warm_up() -> None:
    """Open the store and load the embedding model now, so the first shopper does not wait."""
    try:
        search = product_search()
        search.search("warm up", k=1)
        logger.info("product search ready: %d products", search.store.count())
    except Exception:  # the server must still start and answer with a clear message
        logger.exception("product search failed to start")
        return
    try:
        recommender()
    except Exception:
        logger.exception("recommender failed to start")
    warm_up_shop()


# -- the shop's own records (orders, carts, profiles, tickets): one SQLite file, shop_db ------

DEMO_PRODUCT_POOL = 200  # demo orders draw from the first catalog ids; enough variety, fast


@lru_cache(maxsize=1)
def order_rules() -> OrderRules:
    try:
        return OrderRules.from_policy(current_policy())
    except Exception:  # a broken policy file must not stop orders; its defaults match it
        logger.exception("shop policy unusable for order rules: using defaults")
        return OrderRules()


@lru_cache(maxsize=1)
def order_store() -> OrderStore:
    """The order store, with the demo shoppers' orders seeded (idempotent) on first use."""
    store = OrderStore(get_settings().shop_db, order_rules())
    try:
        catalog = product_search().store
        ids = sorted(catalog.all_ids())[:DEMO_PRODUCT_POOL]
        seed_demo_orders(store, catalog.get(ids))
    except Exception:  # tracking still works for real orders without demo data
        logger.exception("could not seed the demo orders")
    return store


@lru_cache(maxsize=1)
def cart_store() -> CartStore:
    return CartStore(get_settings().shop_db)


@lru_cache(maxsize=1)
def profile_store() -> ProfileStore:
    return ProfileStore(get_settings().shop_db)


@lru_cache(maxsize=1)
def link_store() -> LinkStore:
    """Channel links (shared with the Rasa-side channels through the shop database)."""
    return LinkStore(get_settings().shop_db)


@lru_cache(maxsize=1)
def ticket_store() -> TicketStore:
    try:
        hours = current_policy().contact.hours
    except Exception:
        logger.exception("shop policy unusable for contact hours")
        hours = ""
    return TicketStore(get_settings().shop_db, contact_hours=hours)


def lookup_product(product_id: str) -> Product | None:
    """One catalog product by id (None when it left the catalog): prices carts at view time."""
    found = product_search().store.get([product_id])
    return found[0] if found else None


def warm_up_shop() -> None:
    """Open the shop database and seed the demo orders before the first shopper asks."""
    try:
        count = order_store().count()
        cart_store(), profile_store(), ticket_store()
        logger.info("shop database ready: %d orders", count)
    except Exception:
        logger.exception("shop database failed to open")
