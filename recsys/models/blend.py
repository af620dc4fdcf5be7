"""A blend of recommenders: a trained model's log-probabilities plus weighted counted scores.

A trained SASRec and item co-occurrence make different mistakes: the transformer generalises
over the whole history, co-occurrence nails strong item-to-item pairs (items bought
together). Adding ``weight * knn / max(max(knn), floor)`` to SASRec's log-softmax lifts items
with strong co-occurrence by up to ``weight`` nats and leaves SASRec's order elsewhere; the
floor keeps a history whose best neighbour is weak from getting the full lift. Mixing plain
probabilities does not work: the co-occurrence distribution is so peaked that any weight on
it drowns SASRec. Weight and floor are tuned on validation NDCG@10.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from recsys.models.base import SequentialRecommender


class ScoreBlend(SequentialRecommender):
    name: ClassVar[str] = "blend"

    def __init__(
        self,
        n_items: int,
        parts: Sequence[dict[str, Any]] = (),
        weights: Sequence[float] = (),
        floors: Sequence[float] = (),
        **config: Any,
    ) -> None:
        from recsys.models import build_model  # the registry imports this module

        parts = [{"name": p["name"], "config": dict(p.get("config", {}))} for p in parts]
        weights = [float(w) for w in weights] or [1.0] * len(parts)
        floors = [float(f) for f in floors] or [0.0] * len(parts)
        if not len(weights) == len(floors) == len(parts):
            raise ValueError("one weight and one floor per part")
        super().__init__(n_items, parts=parts, weights=weights, floors=floors, **config)
        self.parts = nn.ModuleList(build_model(p["name"], n_items, **p["config"]) for p in parts)

    @classmethod
    def from_models(cls, models: Sequence[SequentialRecommender], weights: Sequence[float],
                    floors: Sequence[float] = ()) -> ScoreBlend:
        """Wrap already trained or fitted models (their weights are copied in)."""
        blend = cls(models[0].n_items,
                    [{"name": m.name, "config": dict(m.config)} for m in models], weights,
                    floors)
        for part, model in zip(blend.parts, models, strict=True):
            part.load_state_dict(model.state_dict())
        return blend.eval()

    def fit(self, train_sequences: Sequence[Sequence[int]]) -> None:
        for part in self.parts:
            if not part.trainable:
                part.fit(train_sequences)

    @torch.no_grad()
    def full_sort_predict(self, histories: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(histories.shape[0], self.n_items + 1)
        config = self.config
        for weight, floor, part in zip(config["weights"], config["floors"], self.parts,
                                       strict=True):
            if weight:
                scores = self.comparable_scores(part, part.full_sort_predict(histories), floor)
                total += weight * scores
        return self._mask_padding(total)

    @staticmethod
    def comparable_scores(part: SequentialRecommender, scores: torch.Tensor,
                          floor: float = 0.0) -> torch.Tensor:
        """Trained logits as log-probabilities; counted scores over ``max(row max, floor)``."""
        if part.trainable:
            return torch.log_softmax(scores, dim=1).clamp(min=-1e4)
        positive = counted_scores(scores)
        return positive / positive.max(dim=1, keepdim=True).values.clamp(min=max(floor, 1e-12))


def counted_scores(scores: torch.Tensor) -> torch.Tensor:
    """Non-negative scores of a counted model (its -inf padding column becomes 0)."""
    return torch.nan_to_num(scores, neginf=0.0).clamp(min=0)
