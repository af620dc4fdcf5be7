"""Ranking metrics for one held-out item per user, shared by every model.

A rank is 0-based: 0 means the held-out item scored highest. Ties count against the item
(an item tied with others is ranked after all of them), so a model that scores everything
the same earns nothing.
"""

from __future__ import annotations

import numpy as np
import torch


def ranks_of_targets(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of ``targets[b]`` within ``scores[b]`` (pessimistic on ties)."""
    target_scores = scores.gather(1, targets.view(-1, 1))
    return (scores >= target_scores).sum(dim=1) - 1


def hit_rate_at_k(ranks: np.ndarray | torch.Tensor | list[int], k: int) -> float:
    """Share of users whose held-out item is in the top ``k``."""
    values = np.asarray(ranks, dtype=np.float64)
    return float((values < k).mean()) if values.size else 0.0


def ndcg_at_k(ranks: np.ndarray | torch.Tensor | list[int], k: int) -> float:
    """Mean NDCG@k with one relevant item: ``1 / log2(rank + 2)`` inside the top ``k``."""
    values = np.asarray(ranks, dtype=np.float64)
    if not values.size:
        return 0.0
    gains = np.where(values < k, 1.0 / np.log2(values + 2.0), 0.0)
    return float(gains.mean())


def mrr_at_k(ranks: np.ndarray | torch.Tensor | list[int], k: int) -> float:
    values = np.asarray(ranks, dtype=np.float64)
    if not values.size:
        return 0.0
    return float(np.where(values < k, 1.0 / (values + 1.0), 0.0).mean())
