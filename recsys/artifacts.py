"""One file per trained model: weights, config, item id list and catalog fingerprint.

Files are written atomically (temp file + rename) under ``var/models/recsys/`` and read with
``torch.load(weights_only=True)``, so a model file can never run code. Anything wrong with a
file (missing, truncated, another format, weights that don't fit the config) becomes an
:class:`ArtifactError` with a clear message; :func:`try_load_model` logs it and returns None.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from recsys.data import ItemVocab
from recsys.models import MODEL_CLASSES, SequentialRecommender, build_model

logger = logging.getLogger(__name__)

FORMAT = "shopbot-recsys"
VERSION = 1
MODELS_DIR = Path(__file__).resolve().parent.parent / "var" / "models" / "recsys"
DEFAULT_MODEL_PATH = MODELS_DIR / "sasrec.pt"


class ArtifactError(Exception):
    """A model file that cannot be used; the message says why."""


class ArtifactMissingError(ArtifactError):
    pass


class ArtifactCorruptError(ArtifactError):
    pass


@dataclass
class TrainedModel:
    """A loaded model with the item ids its score columns refer to."""

    model: SequentialRecommender
    vocab: ItemVocab
    fingerprint: str
    meta: dict[str, Any] = field(default_factory=dict)


def save_model(
    model: SequentialRecommender,
    vocab: ItemVocab,
    path: str | Path,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and its item ids to ``path`` atomically; returns the path."""
    if len(vocab) != model.n_items:
        raise ValueError(f"vocab has {len(vocab)} items, model {model.n_items}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.name,
        "n_items": model.n_items,
        "config": dict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "item_ids": list(vocab.item_ids),
        "fingerprint": vocab.fingerprint(),
        "meta": {"saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **(meta or {})},
    }
    handle, temp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        torch.save(payload, temp)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return path


def load_model(path: str | Path) -> TrainedModel:
    """Rebuild a saved model in eval mode, or raise :class:`ArtifactError` saying why."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactMissingError(f"model file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file: all mean "corrupt"
        raise ArtifactCorruptError(f"cannot read model file {path}: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ArtifactCorruptError(f"{path} is not a {FORMAT} model file")
    if payload.get("version") != VERSION:
        raise ArtifactCorruptError(f"{path}: unsupported version {payload.get('version')!r}")
    try:
        name, n_items = payload["model"], int(payload["n_items"])
        item_ids = [str(i) for i in payload["item_ids"]]
        if name not in MODEL_CLASSES:
            raise ArtifactCorruptError(f"{path}: unknown model {name!r}")
        vocab = ItemVocab(item_ids)
        if len(vocab) != n_items or vocab.fingerprint() != payload["fingerprint"]:
            raise ArtifactCorruptError(f"{path}: item list does not match its fingerprint")
        model = build_model(name, n_items, **payload["config"])
        model.load_state_dict(payload["state_dict"], strict=True)
    except ArtifactError:
        raise
    except Exception as error:
        raise ArtifactCorruptError(f"{path}: inconsistent model file: {error}") from error
    model.eval()
    return TrainedModel(model, vocab, payload["fingerprint"], dict(payload.get("meta") or {}))


def try_load_model(path: str | Path) -> TrainedModel | None:
    """:func:`load_model`, but a bad or missing file is one log line and ``None``."""
    try:
        return load_model(path)
    except ArtifactError as error:
        logger.warning("recommender model not loaded, using the fallback: %s", error)
        return None
