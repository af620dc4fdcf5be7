"""The product store: versions of the catalog in Chroma, each with its local indexes.

Embedded (a persistent directory) or a Chroma server is a settings switch; nothing else in
shopbot knows which one it talks to. Chroma is the store of record: it holds every version's
products and the pointer to the version to serve, so replicas on several machines all find
the same catalog. Each :class:`ProductStore` serves one :class:`CatalogVersion` at a time
and swaps to a newer one as a whole (see :mod:`retrieval.versions` for the layout).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings

from retrieval.catalog import Product
from retrieval.embeddings import DIMENSIONS, MiniLMEmbeddingFunction
from retrieval.lexical import LexicalIndex
from retrieval.versions import (
    POINTER_COLLECTION,
    POINTER_ID,
    build_indexes,
    collection_name,
    is_built,
    load_indexes,
    prune_local,
    save_indexes,
    version_dir,
    version_of,
)
from retrieval.vocab import CatalogVocabulary

logger = logging.getLogger(__name__)

META_FILE = "store.json"
# ef_search 1000: recall@10 0.996 (tie-aware) at 44k for ~12 ms p95 (bench/search.py).
HNSW = {"hnsw": {"space": "cosine", "ef_search": 1000, "ef_construction": 200}}
# Chroma caps how many records one call may carry; stay well under it.
_GET_BATCH = 5000


def product_metadata(product: Product) -> dict[str, Any]:
    """Flat, filterable fields plus the full record, as Chroma metadata."""
    return {
        "name": product.name,
        "brand": product.brand,
        "gender": product.gender,
        "article_type": product.article_type,
        "base_colour": product.base_colour,
        "usage": product.usage,
        "season": product.season,
        "final_price": float(product.final_price),
        "content_hash": product.content_hash(),
        "record": product.model_dump_json(),
    }


def product_from_metadata(metadata: dict[str, Any]) -> Product:
    return Product.model_validate_json(metadata["record"])


class ProductCollection:
    """One Chroma collection of products: reads by id, by page and by nearest vector."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection

    def count(self) -> int:
        return self.collection.count()

    def existing_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """content_hash of each stored id among ``ids`` (missing ids are absent)."""
        found: dict[str, str] = {}
        for start in range(0, len(ids), _GET_BATCH):
            batch = list(ids[start:start + _GET_BATCH])
            result = self.collection.get(ids=batch, include=["metadatas"])
            for pid, meta in zip(result["ids"], result["metadatas"] or [], strict=False):
                found[pid] = (meta or {}).get("content_hash", "")
        return found

    def all_ids(self) -> list[str]:
        ids: list[str] = []
        offset = 0
        while True:
            batch = self.collection.get(include=[], limit=_GET_BATCH, offset=offset)["ids"]
            ids.extend(batch)
            if len(batch) < _GET_BATCH:
                return ids
            offset += _GET_BATCH

    def all_products(self, with_vectors: bool = False) -> tuple[list[Product], np.ndarray | None]:
        """Every stored product, and optionally its embedding rows in the same order."""
        products: list[Product] = []
        vectors: list[np.ndarray] = []
        include = ["metadatas", "embeddings"] if with_vectors else ["metadatas"]
        offset = 0
        while True:
            batch = self.collection.get(include=include, limit=_GET_BATCH, offset=offset)
            metas = batch["metadatas"] or []
            rows = batch["embeddings"] if with_vectors else [None] * len(metas)
            for meta, row in zip(metas, rows, strict=True):
                if meta and "record" in meta:
                    products.append(product_from_metadata(meta))
                    if with_vectors:
                        vectors.append(np.asarray(row, dtype=np.float32))
            if len(batch["ids"]) < _GET_BATCH:
                break
            offset += _GET_BATCH
        if not with_vectors:
            return products, None
        matrix = np.vstack(vectors) if vectors else np.zeros((0, DIMENSIONS), np.float32)
        return products, matrix

    def upsert(self, products: Sequence[Product], embeddings: np.ndarray) -> None:
        # No Chroma documents: lexical search is bm25s in the local index, and skipping
        # Chroma's full-text index makes upserts ~1.5x faster (845 -> 1,250 products/s).
        self.collection.upsert(
            ids=[p.id for p in products],
            embeddings=np.asarray(embeddings, dtype=np.float32),
            metadatas=[product_metadata(p) for p in products],
        )

    def copy_to(self, target: ProductCollection, ids: Sequence[str],
                batch_size: int) -> tuple[list[Product], np.ndarray]:
        """Copy ``ids`` with their stored embeddings and metadata into ``target`` (nothing is
        embedded again); returns the copied products and their vectors."""
        products: list[Product] = []
        vectors: list[np.ndarray] = []
        for start in range(0, len(ids), batch_size):
            got = self.collection.get(ids=list(ids[start:start + batch_size]),
                                      include=["metadatas", "embeddings"])
            if not got["ids"]:
                continue
            rows = np.asarray(got["embeddings"], dtype=np.float32)
            target.collection.upsert(ids=got["ids"], embeddings=rows,
                                     metadatas=got["metadatas"])
            products.extend(product_from_metadata(m) for m in got["metadatas"] or [])
            vectors.append(rows)
        matrix = np.vstack(vectors) if vectors else np.zeros((0, DIMENSIONS), np.float32)
        return products, matrix

    def get(self, ids: Iterable[str]) -> list[Product]:
        """Products by id, in the order asked; unknown ids are left out."""
        wanted = [str(i) for i in ids]
        if not wanted:
            return []
        result = self.collection.get(ids=wanted, include=["metadatas"])
        by_id = {
            pid: product_from_metadata(meta)
            for pid, meta in zip(result["ids"], result["metadatas"] or [], strict=False)
            if meta and "record" in meta
        }
        return [by_id[i] for i in wanted if i in by_id]

    def query(
        self,
        embedding: Sequence[float],
        n_results: int,
        where: dict[str, Any] | None = None,
    ) -> list[tuple[Product, float]]:
        """Nearest products to ``embedding`` with their cosine similarity, best first."""
        total = self.count()
        if total == 0:
            return []
        result = self.collection.query(
            query_embeddings=[list(map(float, embedding))],
            n_results=min(n_results, total),
            where=where or None,
            include=["metadatas", "distances"],
        )
        metadatas = (result["metadatas"] or [[]])[0]
        distances = (result["distances"] or [[]])[0]
        return [
            (product_from_metadata(meta), 1.0 - float(dist))
            for meta, dist in zip(metadatas, distances, strict=False)
            if meta and "record" in meta
        ]


