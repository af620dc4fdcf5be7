"""Sequential recommender benchmark: accuracy on Amazon 5-core data and serving latency at 44k.

Usage:
    .venv/bin/python bench/recsys.py [--datasets beauty,sports,toys]
        [--models popular,itemknn,sasrec_attr,blend] [--time-budget 900] [--epochs 200]
        [--negatives 0] [--lr 0.001] [--skip-latency] [--latency-queries 500]
        [--store var/store/catalog-products] [--save-models] [--out var/bench/recsys.json]

Prints ONE JSON line on stdout (progress on stderr) and writes it to ``--out``. Sections:

* ``datasets.<name>.<model>``: leave-one-out HR@10 / NDCG@10 on test (last item) ranking
  against ALL items (history not masked, same for every model), the validation values used
  for early stopping, training seconds, epochs, the exact model and training config.
  ``sasrec_attr`` fuses the ``*_item2attributes.json`` attributes into item vectors;
  ``blend`` mixes the best SASRec variant of the run with item-KNN (weight tuned on
  validation; its training seconds are the sum of both) and applies the repeat prior learned
  from the training sequences (how often a next item repeats a history item: never, in these
  files). ``*_history_masked`` repeat the test
  with the user's history items removed from the ranking (RecBole-style), for comparison.
* ``latency``: ``Recommender.recommend(history, k=10)`` p50/p95 over a 44,441-item catalog
  (the real catalog's ids and MiniLM vectors when the store exists, random otherwise), for a
  SASRec with random weights, the same with content fusion on a changed catalog, item-KNN
  fitted on simulated sequences, the model-less content fallback, and ``similar_items``.

The machine is shared: training seconds include other users' load, reported in ``load``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from recsys.artifacts import MODELS_DIR, TrainedModel, save_model  # noqa: E402
from recsys.data import (  # noqa: E402
    ItemVocab,
    leave_one_out,
    load_amazon,
    load_item_attributes,
)
from recsys.evaluate import LeaveOneOutEvaluator  # noqa: E402
from recsys.models import ItemKNNRecommender, SASRec, ScoreBlend  # noqa: E402
from recsys.serving import Recommender  # noqa: E402
from recsys.trainer import (  # noqa: E402
    TrainConfig,
    TrainResult,
    blend_on_validation,
    build_and_train,
)

INTERACTIONS = PROJECT_ROOT.parent / "shared" / "data" / "interactions"
DATASET_FILES = {
    "beauty": "amazon_beauty",
    "sports": "amazon_sports_and_outdoors",
    "toys": "amazon_toys_and_games",
}
DEFAULT_STORE = PROJECT_ROOT / "var" / "store" / "catalog-products"
DEFAULT_OUT = PROJECT_ROOT / "var" / "bench" / "recsys.json"
TARGETS = {"beauty_ndcg@10": 0.050, "beauty_hr@10": 0.095, "train_minutes": 20.0,
           "latency_p95_ms_44k": 20.0}
CATALOG_SIZE = 44441
K = 10

_STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def stats_ms(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"n": int(arr.size), "p50_ms": round(float(np.percentile(arr, 50)), 3),
            "p95_ms": round(float(np.percentile(arr, 95)), 3),
            "max_ms": round(float(arr.max()), 3)}


# --------------------------------------------------------------------------- accuracy


def sasrec_config(args: argparse.Namespace) -> dict[str, Any]:
    return {"hidden": 64, "blocks": 2, "heads": 1, "max_len": 50, "dropout": args.dropout,
            "negatives": args.negatives}


def run_dataset(name: str, args: argparse.Namespace) -> dict[str, Any]:
    stem = DATASET_FILES[name]
    dataset = load_amazon(args.interactions / f"{stem}.txt")
    split = leave_one_out(dataset)
    log(f"{name}: {dataset.summary()}")
    out: dict[str, Any] = {"data": dataset.summary()}
    test = LeaveOneOutEvaluator(split.test_histories, split.test_targets, name="test")
    test_masked = LeaveOneOutEvaluator(split.test_histories, split.test_targets, name="test",
                                       exclude_history=True)
    trained: dict[str, tuple[Any, Any]] = {}
    for model_name in args.models:
        if model_name == "blend" and "itemknn" in trained and any(
                m.startswith("sasrec") for m in trained):
            model, result, train_config = blend_of_trained(trained, split)
            entry = describe(model, result, test(model), test_masked(model), train_config, [])
            entry["parts"] = result.history[-1]
            out[model_name] = entry
            log(f"{name}/blend: test HR@10 {entry['test_hr@10']:.4f} "
                f"NDCG@10 {entry['test_ndcg@10']:.4f} {entry['parts']}")
            if args.save_models:
                path = save_model(model, dataset.vocab, MODELS_DIR / f"{stem}-blend.pt",
                                  meta={"valid": result.best_valid})
                entry["model_file"] = str(path.relative_to(PROJECT_ROOT))
            continue
        base = "sasrec" if model_name.startswith("sasrec") else model_name
        model_config = sasrec_config(args) if base == "sasrec" else {}
        attributes = None
        if model_name == "sasrec_attr":
            attributes = load_item_attributes(
                args.interactions / f"{stem}_item2attributes.json", dataset.vocab)
        train_config = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                                   time_budget_s=args.time_budget, patience=args.patience,
                                   eval_every=args.eval_every, seed=args.seed)
        load_before = load_average()
        model, result = build_and_train(base, split, model_config, train_config, attributes)
        trained[model_name] = (model, result)
        metrics = test(model)
        entry = describe(model, result, metrics, test_masked(model), train_config, load_before)
        out[model_name] = entry
        log(f"{name}/{model_name}: test HR@10 {metrics['hr@10']:.4f} "
            f"NDCG@10 {metrics['ndcg@10']:.4f} ({result.seconds:.0f}s, "
            f"{result.epochs_run} epochs, {result.stopped})")
        if args.save_models:
            path = save_model(model, dataset.vocab, MODELS_DIR / f"{stem}-{model_name}.pt",
                              meta={"test": metrics, "valid": result.best_valid})
            entry["model_file"] = str(path.relative_to(PROJECT_ROOT))
    return out


def describe(model: Any, result: Any, metrics: dict[str, float], masked: dict[str, float],
             train_config: TrainConfig, load_before: list[float]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "test_hr@10": metrics["hr@10"], "test_ndcg@10": metrics["ndcg@10"],
        "valid_hr@10": result.best_valid.get("hr@10"),
        "valid_ndcg@10": result.best_valid.get("ndcg@10"),
        "test_hr@10_history_masked": masked["hr@10"],
        "test_ndcg@10_history_masked": masked["ndcg@10"],
        "train_seconds": result.seconds, "epochs": result.epochs_run,
        "best_epoch": result.best_epoch, "stopped": result.stopped,
        "seconds_per_epoch": round(result.seconds / result.epochs_run, 1)
        if result.epochs_run else None,
        "load_before_after": [load_before, load_average()],
        "config": {"model": dict(model.config),
                   "train": train_config.as_dict() if model.trainable or model.name == "blend"
                   else None},
    }
    if model.trainable:
        entry["curve"] = [{k: v for k, v in h.items() if k in
                           ("epoch", "loss", "valid_ndcg@10", "seconds")}
                          for h in result.history]
    return entry


def blend_of_trained(trained: dict[str, tuple[Any, Any]], split: Any) -> tuple[Any, Any, Any]:
    """Mix the best SASRec variant of this run with its item-KNN (weight tuned on valid)."""
    started = time.perf_counter()
    sasrec_name = max((m for m in trained if m.startswith("sasrec")),
                      key=lambda m: trained[m][1].best_valid.get("ndcg@10", 0.0))
    sasrec, sasrec_result = trained[sasrec_name]
    knn, knn_result = trained["itemknn"]
    blend, valid, by_setting = blend_on_validation(sasrec, knn, split)
    seconds = sasrec_result.seconds + knn_result.seconds + time.perf_counter() - started
    result = TrainResult(valid, sasrec_result.best_epoch, sasrec_result.epochs_run,
                         round(seconds, 2), sasrec_result.stopped,
                         [{"sasrec": sasrec_name, "itemknn_weight": blend.config["weights"][1],
                           "itemknn_floor": blend.config["floors"][1],
                           "valid_ndcg@10_by_weight_floor": by_setting}])
    return blend, result, TrainConfig()


# --------------------------------------------------------------------------- latency


def catalog_for_latency(store: Path) -> tuple[list[str], np.ndarray, str]:
    from retrieval.versions import newest_index_dir

    index = newest_index_dir(store)
    facets, vectors = index / "facets.npz", index / "vectors.npy"
    if facets.is_file() and vectors.is_file():
        ids = [str(i) for i in np.load(facets, allow_pickle=False)["ids"]]
        matrix = np.load(vectors)
        if len(ids) == len(matrix):
            return ids, matrix.astype(np.float32), f"real catalog ({store})"
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((CATALOG_SIZE, 384)).astype(np.float32)
    return [str(10000 + i) for i in range(CATALOG_SIZE)], matrix, "synthetic ids and vectors"


def time_calls(fn: Any, inputs: list[Any]) -> dict[str, float]:
    for item in inputs[:20]:
        fn(item)
    timings = []
    for item in inputs:
        t0 = time.perf_counter()
        fn(item)
        timings.append((time.perf_counter() - t0) * 1000.0)
    return stats_ms(timings)


def run_latency(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(1)  # one request per thread, as in the action server
    ids, vectors, source = catalog_for_latency(args.store)
    n = len(ids)
    rng = np.random.default_rng(1)
    histories = [[ids[j] for j in rng.integers(0, n, int(rng.integers(1, 30)))]
                 for _ in range(args.latency_queries)]
    popularity = rng.zipf(1.5, n).astype(np.float64)
    vocab = ItemVocab(ids)
    out: dict[str, Any] = {"catalog_items": n, "catalog": source, "k": K, "torch_threads": 1}

    torch.manual_seed(0)
    sasrec = SASRec(n, hidden=64, blocks=2, heads=1, max_len=50).eval()
    recommender = Recommender(ids, TrainedModel(sasrec, vocab, vocab.fingerprint()), vectors,
                              popularity)
    out["sasrec_random_weights"] = time_calls(lambda h: recommender.recommend(h, K), histories)
    log(f"latency sasrec: {out['sasrec_random_weights']}")

    # Trained on 90% of today's catalog, with content fusion: 10% of items are new.
    known = ids[: int(n * 0.9)]
    fused = SASRec(len(known), hidden=64, blocks=2, heads=1, max_len=50,
                   content_dim=vectors.shape[1]).eval()
    fused_vocab = ItemVocab(known)
    fused_recommender = Recommender(
        ids, TrainedModel(fused, fused_vocab, fused_vocab.fingerprint()), vectors, popularity)
    out["sasrec_content_fusion_changed_catalog"] = time_calls(
        lambda h: fused_recommender.recommend(h, K), histories)
    log(f"latency fused: {out['sasrec_content_fusion_changed_catalog']}")

    walks = [[int(x) for x in (rng.integers(1, n + 1) + np.arange(int(rng.integers(3, 12)))
                               * rng.integers(1, 4)) % n + 1] for _ in range(60000)]
    knn = ItemKNNRecommender(n)
    knn.fit(walks)
    knn_recommender = Recommender(ids, TrainedModel(knn.eval(), vocab, vocab.fingerprint()),
                                  vectors, popularity)
    out["itemknn_simulated"] = time_calls(lambda h: knn_recommender.recommend(h, K), histories)
    log(f"latency itemknn: {out['itemknn_simulated']}")
    blend = ScoreBlend.from_models([sasrec, knn], [1.0, 8.0])
    blend_recommender = Recommender(ids, TrainedModel(blend, vocab, vocab.fingerprint()),
                                    vectors, popularity)
    out["sasrec_blend_itemknn"] = time_calls(lambda h: blend_recommender.recommend(h, K),
                                             histories)
    log(f"latency blend: {out['sasrec_blend_itemknn']}")

    cold = Recommender(ids, None, vectors, popularity)
    out["content_fallback_no_model"] = time_calls(lambda h: cold.recommend(h, K), histories)
    out["popular_fallback_empty_history"] = time_calls(lambda h: cold.recommend([], K),
                                                       histories[:100])
    out["similar_items"] = time_calls(lambda h: knn_recommender.similar_items(h[-1], K),
                                      histories)
    allowed = set(ids[::3])
    out["sasrec_with_allowed_set"] = time_calls(
        lambda h: recommender.recommend(h, K, allowed=allowed), histories)
    log(f"latency others: { {k: v['p95_ms'] for k, v in out.items() if isinstance(v, dict)} }")
    return out


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="beauty,sports,toys")
    parser.add_argument("--models", default="popular,itemknn,sasrec_attr,blend",
                        help="popular, itemknn, sasrec, sasrec_attr (attribute fusion), blend "
                             "(best SASRec variant of this run + item-KNN)")
    parser.add_argument("--time-budget", type=float, default=1020.0,
                        help="seconds of SASRec training per model (validation included); "
                             "the blend adds item-KNN fitting and weight tuning")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--negatives", type=int, default=0, help="0 = full softmax")
    parser.add_argument("--patience", type=int, default=3, help="validations without gain")
    parser.add_argument("--eval-every", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--latency-queries", type=int, default=500)
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    parser.add_argument("--save-models", action="store_true",
                        help="write each trained model to var/models/recsys/")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--interactions", type=Path, default=INTERACTIONS,
                        help="folder with the amazon_*.txt files")
    args = parser.parse_args()
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in datasets if d not in DATASET_FILES]
    if unknown:
        parser.error(f"unknown datasets {unknown}; known: {sorted(DATASET_FILES)}")

    summary: dict[str, Any] = {"targets": TARGETS, "cpu_count": os.cpu_count(),
                               "torch_threads_training": "auto: 1 or 2, measured each epoch",
                               "load_at_start": load_average(),
                               "protocol": "leave-one-out, full ranking over all items, "
                                           "history not masked, ties ranked pessimistically",
                               "datasets": {}}
    if not args.skip_latency:
        summary["latency"] = run_latency(args)
    for name in datasets:
        if not (args.interactions / f"{DATASET_FILES[name]}.txt").is_file():
            summary["datasets"][name] = {"skipped": f"not found in {args.interactions}"}
            continue
        summary["datasets"][name] = run_dataset(name, args)
    beauty = summary["datasets"].get("beauty", {})
    best = max((v for k, v in beauty.items() if k.startswith("sasrec") or k == "blend"),
               key=lambda v: v["valid_ndcg@10"] or 0.0, default=None)  # chosen on valid
    if best is not None:
        summary["beauty_meets_targets"] = {
            "ndcg@10": best["test_ndcg@10"] >= TARGETS["beauty_ndcg@10"],
            "hr@10": best["test_hr@10"] >= TARGETS["beauty_hr@10"],
            "train_minutes": best["train_seconds"] / 60 <= TARGETS["train_minutes"],
        }
    if "latency" in summary:
        summary["latency_meets_target"] = all(
            v["p95_ms"] <= TARGETS["latency_p95_ms_44k"]
            for k, v in summary["latency"].items() if k.startswith("sasrec"))
    summary["load_at_end"] = load_average()
    summary["total_seconds"] = round(time.perf_counter() - _STARTED, 1)
    line = json.dumps(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(line + "\n")
    print(line, flush=True)


if __name__ == "__main__":
    main()
