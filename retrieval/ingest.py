"""Catalog ingestion: load, embed what changed, upsert in batches, refresh the vocabulary.

Re-ingesting the same file is cheap and changes nothing: products are keyed by id and only
those whose content hash differs are re-embedded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from retrieval.catalog import Product, load_catalog
from retrieval.embeddings import encode
from retrieval.store import ProductStore

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]
# Texts per encode call: large enough for length bucketing, small enough for steady progress.
ENCODE_CHUNK = 2048


@dataclass
class IngestReport:
    """Counts of what an ingest did, for the CLI and for tests."""

    catalog: str = ""
    loaded: int = 0
    skipped: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    with_images: int = 0
    photos_indexed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def attach_images(products: list[Product], images_dir: Path | None) -> tuple[list[Product], int]:
    """Point each product at ``<images_dir>/<id>.jpg`` when that photo exists."""
    if not images_dir:
        return products, 0
    if not images_dir.is_dir():
        raise FileNotFoundError(f"images folder not found: {images_dir}")
    present = {p.stem for p in images_dir.glob("*.jpg")}
    out = [p.model_copy(update={"image": f"{p.id}.jpg"}) if p.id in present else p
           for p in products]
    return out, sum(1 for p in products if p.id in present)


def ingest_products(
    store: ProductStore,
    products: list[Product],
    *,
    batch_size: int = 256,
    prune: bool = True,
    progress: Progress | None = None,
) -> IngestReport:
    """Make the store hold exactly ``products`` (or at least them, with ``prune=False``)."""
    started = time.perf_counter()
    report = IngestReport(loaded=len(products))
    existing = store.existing_hashes([p.id for p in products])
    changed: list[Product] = []
    for product in products:
        old = existing.get(product.id)
        if old == product.content_hash():
            report.unchanged += 1
        else:
            changed.append(product)
            if old is None:
                report.added += 1
            else:
                report.updated += 1
    if progress and report.unchanged:
        progress(report.unchanged)
    _embed_and_upsert(store, changed, batch_size, progress)
    if prune:
        keep = {p.id for p in products}
        stale = [pid for pid in store.all_ids() if pid not in keep]
        if stale:
            store.delete(stale)
        report.removed = len(stale)
    if changed or report.removed or store.indexes_outdated():
        store.rebuild_indexes()
    report.seconds = round(time.perf_counter() - started, 3)
    logger.info("ingest: %s", report.as_dict())
    return report


def _embed_and_upsert(
    store: ProductStore, products: list[Product], batch_size: int, progress: Progress | None
) -> None:
    """Encode each distinct text once and overlap Chroma writes with the next chunk's encode.

    A quarter of the real catalog's embedding texts are repeats (same name, brand and
    facets), and encoding dominates ingest, so de-duplication is the biggest saving; chunks
    of a few thousand texts let the encoder bucket by length, and the single writer thread
    keeps upserts in order while the model works on the next chunk.
    """
    vectors_by_text: dict[str, np.ndarray] = {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chroma-upsert") as writer:
        pending: Future[None] | None = None
        for start in range(0, len(products), ENCODE_CHUNK):
            chunk = products[start:start + ENCODE_CHUNK]
            texts = [p.embedding_text() for p in chunk]
            new_texts = [t for t in dict.fromkeys(texts) if t not in vectors_by_text]
            vectors_by_text.update(zip(new_texts, encode(new_texts), strict=True))
            vectors = np.stack([vectors_by_text[t] for t in texts])
            if pending:
                pending.result()  # at most one chunk waiting: memory stays flat
            pending = writer.submit(_upsert_batches, store, chunk, vectors, batch_size, progress)
        if pending:
            pending.result()


def _upsert_batches(
    store: ProductStore,
    products: list[Product],
    vectors: np.ndarray,
    batch_size: int,
    progress: Progress | None,
) -> None:
    for start in range(0, len(products), batch_size):
        batch = products[start:start + batch_size]
        store.upsert(batch, vectors[start:start + batch_size])
        if progress:
            progress(len(batch))


def ingest_catalog(
    store: ProductStore,
    catalog_path: Path | None = None,
    *,
    images_dir: Path | None = None,
    batch_size: int = 256,
    prune: bool = True,
    progress_factory: Callable[[int], Progress] | None = None,
) -> IngestReport:
    """Load a catalog file (the bundled sample when None) and ingest it into ``store``."""
    products, load_report = load_catalog(catalog_path)
    products, with_images = attach_images(products, images_dir)
    progress = progress_factory(len(products)) if progress_factory else None
    report = ingest_products(
        store, products, batch_size=batch_size, prune=prune, progress=progress
    )
    if images_dir and with_images:
        from retrieval.images.index import index_catalog_images  # the encoder: only here

        photographed = [p for p in products if p.image]
        photo_progress = progress_factory(len(photographed)) if progress_factory else None
        report.photos_indexed = index_catalog_images(
            store, photographed, images_dir, progress=photo_progress, prune=prune
        )
    report.catalog = str(catalog_path or "sample")
    report.skipped = load_report.skipped
    report.errors = load_report.errors
    report.with_images = with_images
    store.write_meta(
        catalog=report.catalog,
        images_dir=str(images_dir.resolve()) if images_dir else None,
        products=report.loaded,
        ingested_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    return report

