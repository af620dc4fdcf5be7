"""NLU quality on the held-out set bench/nlu_eval.yml: intents, out-of-scope rejection.

Usage (runs in the Rasa virtualenv, it loads the trained model):
    .venv-rasa/bin/python bench/nlu.py --model var/models/<model>.tar.gz
        [--eval bench/nlu_eval.yml] [--confusions 15]

Prints ONE JSON line on stdout; progress goes to stderr. Sections:

* ``in_scope``: intent accuracy over every utterance whose label is not out_of_scope (a
  rejection counts as wrong), the accuracy of the top intent ignoring the fallback, and the
  false-rejection rate (predicted out_of_scope or nlu_fallback).
* ``out_of_scope``: share of out-of-scope utterances rejected (out_of_scope or nlu_fallback).
* ``per_intent``: precision, recall, F1 and support per label (nlu_fallback counts as
  out_of_scope), ``worst_confusions``: the most frequent (expected, predicted) pairs with
  examples.
* ``fallback_sweep``: the same three rates if the FallbackClassifier threshold were each of
  a few values (ambiguity threshold as in config.yml), computed from the intent ranking, so
  one trained model tells where to put the threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The model names custom components by module path (bot.nlu...), as `rasa` finds them from
# the project folder.
sys.path.insert(1, str(PROJECT_ROOT))
DEFAULT_EVAL = Path(__file__).resolve().parent / "nlu_eval.yml"
FALLBACK = "nlu_fallback"
OUT_OF_SCOPE = "out_of_scope"
REJECTED = {FALLBACK, OUT_OF_SCOPE}
TARGETS = {"intent_accuracy": 0.92, "oos_rejected": 0.85, "in_scope_false_rejection": 0.03}
SWEEP = [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_eval(path: Path) -> list[tuple[str, str]]:
    """(expected intent, utterance) pairs from an ``intent: [utterances]`` YAML file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: expected a mapping of intent -> list of utterances")
    pairs = [(intent, text) for intent, texts in data.items() for text in texts or []]
    odd = [f"{intent}: {text!r}" for intent, text in pairs if not isinstance(text, str)]
    if odd:  # YAML reads a bare no / yes / 1 as a boolean or number: quote it
        raise SystemExit(f"{path}: quote these utterances: {', '.join(odd)}")
    return pairs


def fallback_settings(config: Path) -> tuple[float, float]:
    """FallbackClassifier threshold and ambiguity threshold from a Rasa config file."""
    pipeline = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("pipeline") or []
    for component in pipeline:
        if component.get("name") == "FallbackClassifier":
            return float(component.get("threshold", 0.3)), float(
                component.get("ambiguity_threshold", 0.1))
    return 0.0, 0.0


def quiet_rasa() -> None:
    """Rasa logs every parse through structlog on stdout; keep stdout for the summary."""
    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )


async def parse_all(model: Path, texts: list[str]) -> tuple[list[dict[str, Any]], list[float]]:
    from rasa.core.agent import Agent

    started = time.perf_counter()
    agent = Agent.load(str(model))
    log(f"loaded {model.name} in {time.perf_counter() - started:.1f} s")
    results, latencies = [], []
    for i, text in enumerate(texts, 1):
        begin = time.perf_counter()
        results.append(await agent.parse_message(text))
        latencies.append((time.perf_counter() - begin) * 1000)
        if i % 100 == 0:
            log(f"parsed {i}/{len(texts)}")
    return results, latencies


def ranked(result: dict[str, Any]) -> list[tuple[str, float]]:
    """The model's intent ranking without the fallback the FallbackClassifier inserted."""
    return [(r["name"], float(r["confidence"])) for r in result.get("intent_ranking") or []
            if r["name"] != FALLBACK]


