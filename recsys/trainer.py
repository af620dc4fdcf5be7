"""Training loop: epochs with a tqdm bar, validation NDCG@10 early stopping, a time budget.

Counted baselines (``trainable = False``) are fitted in one pass and validated once, so every
model goes through the same call and returns the same result record.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from recsys.data import LeaveOneOutSplit, NextItemBatches, pad_sequences
from recsys.evaluate import LeaveOneOutEvaluator
from recsys.metrics import ndcg_at_k, ranks_of_targets
from recsys.models import ItemKNNRecommender, SASRec, ScoreBlend, build_model
from recsys.models.base import SequentialRecommender
from recsys.models.blend import apply_repeat_prior, counted_scores, history_mask, repeat_rate

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    eval_every: int = 1
    patience: int = 5  # validations without improvement before stopping
    time_budget_s: float | None = None  # wall-clock cap on the whole run, evaluation included
    metric: str = "ndcg@10"
    seed: int = 0
    threads: int | None = None  # None: pick 1 or all cores each epoch by measured speed
    progress: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    best_valid: dict[str, float]
    best_epoch: int
    epochs_run: int
    seconds: float
    stopped: str
    history: list[dict[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ThreadPicker:
    """Chooses torch's thread count by measured speed at the start of every epoch.

    On a shared machine with more runnable processes than cores, OpenMP threads wait on each
    other at every op and two threads run ~3x slower than one; on a quiet machine two are
    faster. The first steps of each epoch alternate between the candidates (all of them real
    training steps) and the rest of the epoch uses the faster one.
    """

    PROBE_STEPS = 6

    def __init__(self, fixed: int | None) -> None:
        cores = os.cpu_count() or 1
        self.fixed = fixed
        self.candidates = [1, cores] if fixed is None and cores > 1 else [fixed or 1]
        self.chosen = self.candidates[-1]
        self.samples: dict[int, list[float]] = {}
        torch.set_num_threads(self.chosen)

    def _probing(self, step: int) -> bool:
        return len(self.candidates) > 1 and step < self.PROBE_STEPS * len(self.candidates)

    def before_step(self, step: int) -> float:
        if step == 0:
            self.samples = {c: [] for c in self.candidates}
        if self._probing(step):
            torch.set_num_threads(self.candidates[step % len(self.candidates)])
        elif len(self.candidates) > 1 and step == self.PROBE_STEPS * len(self.candidates):
            rates = {c: sum(v) for c, v in self.samples.items()}
            self.chosen = min(rates, key=lambda c: rates[c])
            torch.set_num_threads(self.chosen)
        return time.perf_counter()

    def after_step(self, step: int, started: float, targets: int) -> None:
        if self._probing(step):
            seconds_per_target = (time.perf_counter() - started) / max(targets, 1)
            self.samples[torch.get_num_threads()].append(seconds_per_target)


def train_model(
    model: SequentialRecommender,
    split: LeaveOneOutSplit,
    config: TrainConfig | None = None,
    max_len: int = 50,
) -> TrainResult:
    """Fit ``model`` on ``split.train``; keep the weights of the best validation epoch."""
    config = config or TrainConfig()
    threads = ThreadPicker(config.threads)
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    validate = LeaveOneOutEvaluator(split.valid_histories, split.valid_targets, max_len=max_len)
    if not model.trainable:
        model.fit(split.train)
        valid = validate(model)
        return TrainResult(valid, 0, 0, round(time.perf_counter() - started, 2), "fitted")

    model.fit(split.train)
    batches = NextItemBatches(split.train, max_len, config.batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    best_score, best_epoch, best_state = -math.inf, 0, copy.deepcopy(model.state_dict())
    best_valid: dict[str, float] = {}
    history: list[dict[str, float]] = []
    stale, stopped, epoch = 0, "epochs", 0
    epoch_seconds: list[float] = []
    bar = tqdm(total=config.epochs, desc=f"train {model.name}", unit="epoch", file=sys.stderr,
               disable=not config.progress)
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        total, steps = 0.0, 0
        for batch in batches.epoch(rng):
            step_start = threads.before_step(steps)
            optimizer.zero_grad(set_to_none=True)
            loss = model.calculate_loss(batch)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            threads.after_step(steps, step_start, int((batch.targets > 0).sum()))
            steps += 1
        record: dict[str, float] = {"epoch": epoch, "loss": round(total / max(steps, 1), 4),
                                    "threads": torch.get_num_threads()}
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            valid = validate(model)
            record.update({f"valid_{k}": v for k, v in valid.items() if "@" in k})
            if valid[config.metric] > best_score:
                best_score, best_epoch, best_valid = valid[config.metric], epoch, valid
                best_state = copy.deepcopy(model.state_dict())
                stale = 0
            else:
                stale += 1
        epoch_seconds.append(time.perf_counter() - epoch_start)
        record["seconds"] = round(epoch_seconds[-1], 2)
        history.append(record)
        logger.debug("%s epoch %s", model.name, record)
        bar.update(1)
        bar.set_postfix(loss=record["loss"], best=round(best_score, 4), at=best_epoch)
        if stale >= config.patience:
            stopped = "early stop"
            break
        elapsed = time.perf_counter() - started
        if config.time_budget_s and elapsed + max(epoch_seconds[-3:]) > config.time_budget_s:
            stopped = "time budget"
            break
    bar.close()
    model.load_state_dict(best_state)
    seconds = round(time.perf_counter() - started, 2)
    logger.info("%s: best %s %.4f at epoch %d of %d (%s, %.0f s)", model.name, config.metric,
                best_score, best_epoch, epoch, stopped, seconds)
    return TrainResult(best_valid, best_epoch, epoch, seconds, stopped, history)


def build_and_train(
    name: str,
    split: LeaveOneOutSplit,
    model_config: dict[str, Any] | None = None,
    train_config: TrainConfig | None = None,
    item_attributes: list[list[int]] | None = None,
    item_content: torch.Tensor | None = None,
) -> tuple[SequentialRecommender, TrainResult]:
    """Build a model by name and train it; SASRec fuses attributes/content when given.

    ``item_content`` is ``[n_items + 1, dim]`` (row 0 = padding), e.g. MiniLM vectors of the
    products, so that items unseen in training can still be scored from their content.

    ``"blend"`` trains a SASRec (``model_config``), fits item-KNN and tunes their mixing
    weight on validation.
    """
    config = dict(model_config or {})
    if name == ScoreBlend.name:
        return train_blend(split, config, train_config, item_attributes,
                           item_content=item_content)
    if item_attributes is not None and name == SASRec.name:
        config["n_attributes"] = max((max(a) for a in item_attributes if a), default=0)
        config["attributes_per_item"] = max((len(a) for a in item_attributes), default=0)
    if item_content is not None and name == SASRec.name:
        config["content_dim"] = int(item_content.shape[1])
    model = build_model(name, split.n_items, **config)
    if isinstance(model, SASRec) and item_attributes is not None:
        model.set_item_attributes(item_attributes)
    if isinstance(model, SASRec) and item_content is not None:
        model.set_item_content(torch.as_tensor(item_content, dtype=torch.float32))
    max_len = int(config.get("max_len", 50))
    return model, train_model(model, split, train_config, max_len=max_len)


BLEND_WEIGHTS = (0.0, 4.0, 8.0, 12.0, 16.0)
BLEND_FLOOR_QUANTILES = (0.0, 0.75, 0.9)


def train_blend(
    split: LeaveOneOutSplit,
    sasrec_config: dict[str, Any] | None = None,
    train_config: TrainConfig | None = None,
    item_attributes: list[list[int]] | None = None,
    itemknn_config: dict[str, Any] | None = None,
    item_content: torch.Tensor | None = None,
) -> tuple[ScoreBlend, TrainResult]:
    """SASRec + item-KNN, with the item-KNN weight and floor that maximise validation NDCG@10."""
    started = time.perf_counter()
    sasrec, sasrec_result = build_and_train(SASRec.name, split, sasrec_config, train_config,
                                            item_attributes, item_content)
    knn = ItemKNNRecommender(split.n_items, **(itemknn_config or {}))
    knn.fit(split.train)
    blend, valid, by_setting = blend_on_validation(sasrec, knn, split)
    history = [*sasrec_result.history, {"valid_ndcg@10_by_weight_floor": by_setting}]
    seconds = round(time.perf_counter() - started, 2)
    logger.info("blend: item-KNN weight %s floor %s, valid ndcg@10 %.4f (SASRec alone %.4f)",
                blend.config["weights"][1], blend.config["floors"][1], valid["ndcg@10"],
                sasrec_result.best_valid.get("ndcg@10", 0.0))
    return blend, TrainResult(valid, sasrec_result.best_epoch, sasrec_result.epochs_run,
                              seconds, sasrec_result.stopped, history)


def blend_on_validation(
    trained: SequentialRecommender, counted: SequentialRecommender, split: LeaveOneOutSplit
) -> tuple[ScoreBlend, dict[str, float], dict[str, float]]:
    """The blend with the best validation setting, its validation metrics, NDCG per setting."""
    max_len = int(trained.config.get("max_len", 50))
    repeats = repeat_rate(split.train)
    (weight, floor), by_setting = tune_blend([trained, counted], split.valid_histories,
                                             split.valid_targets, max_len, repeats=repeats)
    blend = ScoreBlend.from_models([trained, counted], [1.0, weight], [0.0, floor], repeats)
    valid = LeaveOneOutEvaluator(split.valid_histories, split.valid_targets, max_len=max_len)(
        blend)
    return blend, valid, by_setting


@torch.no_grad()
def tune_blend(
    models: list[SequentialRecommender],
    histories: list[list[int]],
    targets: list[int],
    max_len: int = 50,
    weights: tuple[float, ...] = BLEND_WEIGHTS,
    floor_quantiles: tuple[float, ...] = BLEND_FLOOR_QUANTILES,
    batch_size: int = 1024,
    repeats: float | None = None,
) -> tuple[tuple[float, float], dict[str, float]]:
    """``(weight, floor)`` of ``models[1]`` next to ``models[0]`` with the best NDCG@10.

    Floors are quantiles of the counted model's best score per history, so the grid does not
    depend on that model's scale. Each model scores the validation set once per pass.
    ``repeats`` is the blend's repeat prior (see ``apply_repeat_prior``), applied as served.
    """
    order = sorted(range(len(targets)), key=lambda n: len(histories[n]))  # narrow batches
    padded = pad_sequences([histories[n] for n in order], max_len, side="left")
    wanted = torch.tensor([targets[n] for n in order], dtype=torch.long)
    for model in models:
        model.eval()
    batches = []
    for start in range(0, len(wanted), batch_size):
        batch = padded[start: start + batch_size]
        batches.append((batch[:, int((batch != 0).any(dim=0).int().argmax()):],
                        wanted[start: start + batch_size]))
    row_max = torch.cat([counted_scores(models[1].full_sort_predict(b)).max(dim=1).values
                         for b, _ in batches])
    floors = sorted({round(float(torch.quantile(row_max, q)), 6) if q else 0.0
                     for q in floor_quantiles})
    ranks: dict[tuple[float, float], list[torch.Tensor]] = {
        (w, f): [] for w in weights for f in floors}
    for batch, batch_targets in batches:
        first = ScoreBlend.comparable_scores(models[0], models[0].full_sort_predict(batch))
        second = counted_scores(models[1].full_sort_predict(batch))
        second_max = second.max(dim=1, keepdim=True).values
        in_history = history_mask(batch, first.shape[1]) if repeats is not None else None
        for floor in floors:
            scaled = second / second_max.clamp(min=max(floor, 1e-12))
            for weight in weights:
                mixed = first + weight * scaled
                if in_history is not None:
                    mixed = apply_repeat_prior(mixed, in_history, repeats)
                mixed[:, 0] = float("-inf")
                ranks[(weight, floor)].append(ranks_of_targets(mixed, batch_targets))
    scores = {key: ndcg_at_k(torch.cat(r).numpy(), 10) for key, r in ranks.items()}
    best = max(scores, key=lambda key: scores[key])
    return best, {f"w={w} floor={f}": round(v, 5) for (w, f), v in scores.items()}
