"""A demo recommender for a shop with no interaction log yet: SYNTHETIC sessions, real model.

`shopbot run` calls this when the store has no ``recommender.pt``: it simulates shoppers over
the catalog (`recsys.simulator`), trains SASRec on those sessions under a short time budget
and saves the model marked ``synthetic: true``. A real shop replaces it by training on its
own event log: ``shopbot recsys train var/events.db --out <store>/recommender.pt``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recsys.artifacts import save_model
from recsys.data import leave_one_out, sequences_from_events
from recsys.evaluate import LeaveOneOutEvaluator
from recsys.simulator import SimulationConfig, simulate_events
from recsys.trainer import TrainConfig, build_and_train
from retrieval.catalog import Product

logger = logging.getLogger(__name__)

DEMO_MODEL_CONFIG = {"hidden": 64, "blocks": 2, "heads": 1, "max_len": 50, "dropout": 0.3,
                     "negatives": 1024}


def train_demo_recommender(
    products: Sequence[Product],
    out: Path,
    shoppers: int = 4000,
    time_budget_s: float = 90.0,
    seed: int = 7,
) -> dict[str, Any]:
    """Simulate, train, save; returns what was done (and the synthetic metrics)."""
    started = time.perf_counter()
    events = simulate_events(products, SimulationConfig(shoppers=shoppers, seed=seed))
    rows = [(e.sender_id, e.product_id, str(e.event_type), e.ts) for e in events]
    dataset = sequences_from_events(rows, name="simulated")
    split = leave_one_out(dataset)
    train_config = TrainConfig(epochs=200, lr=2e-3, patience=2, eval_every=2,
                               time_budget_s=time_budget_s, seed=seed, progress=False)
    model, result = build_and_train("sasrec", split, dict(DEMO_MODEL_CONFIG), train_config)
    test = LeaveOneOutEvaluator(split.test_histories, split.test_targets,
                                max_len=DEMO_MODEL_CONFIG["max_len"], name="test")(model)
    summary = {
        "synthetic": True, "shoppers": shoppers, "events": len(events),
        "items": len(dataset.vocab), "epochs": result.epochs_run, "valid": result.best_valid,
        "test": test, "seconds": round(time.perf_counter() - started, 1),
    }
    save_model(model, dataset.vocab, out, meta=summary)
    logger.info("demo recommender (synthetic sessions) saved to %s: %s", out, summary)
    return summary
