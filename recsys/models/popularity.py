"""Most-popular baseline: the same ranking for everyone, by training interaction count."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from recsys.models.base import SequentialRecommender


class PopularityRecommender(SequentialRecommender):
    name: ClassVar[str] = "popular"

    def __init__(self, n_items: int, **config: Any) -> None:
        super().__init__(n_items, **config)
        self.register_buffer("counts", torch.zeros(n_items + 1, dtype=torch.float32))

    def fit(self, train_sequences: Sequence[Sequence[int]]) -> None:
        flat = np.fromiter((i for seq in train_sequences for i in seq), dtype=np.int64)
        counts = np.bincount(flat, minlength=self.n_items + 1)[: self.n_items + 1]
        self.counts.copy_(torch.from_numpy(counts.astype(np.float32)))

    @torch.no_grad()
    def full_sort_predict(self, histories: torch.Tensor) -> torch.Tensor:
        scores = self.counts.unsqueeze(0).expand(histories.shape[0], -1).clone()
        return self._mask_padding(scores)
