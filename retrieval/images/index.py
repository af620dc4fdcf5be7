"""The catalog's photos for visual search: a Chroma collection, and its vectors in memory.

Chroma is the store of record: one record per product photo (its encoder vector, the
product's facets and the photo file's fingerprint), beside the products in the store's
Chroma client. Indexing is incremental. After every change the vectors are also saved
beside the store (``photo_vectors.npz``), the way the text vectors are, because the search
ranks photos by exact cosine over the facet mask in memory: a few ms at 10k photos, while
Chroma's filtered HNSW queries cost tens of ms and grow with broad filters.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.catalog import Product
from retrieval.images.encoder import DIMENSIONS, ImageEncoder
from retrieval.images.features import Progress, photo_fingerprint
from retrieval.images.preprocess import frame
from retrieval.lexical import cosine_top
from shopcore.images import ImageRejected, load_image

logger = logging.getLogger(__name__)

COLLECTION = "product_images"
PHOTO_VECTORS_FILE = "photo_vectors.npz"
INDEX_BATCH = 64
_GET_BATCH = 5000  # Chroma caps how many records one call may carry
# Above this share of photos, a masked search scores every row instead of gathering rows.


def image_collection(store: Any) -> Any:
    """Catalog photo embeddings, beside the products in the store's Chroma client.

    No embedding function: every vector is given explicitly, so Chroma never reaches for
    its default model (which would download one).
    """
    return store.client.get_or_create_collection(
        COLLECTION, embedding_function=None,
        configuration={"hnsw": {"space": "cosine", "ef_search": 200, "ef_construction": 200}},
    )


def photo_path(product: Product, images_dir: Path) -> Path:
    """Where a product's photo is: its ``image`` field, else ``<id>.jpg``."""
    return images_dir / (product.image or f"{product.id}.jpg")


def image_metadata(product: Product, fingerprint: str) -> dict[str, Any]:
    """Filterable facets of the product a photo shows, and the photo's fingerprint."""
    return {
        "product_id": product.id, "article_type": product.article_type,
        "gender": product.gender, "base_colour": product.base_colour, "brand": product.brand,
        "usage": product.usage, "final_price": float(product.final_price),
        "photo": fingerprint,
    }


def index_catalog_images(
    store: Any,
    products: Sequence[Product],
    images_dir: Path,
    progress: Progress | None = None,
    prune: bool = False,
) -> int:
    """Embed the photos of ``products`` into the store's image collection; returns how many.

    Incremental: a photo whose file size and mtime are unchanged is not re-encoded (only
    its product facets are refreshed when they changed). Unreadable photos are logged and
    skipped. ``progress`` ticks once per product. ``prune`` also removes indexed photos of
    products not in ``products`` (pass it with the whole catalog).
    """
    collection = image_collection(store)
    images_dir = Path(images_dir)
    wanted: dict[str, tuple[Product, Path, str]] = {}
    for product in products:
        path = photo_path(product, images_dir)
        if path.is_file():
            wanted[product.id] = (product, path, photo_fingerprint(path))
    ids = list(wanted)
    existing: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 5000):
        got = collection.get(ids=ids[start:start + 5000], include=["metadatas"])
        existing |= dict(zip(got["ids"], got["metadatas"] or [], strict=False))
    to_encode = [pid for pid in ids if (existing.get(pid) or {}).get("photo") != wanted[pid][2]]
    stale_facets = [pid for pid in ids if pid not in to_encode
                    and existing[pid] != image_metadata(wanted[pid][0], wanted[pid][2])]
    if stale_facets:
        for start in range(0, len(stale_facets), 5000):
            batch = stale_facets[start:start + 5000]
            collection.update(ids=batch, metadatas=[
                image_metadata(wanted[pid][0], wanted[pid][2]) for pid in batch])
    if progress:
        progress(len(products) - len(to_encode))
    encoder = ImageEncoder.get() if to_encode else None
    encoded_count = 0
    for start in range(0, len(to_encode), INDEX_BATCH):
        batch = to_encode[start:start + INDEX_BATCH]
        framed, kept = [], []
        for pid in batch:
            try:
                framed.append(frame(load_image(wanted[pid][1])))
                kept.append(pid)
            except ImageRejected as exc:
                logger.warning("photo of product %s skipped: %s", pid, exc.reason)
        if kept:
            assert encoder is not None
            vectors = encoder.encode_framed(framed).features
            collection.upsert(ids=kept, embeddings=vectors, metadatas=[
                image_metadata(wanted[pid][0], wanted[pid][2]) for pid in kept])
            encoded_count += len(kept)
        if progress:
            progress(len(batch))
    stale: list[str] = []
    if prune:
        keep = {p.id for p in products}
        stale = [pid for pid in _all_ids(collection) if pid not in keep]
        for start in range(0, len(stale), 5000):
            collection.delete(ids=stale[start:start + 5000])
    if encoded_count or stale or not _snapshot_matches(store, collection.count()):
        save_catalog_photos(store)
    logger.info("image index: %d encoded, %d facets refreshed, %d photos in all",
                encoded_count, len(stale_facets), collection.count())
    return encoded_count


