"""A blend of recommenders: a trained model's log-probabilities plus weighted counted scores.

A trained SASRec and item co-occurrence make different mistakes: the transformer generalises
over the whole history, co-occurrence nails strong item-to-item pairs (items bought
together). Adding ``weight * knn / max(max(knn), floor)`` to SASRec's log-softmax lifts items
with strong co-occurrence by up to ``weight`` nats and leaves SASRec's order elsewhere; the
floor keeps a history whose best neighbour is weak from getting the full lift. Mixing plain
probabilities does not work: the co-occurrence distribution is so peaked that any weight on
it drowns SASRec. Weight and floor are tuned on validation NDCG@10.

Repeat prior: softmax-trained models give a shopper's own recent items a high score (an
item's input and output vectors are shared), yet in most logs the next item is rarely one
already in the history (never, in the Amazon 5-core files). The blend learns that rate from
the training sequences and rescales its distribution so the history items together get
exactly that probability, which is Bayes' rule with the repeat rate as prior.
"""

from __future__ import annotations

import math
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
        repeat_rate: float | None = None,
        **config: Any,
    ) -> None:
        from recsys.models import build_model  # the registry imports this module

        parts = [{"name": p["name"], "config": dict(p.get("config", {}))} for p in parts]
        weights = [float(w) for w in weights] or [1.0] * len(parts)
        floors = [float(f) for f in floors] or [0.0] * len(parts)
        if not len(weights) == len(floors) == len(parts):
            raise ValueError("one weight and one floor per part")
        super().__init__(n_items, parts=parts, weights=weights, floors=floors,
                         repeat_rate=repeat_rate, **config)
        self.parts = nn.ModuleList(build_model(p["name"], n_items, **p["config"]) for p in parts)

    @classmethod
    def from_models(cls, models: Sequence[SequentialRecommender], weights: Sequence[float],
                    floors: Sequence[float] = (), repeat_rate: float | None = None
                    ) -> ScoreBlend:
        """Wrap already trained or fitted models (their weights are copied in)."""
        blend = cls(models[0].n_items,
                    [{"name": m.name, "config": dict(m.config)} for m in models], weights,
                    floors, repeat_rate)
        for part, model in zip(blend.parts, models, strict=True):
            part.load_state_dict(model.state_dict())
        return blend.eval()

    def fit(self, train_sequences: Sequence[Sequence[int]]) -> None:
        for part in self.parts:
            if not part.trainable:
                part.fit(train_sequences)
        self.config["repeat_rate"] = repeat_rate(train_sequences)

    @torch.no_grad()
    def full_sort_predict(self, histories: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(histories.shape[0], self.n_items + 1)
        config = self.config
        for weight, floor, part in zip(config["weights"], config["floors"], self.parts,
                                       strict=True):
            if weight:
                scores = self.comparable_scores(part, part.full_sort_predict(histories), floor)
                total += weight * scores
        if config.get("repeat_rate") is not None:
            total = apply_repeat_prior(total, history_mask(histories, total.shape[1]),
                                       config["repeat_rate"])
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


def repeat_rate(sequences: Sequence[Sequence[int]]) -> float:
    """How often the next item already occurs earlier in the sequence (add-one smoothed)."""
    repeats = transitions = 0
    for sequence in sequences:
        seen: set[int] = set()
        for position, item in enumerate(sequence):
            if position:
                transitions += 1
                repeats += item in seen
            seen.add(item)
    return (repeats + 1) / (transitions + 2)


def history_mask(histories: torch.Tensor, columns: int) -> torch.Tensor:
    """``[B, columns]``: True where the column's item is in that row's history (0 = padding)."""
    in_history = torch.zeros(histories.shape[0], columns, dtype=torch.bool)
    in_history.scatter_(1, histories, True)
    in_history[:, 0] = False
    return in_history


def apply_repeat_prior(scores: torch.Tensor, in_history: torch.Tensor,
                       rate: float) -> torch.Tensor:
    """Log-probabilities where the history items (``history_mask``) have probability ``rate``.

    Within the history and outside it the model's own order is kept; only the mass between
    the two groups moves. Rows without history just become log-probabilities.
    """
    log_probs = torch.log_softmax(scores, dim=1)
    history_mass = torch.logsumexp(log_probs.masked_fill(~in_history, float("-inf")), dim=1,
                                   keepdim=True)
    rest_mass = torch.log1p(-history_mass.exp().clamp(max=1.0 - 1e-7))
    return torch.where(in_history, log_probs + math.log(rate) - history_mass,
                       log_probs + math.log1p(-rate) - rest_mass)
