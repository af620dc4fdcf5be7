"""Leave-one-out evaluation: rank each held-out item against ALL items, no sampled negatives.

By default history items are not masked out of the ranking (as the brief's reference protocol),
the same for every model; ``exclude_history=True`` gives the RecBole-style variant where the
user's history items cannot be recommended (on the Amazon 5-core files no held-out item ever
repeats a history item, so this only removes wrong answers). Evaluators are callables that
return a dict of metrics, in the style of sentence-transformers evaluators.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from recsys.data import pad_sequences
from recsys.metrics import hit_rate_at_k, mrr_at_k, ndcg_at_k, ranks_of_targets
from recsys.models.base import SequentialRecommender


@torch.no_grad()
def rank_targets(
    model: SequentialRecommender,
    histories: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int = 1024,
    progress: bool = False,
    exclude_history: bool = False,
) -> np.ndarray:
    """0-based rank of each target among all items, in batches (eval mode restored after)."""
    was_training = model.training
    model.eval()
    ranks = []
    starts = range(0, len(targets), batch_size)
    try:
        for start in tqdm(starts, desc=f"rank {model.name}", unit="batch", file=sys.stderr,
                          disable=not progress):
            batch = histories[start: start + batch_size]
            batch = batch[:, int((batch != 0).any(dim=0).int().argmax()):]  # drop all-pad columns
            scores = model.full_sort_predict(batch)
            if exclude_history:
                keep = scores[:, 0].clone()
                scores = scores.scatter(1, batch, float("-inf"))
                scores[:, 0] = keep
            ranks.append(ranks_of_targets(scores, targets[start: start + batch_size]))
    finally:
        model.train(was_training)
    return torch.cat(ranks).numpy() if ranks else np.zeros(0, dtype=np.int64)


class LeaveOneOutEvaluator:
    """HR@k / NDCG@k / MRR@k of one held-out item per user; histories padded once."""

    def __init__(
        self,
        histories: Sequence[Sequence[int]],
        targets: Sequence[int],
        max_len: int = 50,
        ks: Sequence[int] = (10,),
        batch_size: int = 1024,
        name: str = "valid",
        progress: bool = False,
        exclude_history: bool = False,
    ) -> None:
        self.progress = progress
        self.exclude_history = exclude_history
        # Users sorted by history length: each batch is only as wide as its longest history,
        # which cuts transformer work several-fold (the metrics are order-free means).
        order = sorted(range(len(targets)), key=lambda n: len(histories[n]))
        width = max(1, min(max_len, max((len(h) for h in histories), default=1)))
        self.histories = pad_sequences([histories[n] for n in order], width, side="left")
        self.targets = torch.tensor([targets[n] for n in order], dtype=torch.long)
        self.ks = tuple(ks)
        self.batch_size = batch_size
        self.name = name

    def __call__(self, model: SequentialRecommender) -> dict[str, float]:
        started = time.perf_counter()
        ranks = rank_targets(model, self.histories, self.targets, self.batch_size,
                             self.progress, self.exclude_history)
        metrics: dict[str, float] = {}
        for k in self.ks:
            metrics[f"hr@{k}"] = round(hit_rate_at_k(ranks, k), 5)
            metrics[f"ndcg@{k}"] = round(ndcg_at_k(ranks, k), 5)
            metrics[f"mrr@{k}"] = round(mrr_at_k(ranks, k), 5)
        metrics["users"] = len(ranks)
        metrics["seconds"] = round(time.perf_counter() - started, 2)
        return metrics
