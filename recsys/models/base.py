"""The one contract every recommender implements, trained or counted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from recsys.data import TrainBatch


def compact_right(histories: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's non-padding items to the front, keeping their order.

    Callers may pad on either side; models read ``(items, lengths)`` with items right-padded.
    """
    is_pad = (histories == 0).to(torch.int8)
    order = torch.argsort(is_pad, dim=1, stable=True)
    return histories.gather(1, order), (1 - is_pad).sum(dim=1)


class SequentialRecommender(nn.Module):
    """Scores every catalog item for a batch of histories.

    ``full_sort_predict(histories [B, L]) -> [B, n_items + 1]``: histories hold internal item
    indices with 0 as padding (either side); column 0 is padding and is always ``-inf``.
    Trainable models also implement ``calculate_loss``; counted baselines implement ``fit``.
    Configuration lives in ``config`` (plain JSON types) so an artifact can rebuild the model.
    """

    name: ClassVar[str] = "base"
    trainable: ClassVar[bool] = False

    def __init__(self, n_items: int, **config: Any) -> None:
        super().__init__()
        self.n_items = n_items
        self.config: dict[str, Any] = dict(config)

    def fit(self, train_sequences: Sequence[Sequence[int]]) -> None:
        """Count statistics from training sequences (baselines); trained models do nothing."""

    def calculate_loss(self, batch: TrainBatch) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} is not trained by gradient descent")

    def full_sort_predict(self, histories: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _mask_padding(self, scores: torch.Tensor) -> torch.Tensor:
        scores[:, 0] = float("-inf")
        return scores