def _all_ids(collection: Any) -> list[str]:
    """Every photo id in the collection, a page at a time."""
    ids: list[str] = []
    while True:
        batch = collection.get(include=[], limit=5000, offset=len(ids))["ids"]
        ids.extend(batch)
        if len(batch) < 5000:
            return ids



def nearest_photos(
    store: Any, vector: np.ndarray, k: int = 10, where: dict[str, Any] | None = None
) -> list[tuple[str, float]]:
    """Product ids whose photos look most like ``vector`` by Chroma's HNSW, with cosine
    similarity, best first; ``where`` filters on the photo's product facets.

    The search uses it only for a store without a facet table; the benchmark times it.
    """
    collection = image_collection(store)
    total = collection.count()
    if total == 0 or k <= 0:
        return []
    result = collection.query(
        query_embeddings=[np.asarray(vector, dtype=np.float32).ravel()],
        n_results=min(k, total), where=where or None, include=["distances"],
    )
    ids = (result["ids"] or [[]])[0]
    distances = (result["distances"] or [[]])[0]
    return [(pid, 1.0 - float(d)) for pid, d in zip(ids, distances, strict=False)]


# -- the photo vectors in memory -------------------------------------------------------------------


@dataclass(eq=False)
class CatalogPhotos:
    """Every indexed photo's vector, for exact similarity search over a facet mask."""

    ids: np.ndarray  # [N] product ids (str)
    vectors: np.ndarray  # [N, DIMENSIONS] float32, unit length
    _rows: tuple[Any, np.ndarray] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def rows_in(self, product_ids: np.ndarray) -> np.ndarray:
        """Each photo's row in ``product_ids`` (the facet table's order), -1 for a product
        no longer there. Memoised for the last table: it changes only when the store does."""
        if self._rows is None or self._rows[0] is not product_ids:
            position = {str(pid): row for row, pid in enumerate(product_ids)}
            rows = np.array([position.get(str(pid), -1) for pid in self.ids], dtype=np.int64)
            self._rows = (product_ids, rows)
        return self._rows[1]

    def top(self, vector: np.ndarray, k: int, mask: np.ndarray | None = None
            ) -> list[tuple[str, float]]:
        """Exact cosine top ``k`` among the photos in ``mask`` (all when None), best first."""
        return [(str(self.ids[row]), score)
                for row, score in cosine_top(self.vectors, vector, k, mask)]


_cache_lock = threading.Lock()
# store folder -> (snapshot file's stat key, or None when read from Chroma; the photos)
_cache: dict[str, tuple[tuple[int, ...] | None, CatalogPhotos]] = {}


def _snapshot_key(path: Path) -> tuple[int, ...] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def _snapshot_matches(store: Any, count: int) -> bool:
    """Whether the saved snapshot holds as many photos as the collection."""
    path = Path(store.store_dir) / PHOTO_VECTORS_FILE
    if not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as data:
            return len(data["ids"]) == count
    except (OSError, ValueError, KeyError):
        return False


def _from_collection(store: Any) -> CatalogPhotos:
    collection = image_collection(store)
    ids: list[str] = []
    rows: list[np.ndarray] = []
    while True:
        batch = collection.get(include=["embeddings"], limit=_GET_BATCH, offset=len(ids))
        ids.extend(batch["ids"])
        if len(batch["ids"]):
            rows.append(np.asarray(batch["embeddings"], dtype=np.float32))
        if len(batch["ids"]) < _GET_BATCH:
            break
    vectors = np.vstack(rows) if rows else np.zeros((0, DIMENSIONS), np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return CatalogPhotos(np.array(ids, dtype=str), vectors)


def save_catalog_photos(store: Any) -> CatalogPhotos:
    """Snapshot the image collection's vectors beside the store (after indexing them)."""
    photos = _from_collection(store)
    path = Path(store.store_dir) / PHOTO_VECTORS_FILE
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, ids=photos.ids, vectors=photos.vectors)
    tmp.replace(path)
    with _cache_lock:
        _cache[str(Path(store.store_dir).resolve())] = (_snapshot_key(path), photos)
    return photos


def catalog_photos(store: Any) -> CatalogPhotos:
    """The store's photo vectors, loaded once per snapshot version (a new snapshot, written
    by ``shopbot images index`` in another process, is picked up on the next call).

    A store indexed before snapshots existed is read from Chroma once instead.
    """
    path = Path(store.store_dir) / PHOTO_VECTORS_FILE
    name = str(Path(store.store_dir).resolve())
    key = _snapshot_key(path)
    with _cache_lock:
        cached = _cache.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        photos = None
        if key is not None:
            try:
                with np.load(path, allow_pickle=False) as data:
                    photos = CatalogPhotos(data["ids"], data["vectors"].astype(np.float32))
            except (OSError, ValueError, KeyError):
                logger.warning("photo vectors %s are unreadable; reading Chroma", path)
        if photos is None:
            photos = _from_collection(store)
        _cache[name] = (key, photos)
        return photos
