"""Everything the actions call, built once per action server from the settings.

:func:`services` gives the process's one :class:`Services`; each part (product search,
recommender, photo classifier, the shop's records) is opened on first use, once, even when
several actions ask at the same moment from their worker threads. Tests point the actions
at other settings with :func:`reset_services`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from recsys.events import EventType
from recsys.serving import Recommender
from retrieval.catalog import Product
from retrieval.search import ProductSearch, SearchResult
from retrieval.store import CatalogVersion, ProductStore
from shop.records import ShopRecords, policy_terms
from shopcore.settings import Settings, get_settings
from shopcore.uploads import UploadStore

if TYPE_CHECKING:  # the photo model loads on the first photo, not at start-up
    from retrieval.images.classifier import ImageClassifier

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Services:
    """The library objects one action server uses, over one set of settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._recommender: Recommender | None = None
        self._recommender_stamp: tuple[float | None, int] | None = None

    def _once(self, build: Callable[[], T]) -> T:
        with self._lock:  # cached_property alone would build twice under two threads
            return build()

    @cached_property
    def search(self) -> ProductSearch:
        """The product search over the configured store (Chroma embedded or server); it
        follows the catalog version an ingest on any machine publishes."""
        def build() -> ProductSearch:
            store = ProductStore.from_settings(self.settings)
            if store.count() == 0:
                logger.warning("product store %s is empty: run `shopbot ingest` first",
                               store.store_dir)
            return ProductSearch(store)
        return self._once(build)

    @property
    def store(self) -> ProductStore:
        return self.search.store

    @cached_property
    def records(self) -> ShopRecords:
        """Orders, carts, profiles, tickets, events and links in the shop database."""
        def build() -> ShopRecords:
            rules, hours = policy_terms()
            return ShopRecords.open(self.settings, rules, hours)
        return self._once(build)

    @property
    def recommender(self) -> Recommender:
        """The trained model (if any) over the current catalog, with content vectors and the
        log's popularity as fallbacks. A new model file (retrained, or the demo model
        finishing in the background after ``shopbot run``) or a new catalog version is
        picked up on the next call."""
        path = self.settings.recommender_path
        try:
            mtime: float | None = path.stat().st_mtime
        except OSError:
            mtime = None
        catalog = self.store.current()
        stamp = (mtime, catalog.number)
        with self._lock:
            if self._recommender is None or stamp != self._recommender_stamp:
                self._recommender = self._load_recommender(
                    catalog, path if mtime is not None else None)
                self._recommender_stamp = stamp
            return self._recommender

    def _load_recommender(self, catalog: CatalogVersion, path: Path | None) -> Recommender:
        lexical = catalog.lexical
        if lexical is None:
            raise RuntimeError(f"product store {self.store.store_dir} has no index: "
                               "run `shopbot ingest`")
        if path is None:
            logger.info("no trained recommender at %s: content similarity and popularity only",
                        self.settings.recommender_path)
        return Recommender.from_file(path, [str(pid) for pid in lexical.facets.ids],
                                     item_vectors=lexical.vectors,
                                     popularity=self.records.events.popularity())

    @cached_property
    def image_classifier(self) -> ImageClassifier:
        """The store's photo head (or the ImageNet fallback)."""
        from retrieval.images.classifier import ImageClassifier

        return self._once(lambda: ImageClassifier.load(self.store.store_dir))

    @cached_property
    def uploads(self) -> UploadStore:
        return UploadStore.from_settings(self.settings)

    def lookup_product(self, product_id: str) -> Product | None:
        """One catalog product by id (None when it left the catalog): prices carts now."""
        found = self.store.get([product_id])
        return found[0] if found else None

    def log_event(self, sender_id: str, product_ids: Iterable[str],
                  event_type: EventType) -> None:
        """Record what the shopper saw or did; a failing log never breaks the reply."""
        try:
            self.records.events.log(sender_id, list(product_ids), event_type)
        except Exception:
            logger.exception("could not log %s events for %s", event_type, sender_id)

    def log_search(self, sender_id: str, query: str, result: SearchResult | None,
                   photo: bool) -> None:
        """Record a new search and what it found (the console's insights); never breaks
        the reply."""
        seen = result.classification if result else None
        try:
            self.records.searches.log(
                sender_id, query, kind="photo" if photo else "text",
                results=len(result.products) if result else 0,
                exact=result.exact_matches if result else None,
                relaxed=result.relaxed if result else (),
                predicted=seen.article_type if seen else None,
                confidence=seen.score if seen else None)
        except Exception:
            logger.exception("could not log a search for %s", sender_id)

    def warm_up(self) -> None:
        """Open the store, load the models and the shop database before the first shopper:
        each part that fails is logged and the server still starts (the actions then answer
        with a clear message)."""
        from retrieval.policy import current_retriever

        steps: dict[str, Callable[[], object]] = {
            "product search": lambda: self.search.search("warm up", k=1),
            "recommender": lambda: self.recommender,
            "shop database": lambda: self.records.orders.count(),
            "shop policy": lambda: len(current_retriever().policy.entries),
        }
        for name, step in steps.items():
            try:
                step()
                logger.info("%s ready", name)
            except Exception:
                logger.exception("%s failed to start", name)


_current: Services | None = None
_current_lock = threading.Lock()


def services() -> Services:
    """The action server's services (built from the settings on first use)."""
    global _current
    with _current_lock:
        if _current is None:
            _current = Services(get_settings())
        return _current


def reset_services(settings: Settings | None = None) -> Services:
    """Start over with ``settings`` (default: read again); for tests and reloads."""
    global _current
    with _current_lock:
        _current = Services(settings or get_settings())
        return _current
