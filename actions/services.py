"""Process-wide handles to the library code actions call, opened once per action server."""

from __future__ import annotations

import logging
from functools import lru_cache

from retrieval.search import ProductSearch
from retrieval.store import ProductStore
from shopbot.settings import get_settings

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def product_search() -> ProductSearch:
    """The product search over the configured store (Chroma embedded or server)."""
    store = ProductStore.from_settings(get_settings())
    if store.count() == 0:
        logger.warning("product store %s is empty: run `shopbot ingest` first", store.store_dir)
    return ProductSearch(store)


def warm_up() -> None:
    """Open the store and load the embedding model now, so the first shopper does not wait."""
    try:
        search = product_search()
        search.search("warm up", k=1)
        logger.info("product search ready: %d products", search.store.count())
    except Exception:  # the server must still start and answer with a clear message
        logger.exception("product search failed to start")