Indexes = tuple[CatalogVocabulary, LexicalIndex | None]


class CatalogVersion(ProductCollection):
    """One catalog version, all a search reads: its collection and the indexes built from
    exactly it. A search holds one from start to end, so it never mixes two versions."""

    def __init__(self, number: int, collection: Any, index_dir: Path, *,
                 build_missing: bool, indexes: Indexes | None = None) -> None:
        super().__init__(collection)
        self.number = number
        self.index_dir = index_dir
        self._build_missing = build_missing
        self._indexes = indexes
        self._lock = threading.Lock()

    @property
    def indexes_loaded(self) -> bool:
        return self._indexes is not None

    def load_indexes(self) -> Indexes:
        """The local indexes, read once; a version this machine has no complete build of is
        built from its collection, the store of record (a store from before versions keeps
        what its folder has: None when it predates the lexical index)."""
        with self._lock:
            if self._indexes is None:
                if self._build_missing and not is_built(self.index_dir):
                    products, vectors = self.all_products(with_vectors=True)
                    vocab, lexical = build_indexes(products, vectors)
                    save_indexes(self.index_dir, self.number, vocab, lexical)
                    logger.info("catalog v%d: built its indexes from Chroma into %s",
                                self.number, self.index_dir)
                    self._indexes = (vocab, lexical)
                else:
                    self._indexes = load_indexes(self.index_dir)
            return self._indexes

    @property
    def vocab(self) -> CatalogVocabulary:
        return self.load_indexes()[0]

    @property
    def lexical(self) -> LexicalIndex | None:
        """The BM25 index and facet table (None for a store ingested before they existed)."""
        return self.load_indexes()[1]