def rates(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    inside = [r for r in rows if r["expected"] != OUT_OF_SCOPE]
    outside = [r for r in rows if r["expected"] == OUT_OF_SCOPE]
    return {
        "intent_accuracy": round(sum(r[key] == r["expected"] for r in inside)
                                 / max(len(inside), 1), 4),
        "oos_rejected": round(sum(r[key] in REJECTED for r in outside) / max(len(outside), 1),
                              4),
        "in_scope_false_rejection": round(sum(r[key] in REJECTED for r in inside)
                                          / max(len(inside), 1), 4),
    }


def simulate(top: list[tuple[str, float]], threshold: float, ambiguity: float) -> str:
    if not top:
        return FALLBACK
    second = top[1][1] if len(top) > 1 else 0.0
    if top[0][1] < threshold or top[0][1] - second < ambiguity:
        return FALLBACK
    return top[0][0]


def per_intent(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    def label(name: str) -> str:
        return OUT_OF_SCOPE if name in REJECTED else name

    pairs = [(r["expected"], label(r["predicted"])) for r in rows]
    scores = {}
    for intent in sorted({e for e, _ in pairs}):
        tp = sum(e == p == intent for e, p in pairs)
        predicted = sum(p == intent for _, p in pairs)
        support = sum(e == intent for e, _ in pairs)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[intent] = {"precision": round(precision, 3), "recall": round(recall, 3),
                          "f1": round(f1, 3), "support": support}
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="trained Rasa model .tar.gz")
    parser.add_argument("--eval", type=Path, default=DEFAULT_EVAL)
    parser.add_argument("--config", type=Path, default=PROJECT_ROOT / "config.yml",
                        help="where the fallback thresholds for the sweep are read")
    parser.add_argument("--confusions", type=int, default=15)
    parser.add_argument("--errors", action="store_true",
                        help="also list every wrong prediction (with its top two intents)")
    args = parser.parse_args()
    if not args.model.is_file():
        raise SystemExit(f"model {args.model} not found")

    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    quiet_rasa()
    examples = load_eval(args.eval)
    results, latencies = asyncio.run(parse_all(args.model, [t for _, t in examples]))

    rows = []
    for (expected, text), result in zip(examples, results, strict=True):
        top = ranked(result)
        rows.append({
            "expected": expected, "text": text,
            "predicted": (result.get("intent") or {}).get("name") or FALLBACK,
            "top": top[0][0] if top else FALLBACK,
            "confidence": round(top[0][1], 3) if top else 0.0,
            "ranking": top[:2],
        })

    confusions: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in rows:
        if r["predicted"] != r["expected"] and not (
                r["expected"] == OUT_OF_SCOPE and r["predicted"] in REJECTED):
            confusions[(r["expected"], r["predicted"])].append(
                f"{r['text']} ({r['confidence']:.2f})")
    worst = sorted(confusions.items(), key=lambda item: -len(item[1]))[: args.confusions]

    threshold, ambiguity = fallback_settings(args.config)
    sweep = {}
    for value in SWEEP:
        for r in rows:
            r["simulated"] = simulate(r["ranking"], value, ambiguity)
        sweep[str(value)] = rates(rows, "simulated")

    f1 = per_intent(rows)
    at_model = rates(rows, "predicted")
    latencies.sort()
    summary = {
        "model": args.model.name,
        "eval_file": str(args.eval.relative_to(PROJECT_ROOT) if args.eval.is_absolute()
                         and args.eval.is_relative_to(PROJECT_ROOT) else args.eval),
        "utterances": len(rows),
        "in_scope_utterances": sum(r["expected"] != OUT_OF_SCOPE for r in rows),
        "oos_utterances": sum(r["expected"] == OUT_OF_SCOPE for r in rows),
        **at_model,
        "top_intent_accuracy_ignoring_fallback": rates(rows, "top")["intent_accuracy"],
        "targets": TARGETS,
        "meets_targets": (at_model["intent_accuracy"] >= TARGETS["intent_accuracy"]
                          and at_model["oos_rejected"] >= TARGETS["oos_rejected"]
                          and at_model["in_scope_false_rejection"]
                          <= TARGETS["in_scope_false_rejection"]),
        "fallback": {"threshold": threshold, "ambiguity_threshold": ambiguity},
        "fallback_sweep": sweep,
        "macro_f1": round(sum(s["f1"] for s in f1.values()) / max(len(f1), 1), 4),
        "weakest_intents": sorted(((k, v["f1"]) for k, v in f1.items()),
                                  key=lambda kv: kv[1])[:10],
        "worst_confusions": [{"expected": e, "predicted": p, "count": len(texts),
                              "examples": texts[:3]} for (e, p), texts in worst],
        "per_intent": f1,
        "parse_ms": {"p50": round(latencies[len(latencies) // 2], 1),
                     "p95": round(latencies[int(len(latencies) * 0.95)], 1)},
        "predictions_by_intent": dict(Counter(r["predicted"] for r in rows).most_common()),
    }
    if args.errors:
        summary["errors"] = [
            {"expected": r["expected"], "predicted": r["predicted"], "text": r["text"],
             "ranking": [[n, round(c, 3)] for n, c in r["ranking"]]}
            for r in rows if r["predicted"] != r["expected"]
            and not (r["expected"] == OUT_OF_SCOPE and r["predicted"] in REJECTED)]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
