"""Recommenders sharing one contract (:class:`SequentialRecommender`), by name."""

from __future__ import annotations

from typing import Any

from recsys.models.base import SequentialRecommender
from recsys.models.blend import ScoreBlend
from recsys.models.itemknn import ItemKNNRecommender
from recsys.models.popularity import PopularityRecommender
from recsys.models.sasrec import SASRec

MODEL_CLASSES: dict[str, type[SequentialRecommender]] = {
    cls.name: cls for cls in (PopularityRecommender, ItemKNNRecommender, SASRec, ScoreBlend)
}


def build_model(name: str, n_items: int, **config: Any) -> SequentialRecommender:
    """A fresh model by registry name ("popular", "itemknn", "sasrec", "blend")."""
    try:
        cls = MODEL_CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODEL_CLASSES)}") from None
    return cls(n_items, **config)


__all__ = [
    "MODEL_CLASSES",
    "ItemKNNRecommender",
    "PopularityRecommender",
    "SASRec",
    "ScoreBlend",
    "SequentialRecommender",
    "build_model",
]
