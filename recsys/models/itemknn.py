"""Item-to-item co-occurrence baseline (sequence-aware item-KNN).

Two items are neighbours when they appear close together in users' sequences; the item that
follows counts more than the one before it (next-item prediction is directional). Scores for
a history sum the neighbours of its items, recent items weighing more; popularity breaks ties
so items without any co-occurrence still get a sensible order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from scipy import sparse

from recsys.models.base import SequentialRecommender, compact_right


class ItemKNNRecommender(SequentialRecommender):
    name: ClassVar[str] = "itemknn"

    def __init__(
        self,
        n_items: int,
        neighbours: int = 100,
        window: int = 8,
        backward_weight: float = 0.25,
        distance_decay: float = 0.9,
        history_decay: float = 0.6,
        history_len: int = 10,
        **config: Any,
    ) -> None:
        super().__init__(
            n_items, neighbours=neighbours, window=window, backward_weight=backward_weight,
            distance_decay=distance_decay, history_decay=history_decay,
            history_len=history_len, **config,
        )
        self.register_buffer("neighbour_index", torch.zeros(n_items + 1, neighbours,
                                                            dtype=torch.int32))
        self.register_buffer("neighbour_weight", torch.zeros(n_items + 1, neighbours))
        self.register_buffer("popularity", torch.zeros(n_items + 1))

    def fit(self, train_sequences: Sequence[Sequence[int]]) -> None:
        cfg = self.config
        size = self.n_items + 1
        rows, cols, vals = [], [], []
        for seq in train_sequences:
            arr = np.asarray(seq, dtype=np.int64)
            for distance in range(1, min(cfg["window"], len(arr) - 1) + 1):
                weight = cfg["distance_decay"] ** (distance - 1)
                before, after = arr[:-distance], arr[distance:]
                rows += [before, after]
                cols += [after, before]
                vals += [np.full(len(before), weight),
                         np.full(len(before), weight * cfg["backward_weight"])]
        counts = np.bincount(
            np.fromiter((i for s in train_sequences for i in s), dtype=np.int64), minlength=size
        )[:size].astype(np.float64)
        self.popularity.copy_(torch.from_numpy((counts / max(counts.max(), 1.0)).astype("f4")))
        if not rows:
            return
        matrix = sparse.coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size)
        ).tocsr()
        matrix.sum_duplicates()
        matrix.setdiag(0)
        matrix.eliminate_zeros()
        norm = np.sqrt(np.maximum(counts, 1.0))
        matrix = sparse.diags(1.0 / norm) @ matrix @ sparse.diags(1.0 / norm)
        matrix = matrix.tocsr()
        k = cfg["neighbours"]
        index = np.zeros((size, k), dtype=np.int32)
        weight = np.zeros((size, k), dtype=np.float32)
        for item in range(size):
            start, end = matrix.indptr[item], matrix.indptr[item + 1]
            if start == end:
                continue
            cols_i, vals_i = matrix.indices[start:end], matrix.data[start:end]
            if len(vals_i) > k:
                top = np.argpartition(-vals_i, k - 1)[:k]
                cols_i, vals_i = cols_i[top], vals_i[top]
            index[item, : len(cols_i)] = cols_i
            weight[item, : len(vals_i)] = vals_i
        self.neighbour_index.copy_(torch.from_numpy(index))
        self.neighbour_weight.copy_(torch.from_numpy(weight))

    @torch.no_grad()
    def full_sort_predict(self, histories: torch.Tensor) -> torch.Tensor:
        items, lengths = compact_right(histories.long())
        items = items[:, : max(int(lengths.max()) if len(lengths) else 0, 1)]
        batch, width = items.shape
        # Recency weight: the last item 1, the one before history_decay, ...; cut after N.
        steps_back = (lengths.view(-1, 1) - 1 - torch.arange(width).view(1, -1)).float()
        recency = self.config["history_decay"] ** steps_back.clamp(min=0)
        recency = recency * (steps_back >= 0) * (steps_back < self.config["history_len"])
        recency = recency * (items > 0)
        neighbours = self.neighbour_index[items].long().view(batch, -1)
        weights = (self.neighbour_weight[items] * recency.unsqueeze(-1)).view(batch, -1)
        scores = self.popularity.unsqueeze(0).repeat(batch, 1) * 1e-6
        scores.scatter_add_(1, neighbours, weights)
        return self._mask_padding(scores)

    @torch.no_grad()
    def neighbours_of(self, item: int, k: int) -> list[tuple[int, float]]:
        """Top co-occurring items of one item (for "similar to this one")."""
        if not 0 < item <= self.n_items:
            return []
        pairs = zip(self.neighbour_index[item].tolist(), self.neighbour_weight[item].tolist(),
                    strict=True)
        ranked = sorted((p for p in pairs if p[1] > 0), key=lambda p: -p[1])
        return ranked[:k]