class ProductStore:
    """The catalog in Chroma, served one version at a time, with the store's settings beside.

    :meth:`current` is the version to serve: it reads the pointer at most every
    ``catalog_check_s`` seconds (one small Chroma read) and, when an ingest here or on
    another machine moved it, loads the new version in a background thread and swaps one
    reference, so searches never wait for the load and each one stays on one version.
    """

    def __init__(
        self,
        store_dir: Path,
        chroma_host: str | None = None,
        chroma_port: int = 8000,
        catalog_check_s: float | None = None,
    ) -> None:
        self.store_dir = Path(store_dir)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if chroma_host:
            self.client = chromadb.HttpClient(
                host=chroma_host, port=chroma_port, settings=chroma_settings
            )
        else:
            self.client = chromadb.PersistentClient(
                path=str(self.store_dir / "chroma"), settings=chroma_settings
            )
        if catalog_check_s is None:
            from shopcore.settings import get_settings

            catalog_check_s = get_settings().catalog_check_s
        self.catalog_check_s = catalog_check_s
        self.embedding_function = MiniLMEmbeddingFunction()
        self._pointer = self.client.get_or_create_collection(
            POINTER_COLLECTION, embedding_function=None)
        self._current: CatalogVersion | None = None
        self._next_check = 0.0
        self._switching = False
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any, store_dir: Path | None = None) -> ProductStore:
        return cls(store_dir or settings.store_dir, settings.chroma_host, settings.chroma_port,
                   settings.catalog_check_s)

    # -- versions -----------------------------------------------------------------------------

    def pointer(self) -> int | None:
        """The version every replica should serve (None: a store from before versions)."""
        metas = self._pointer.get(ids=[POINTER_ID], include=["metadatas"])["metadatas"] or []
        return int(metas[0]["version"]) if metas and metas[0] else None

    def current(self) -> CatalogVersion:
        """The version to serve now; see the class docstring for how it moves on."""
        version = self._current
        if version is None:
            with self._lock:
                if self._current is None:
                    self._current = self._open(self.pointer())
                    self._next_check = time.monotonic() + self.catalog_check_s
                return self._current
        if time.monotonic() >= self._next_check and self._lock.acquire(blocking=False):
            try:
                self._look_for_new_version(version)
            finally:
                self._lock.release()
        return self._current or version

    def _look_for_new_version(self, version: CatalogVersion) -> None:
        self._next_check = time.monotonic() + self.catalog_check_s
        if self._switching:
            return
        try:
            number = self.pointer()
        except Exception:  # the server is away: keep serving what we have
            logger.warning("could not read the catalog pointer", exc_info=True)
            return
        if (number or 0) == version.number:
            return
        self._switching = True
        threading.Thread(target=self._switch, args=(number, version.indexes_loaded),
                         name="catalog-switch", daemon=True).start()

    def _switch(self, number: int | None, preload: bool) -> None:
        """Open version ``number`` and its indexes (when this process uses them), then serve
        it; on failure keep the old one and try again at the next check."""
        try:
            version = self._open(number)
            if preload:
                version.load_indexes()
            self._use(version)
            logger.info("now serving catalog v%d", version.number)
        except Exception:
            logger.exception("could not switch to catalog v%s", number)
        finally:
            self._switching = False

    def _open(self, number: int | None) -> CatalogVersion:
        """Version ``number``, or (None) the one collection of a store from before versions,
        whose indexes are in the store folder itself."""
        if number is None:
            collection = self.client.get_or_create_collection(
                collection_name(0), embedding_function=self.embedding_function,
                configuration=HNSW)  # type: ignore[arg-type]
            return CatalogVersion(0, collection, self.store_dir, build_missing=False)
        collection = self.client.get_collection(collection_name(number),
                                                embedding_function=self.embedding_function)
        return CatalogVersion(number, collection, version_dir(self.store_dir, number),
                              build_missing=True)

    def _use(self, version: CatalogVersion) -> None:
        """Serve ``version`` from the next search on (one reference: searches under way
        keep the one they hold) and drop this machine's indexes older than the previous."""
        self._current = version
        prune_local(self.store_dir, version.number - 1)

    def products_of(self, number: int | None) -> ProductCollection:
        """The products of version ``number`` as stored (for ingest: no indexes loaded)."""
        return ProductCollection(self._open(number).collection)

    def new_version(self, number: int) -> ProductCollection:
        """An empty collection for version ``number`` (a leftover of a failed ingest goes)."""
        name = collection_name(number)
        if name in self._collection_names():
            self.client.delete_collection(name)
        return ProductCollection(self.client.create_collection(
            name, embedding_function=self.embedding_function,
            configuration=HNSW))  # type: ignore[arg-type]

    def publish(self, number: int, products: list[Product], vectors: np.ndarray,
                base: int | None) -> None:
        """Make the filled collection of version ``number`` the one every replica serves:
        build and save its indexes first, then move the pointer (only from ``base``, the
        version the ingest started from), then drop versions older than the previous one."""
        vocab, lexical = build_indexes(products, vectors)
        index_dir = version_dir(self.store_dir, number)
        save_indexes(index_dir, number, vocab, lexical)
        moved = self.pointer()
        if moved != base:
            raise RuntimeError(f"catalog moved from v{base} to v{moved} during this ingest; "
                               "run one ingest at a time")
        self._write_pointer(number)
        collection = self.client.get_collection(collection_name(number),
                                                embedding_function=self.embedding_function)
        self._use(CatalogVersion(number, collection, index_dir, build_missing=True,
                                 indexes=(vocab, lexical)))
        for name in self._collection_names():
            old = version_of(name)
            if old is not None and old < number - 1:
                self.client.delete_collection(name)

    def adopt(self, number: int) -> None:
        """Serve ``number`` as Chroma holds it: build its indexes here if missing, and point
        at it if nothing does yet (how a store from before versions becomes version 0)."""
        version = self._open(number)
        if not is_built(version.index_dir):
            version.load_indexes()
        if self.pointer() is None:
            self._write_pointer(number)
        self._use(version)

    def _write_pointer(self, number: int) -> None:
        self._pointer.upsert(ids=[POINTER_ID], embeddings=[[0.0]], metadatas=[
            {"version": number, "collection": collection_name(number)}])

    def _collection_names(self) -> list[str]:
        return [getattr(c, "name", c) for c in self.client.list_collections()]

    # -- the current version's products and indexes -------------------------------------------

    @property
    def collection(self) -> Any:
        return self.current().collection

    def count(self) -> int:
        return self.current().count()

    def all_ids(self) -> list[str]:
        return self.current().all_ids()

    def all_products(self, with_vectors: bool = False) -> tuple[list[Product], np.ndarray | None]:
        return self.current().all_products(with_vectors)

    def get(self, ids: Iterable[str]) -> list[Product]:
        return self.current().get(ids)

    def query(self, embedding: Sequence[float], n_results: int,
              where: dict[str, Any] | None = None) -> list[tuple[Product, float]]:
        return self.current().query(embedding, n_results, where)

    @property
    def vocab(self) -> CatalogVocabulary:
        return self.current().vocab

    @property
    def lexical(self) -> LexicalIndex | None:
        return self.current().lexical

    # -- store settings -----------------------------------------------------------------------

    def read_meta(self) -> dict[str, Any]:
        path = self.store_dir / META_FILE
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            logger.warning("store metadata %s is unreadable; ignoring it", path)
            return {}

    def write_meta(self, **values: Any) -> None:
        meta = self.read_meta() | values
        tmp = self.store_dir / (META_FILE + ".tmp")
        tmp.write_text(json.dumps(meta, indent=1, default=str), encoding="utf-8")
        tmp.replace(self.store_dir / META_FILE)

    @property
    def images_dir(self) -> Path | None:
        value = self.read_meta().get("images_dir")
        return Path(value) if value else None
