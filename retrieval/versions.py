"""Catalog versions on disk and in Chroma: names, the local index folders, how to build them.

Every ingest that changes the catalog writes a new Chroma collection ``products-v<N>`` and
the local indexes (vocabulary, BM25, facets, vectors) for exactly that collection into
``<store_dir>/versions/<N>/``; a pointer record in Chroma then names the version to serve.
A store ingested before versions existed is version 0: the plain ``products`` collection,
its indexes in the store folder itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from pathlib import Path

import numpy as np

from retrieval.catalog import Product
from retrieval.lexical import FACETS_FILE, LEXICAL_DIR, VECTORS_FILE, LexicalIndex
from retrieval.vocab import VOCAB_FILE, CatalogVocabulary

LEGACY_COLLECTION = "products"
POINTER_COLLECTION = "catalog"
POINTER_ID = "current"
VERSIONS_DIR = "versions"
INDEX_META = "index.json"
# Bump when the vocabulary or local index files change shape (2: excludable attribute words);
# a replica finding an older build rebuilds it from Chroma.
INDEX_FORMAT = 2
_VERSIONED = re.compile(r"^products-v(\d+)$")


def collection_name(number: int) -> str:
    return LEGACY_COLLECTION if number == 0 else f"{LEGACY_COLLECTION}-v{number}"


def version_of(name: str) -> int | None:
    """The version a collection name holds (None for collections that are not products)."""
    if name == LEGACY_COLLECTION:
        return 0
    match = _VERSIONED.match(name)
    return int(match.group(1)) if match else None


def version_dir(store_dir: Path, number: int) -> Path:
    return Path(store_dir) / VERSIONS_DIR / str(number)


def is_built(index_dir: Path) -> bool:
    """Whether ``index_dir`` holds a complete build by this code's index format."""
    try:
        meta = json.loads((index_dir / INDEX_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return meta.get("index_format") == INDEX_FORMAT


def newest_index_dir(store_dir: Path) -> Path:
    """The newest complete index folder here (the store folder itself before versions), for
    readers that need the vocabulary but not Chroma, such as the photo fallback."""
    root = Path(store_dir) / VERSIONS_DIR
    numbers = sorted((int(p.name) for p in root.glob("*") if p.name.isdigit()), reverse=True)
    for number in numbers:
        if is_built(root / str(number)):
            return root / str(number)
    return Path(store_dir)


def build_indexes(
    products: list[Product], vectors: np.ndarray | None
) -> tuple[CatalogVocabulary, LexicalIndex]:
    """Vocabulary and lexical index of one version, in product-id order: every replica that
    builds the same version gets the same rows, so ties rank the same everywhere."""
    order = sorted(range(len(products)), key=lambda i: products[i].id)
    products = [products[i] for i in order]
    if vectors is not None:
        vectors = vectors[order] if len(order) else vectors
    return CatalogVocabulary.from_products(products), LexicalIndex.build(products, vectors)


def save_indexes(index_dir: Path, number: int, vocab: CatalogVocabulary,
                 lexical: LexicalIndex) -> None:
    """Write one version's indexes all at once: built in a temporary folder, renamed into
    place, so a reader (on this machine or a shared folder) never sees half of them. When
    another process got there first with a complete build, its build stays."""
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = index_dir.parent / f".{index_dir.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    vocab.save(tmp)
    lexical.save(tmp)
    (tmp / INDEX_META).write_text(json.dumps(
        {"index_format": INDEX_FORMAT, "version": number, "products": len(lexical.facets)}))
    if index_dir.exists():
        if is_built(index_dir):
            shutil.rmtree(tmp, ignore_errors=True)
            return
        old = tmp.with_suffix(".old")
        index_dir.rename(old)  # an older format's build: replaced, not merged
        shutil.rmtree(old, ignore_errors=True)
    try:
        tmp.rename(index_dir)
    except OSError:
        if not is_built(index_dir):
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def load_indexes(index_dir: Path) -> tuple[CatalogVocabulary, LexicalIndex | None]:
    return CatalogVocabulary.load(index_dir), LexicalIndex.load(index_dir)


def prune_local(store_dir: Path, keep_from: int) -> None:
    """Remove this machine's index folders of versions below ``keep_from`` (and the store
    folder's own pre-version indexes once version 0 goes too)."""
    root = Path(store_dir) / VERSIONS_DIR
    for path in root.glob("*"):
        if path.name.isdigit() and int(path.name) < keep_from:
            shutil.rmtree(path, ignore_errors=True)
    if keep_from > 0:
        store_dir = Path(store_dir)
        shutil.rmtree(store_dir / LEXICAL_DIR, ignore_errors=True)
        for name in (VOCAB_FILE, FACETS_FILE, VECTORS_FILE):
            (store_dir / name).unlink(missing_ok=True)
