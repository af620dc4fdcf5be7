"""The product store: one Chroma collection of products plus the catalog vocabulary.

Embedded (a persistent directory) or a Chroma server is a settings switch; nothing else in
shopbot knows which one it talks to.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings

from retrieval.catalog import Product
from retrieval.embeddings import DIMENSIONS, MiniLMEmbeddingFunction
from retrieval.lexical import LexicalIndex
from retrieval.vocab import CatalogVocabulary

logger = logging.getLogger(__name__)

COLLECTION = "products"
# Bump when the vocabulary or local index files change shape (2: excludable attribute words).
INDEX_FORMAT = 2
META_FILE = "store.json"
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


class ProductStore:
    """Products in Chroma, with the store's own vocabulary and settings beside them."""

    def __init__(
        self,
        store_dir: Path,
        chroma_host: str | None = None,
        chroma_port: int = 8000,
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
        self.embedding_function = MiniLMEmbeddingFunction()
        self.collection = self.client.get_or_create_collection(
            COLLECTION,
            embedding_function=self.embedding_function,
            # ef_search 1000: recall@10 0.996 (tie-aware) at 44k for ~12 ms p95 (bench/search.py).
            configuration={"hnsw": {"space": "cosine", "ef_search": 1000, "ef_construction": 200}},
        )
        self._vocab: CatalogVocabulary | None = None
        self._lexical: LexicalIndex | None = None

    @classmethod
    def from_settings(cls, settings: Any, store_dir: Path | None = None) -> ProductStore:
        return cls(store_dir or settings.store_dir, settings.chroma_host, settings.chroma_port)

    # -- products -----------------------------------------------------------------------------

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

    def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), _GET_BATCH):
            self.collection.delete(ids=list(ids[start:start + _GET_BATCH]))

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

    # -- vocabulary and store settings --------------------------------------------------------

    @property
    def vocab(self) -> CatalogVocabulary:
        if self._vocab is None:
            self._vocab = CatalogVocabulary.load(self.store_dir)
        return self._vocab

    def save_vocab(self, vocab: CatalogVocabulary) -> None:
        vocab.save(self.store_dir)
        self._vocab = vocab

    @property
    def lexical(self) -> LexicalIndex | None:
        """The BM25 index and facet table (None for a store ingested before they existed)."""
        if self._lexical is None:
            self._lexical = LexicalIndex.load(self.store_dir)
        return self._lexical

    def rebuild_indexes(self) -> None:
        """Refresh vocabulary, BM25 index and facets from everything the store now holds."""
        products, vectors = self.all_products(with_vectors=True)
        self.save_vocab(CatalogVocabulary.from_products(products))
        lexical = LexicalIndex.build(products, vectors)
        lexical.save(self.store_dir)
        self._lexical = lexical
        self.write_meta(index_format=INDEX_FORMAT)

    def indexes_outdated(self) -> bool:
        """Whether the local indexes were built by older code (an ingest then rebuilds them
        even when no product changed)."""
        return self.lexical is None or self.read_meta().get("index_format") != INDEX_FORMAT

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
