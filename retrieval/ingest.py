"""Catalog ingestion: load, embed what changed, publish a new catalog version.

Re-ingesting the same file is cheap and changes nothing: products are keyed by id and only
those whose content hash differs are re-embedded; the rest are copied into the new version
with the embeddings Chroma already holds.
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
from retrieval.embeddings import DIMENSIONS, encode
from retrieval.store import ProductCollection, ProductStore

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]
# Texts per encode call: large enough for length bucketing, small enough for steady progress.
ENCODE_CHUNK = 2048
# Products per read-and-write when copying unchanged ones into a new version (Chroma caps a
# call at a few thousand records).
_COPY_BATCH = 2000


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
    version: int = 0  # the catalog version the store serves after this ingest
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
    """Make the store serve exactly ``products`` (or at least them, with ``prune=False``).

    A change makes a new catalog version: the unchanged products are copied from the
    current one with their stored embeddings, only new and changed ones are embedded, the
    version's indexes are built, and only then does the pointer move, so every replica
    switches from one whole version to the next. Nothing changed: no new version.
    """
    started = time.perf_counter()
    report = IngestReport(loaded=len(products))
    base = store.pointer()
    source = store.products_of(base)
    existing = source.existing_hashes([p.id for p in products])
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
    wanted = {p.id for p in products}
    stored = source.all_ids()
    stale = [pid for pid in stored if pid not in wanted] if prune else []
    report.removed = len(stale)
    if not changed and not stale:
        report.version = base or 0
        store.adopt(report.version)
        if progress and report.unchanged:
            progress(report.unchanged)
    else:
        report.version = number = (base or 0) + 1
        target = store.new_version(number)
        dropped = {p.id for p in changed} | set(stale)
        kept, kept_vectors = source.copy_to(target, [pid for pid in stored
                                                     if pid not in dropped], _COPY_BATCH)
        if progress and report.unchanged:
            progress(report.unchanged)
        vectors = _embed_and_upsert(target, changed, batch_size, progress)
        store.publish(number, kept + changed, np.vstack([kept_vectors, vectors]), base)
    report.seconds = round(time.perf_counter() - started, 3)
    logger.info("ingest: %s", report.as_dict())
    return report


def copy_catalog(source: ProductStore, target: ProductStore) -> int:
    """Serve ``source``'s current catalog from ``target`` as a new version, embeddings
    included: how an embedded store moves onto a Chroma server without embedding its
    products again (44k products: a minute instead of six). Returns how many were copied."""
    base = target.pointer()
    number = (base or 0) + 1
    collection = target.new_version(number)
    products, vectors = source.products_of(source.pointer()).copy_to(
        collection, source.all_ids(), _COPY_BATCH)
    target.publish(number, products, vectors, base)
    target.write_meta(**{k: v for k, v in source.read_meta().items()
                         if k in ("catalog", "images_dir", "products", "ingested_at")})
    return len(products)


def _embed_and_upsert(
    target: ProductCollection, products: list[Product], batch_size: int,
    progress: Progress | None,
) -> np.ndarray:
    """Encode each distinct text once and overlap Chroma writes with the next chunk's encode;
    returns the products' vectors in order.

    A quarter of the real catalog's embedding texts are repeats (same name, brand and
    facets), and encoding dominates ingest, so de-duplication is the biggest saving; chunks
    of a few thousand texts let the encoder bucket by length, and the single writer thread
    keeps upserts in order while the model works on the next chunk.
    """
    vectors_by_text: dict[str, np.ndarray] = {}
    written: list[np.ndarray] = [np.zeros((0, DIMENSIONS), np.float32)]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chroma-upsert") as writer:
        pending: Future[None] | None = None
        for start in range(0, len(products), ENCODE_CHUNK):
            chunk = products[start:start + ENCODE_CHUNK]
            texts = [p.embedding_text() for p in chunk]
            new_texts = [t for t in dict.fromkeys(texts) if t not in vectors_by_text]
            vectors_by_text.update(zip(new_texts, encode(new_texts), strict=True))
            vectors = np.stack([vectors_by_text[t] for t in texts]).astype(np.float32)
            written.append(vectors)
            if pending:
                pending.result()  # at most one chunk waiting: memory stays flat
            pending = writer.submit(_upsert_batches, target, chunk, vectors, batch_size,
                                    progress)
        if pending:
            pending.result()
    return np.vstack(written)


def _upsert_batches(
    target: ProductCollection,
    products: list[Product],
    vectors: np.ndarray,
    batch_size: int,
    progress: Progress | None,
) -> None:
    for start in range(0, len(products), batch_size):
        batch = products[start:start + batch_size]
        target.upsert(batch, vectors[start:start + batch_size])
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

