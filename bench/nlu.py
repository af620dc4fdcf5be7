"""NLU quality of a trained model: intents, out-of-scope rejection, entities, parse latency.

Usage (runs in the Rasa virtualenv, it loads the trained model):
    .venv-rasa/bin/python bench/nlu.py --model var/models/<model>.tar.gz
        [--eval bench/nlu_eval.yml --eval bench/nlu_heldout_written.yml ...]
        [--entities bench/nlu_entities_eval.yml] [--confusions 15] [--errors]
    .venv-rasa/bin/python bench/nlu.py --train [--save-model /tmp/m.tar.gz] [--eval ...]
        --train: `rasa train` the repo's config.yml, domain.yml and bot/data into a temporary
        folder first (as shopbot's train_bot does, but with an empty Rasa training cache so the
        time is that of a cold training), time it and evaluate that model.

Eval files map ``intent: [utterances]``; utterances may carry Rasa entity markup
(``[red](colour) [tops](article_type)``), which is scored as entities and removed before
parsing. Prints ONE JSON line on stdout (and writes it to ``--out``, default
var/bench/nlu.json, where `shopbot report` reads it); progress (and rasa's output) goes to
stderr.

* ``training``: seconds `rasa train` took (only with --train).
* ``parse_ms``: p50 / p95 time of one ``Agent.parse_message`` over every evaluated message.
* ``evals``: one section per eval file, under its name (file stem):
  * intent accuracy over utterances not labelled out_of_scope (a rejection counts as wrong),
    ``top_intent_accuracy_ignoring_fallback``, ``in_scope_false_rejection`` (predicted
    out_of_scope or nlu_fallback), ``oos_rejected`` (share of out_of_scope rejected);
  * ``per_intent`` precision/recall/F1/support (nlu_fallback counts as out_of_scope),
    ``worst_confusions`` with examples, ``confusion`` (every expected -> predicted count);
  * ``fallback_sweep``: the three rates if the FallbackClassifier threshold were each of a
    few values (ambiguity threshold as in config.yml), from the intent ranking, and
    ``best_threshold``: the sweep value with the fewest messages handled wrongly (in-scope
    ones not given their intent plus out-of-scope ones not rejected; ties: the lower);
  * ``entities`` when the file has annotations.
* ``entities``: per-entity precision/recall/F1 over every annotated utterance evaluated
  (exact span and type; ``overlap_f1`` counts a predicted span overlapping a gold span of
  the same type as right).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The model names custom components by module path (bot.nlu...), as `rasa` finds them from
# the project folder.
sys.path.insert(1, str(PROJECT_ROOT))
BENCH = Path(__file__).resolve().parent
DEFAULT_EVAL = BENCH / "nlu_eval.yml"
DEFAULT_ENTITIES = BENCH / "nlu_entities_eval.yml"
DEFAULT_OUT = PROJECT_ROOT / "var" / "bench" / "nlu.json"
FALLBACK = "nlu_fallback"
OUT_OF_SCOPE = "out_of_scope"
REJECTED = {FALLBACK, OUT_OF_SCOPE}
# The aims on third-party text.
TARGETS = {"intent_accuracy": 0.94, "oos_rejected": 0.92, "in_scope_false_rejection": 0.02}
AMBIGUITY_SWEEP = [0.0, 0.03, 0.05, 0.1]
SWEEP = [0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8]
MARKUP = re.compile(r"\[(?P<text>[^\]]+)\](?:\((?P<entity>[^)]+)\)|\{(?P<json>[^}]+)\})")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def strip_markup(annotated: str) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and gold entities ({entity, start, end, text}) of an annotated utterance."""
    plain, spans, last = [], [], 0
    length = 0
    for match in MARKUP.finditer(annotated):
        before = annotated[last:match.start()]
        plain.append(before)
        length += len(before)
        entity = match.group("entity")
        if entity is None:
            entity = json.loads("{" + match.group("json") + "}")["entity"]
        entity = entity.split(":")[0]  # [1500](price:1500) synonym form
        text = match.group("text")
        spans.append({"entity": entity, "start": length, "end": length + len(text),
                      "text": text})
        plain.append(text)
        length += len(text)
        last = match.end()
    plain.append(annotated[last:])
    return "".join(plain), spans


def load_eval(path: Path) -> list[dict[str, Any]]:
    """Examples {expected, text, gold entities or None} from an ``intent: [utterances]`` file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: expected a mapping of intent -> list of utterances")
    pairs = [(intent, text) for intent, texts in data.items() for text in texts or []]
    odd = [f"{intent}: {text!r}" for intent, text in pairs if not isinstance(text, str)]
    if odd:  # YAML reads a bare no / yes / 1 as a boolean or number: quote it
        raise SystemExit(f"{path}: quote these utterances: {', '.join(odd)}")
    examples = []
    for intent, annotated in pairs:
        text, spans = strip_markup(annotated)
        examples.append({"expected": intent, "text": text,
                         "gold": spans if MARKUP.search(annotated) else None})
    return examples


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


def train(config: Path, out_dir: Path) -> tuple[Path, float]:
    """`rasa train` with the repo's files into out_dir, as shopbot.stack.train_bot runs it."""
    rasa = Path(sys.executable).parent / "rasa"
    name = "nlu-bench"
    command = [str(rasa), "train", "--config", str(config),
               "--domain", str(PROJECT_ROOT / "domain.yml"),
               "--data", str(PROJECT_ROOT / "bot" / "data"),
               "--out", str(out_dir), "--fixed-model-name", name]
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT),
                                                     os.environ.get("PYTHONPATH")) if p),
           "RASA_TELEMETRY_ENABLED": "false", "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
           "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore",
           # a fresh training cache: time a cold training, reuse nothing from earlier runs
           "RASA_CACHE_DIRECTORY": str(out_dir / "cache")}
    log(f"training: {' '.join(command)}")
    started = time.perf_counter()
    log_path = out_dir / "train.log"
    with log_path.open("wb") as handle:
        completed = subprocess.run(command, cwd=PROJECT_ROOT, env=env, stdout=handle,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    model = out_dir / f"{name}.tar.gz"
    if completed.returncode != 0 or not model.exists():
        log(log_path.read_text(encoding="utf-8", errors="replace")[-3000:])
        raise SystemExit(f"rasa train failed (exit {completed.returncode})")
    log(f"trained in {seconds:.0f} s")
    return model, seconds


async def parse_all(model: Path, texts: list[str]) -> tuple[dict[str, dict[str, Any]],
                                                            list[float]]:
    from rasa.core.agent import Agent

    started = time.perf_counter()
    agent = Agent.load(str(model))
    log(f"loaded {model.name} in {time.perf_counter() - started:.1f} s")
    results, latencies = {}, []
    for i, text in enumerate(texts, 1):
        begin = time.perf_counter()
        results[text] = await agent.parse_message(text)
        latencies.append((time.perf_counter() - begin) * 1000)
        if i % 200 == 0:
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


def prf(tp: int, predicted: int, support: int) -> dict[str, float]:
    precision = tp / predicted if predicted else 0.0
    recall = tp / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3)}


def per_intent(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    def label(name: str) -> str:
        return OUT_OF_SCOPE if name in REJECTED else name

    pairs = [(r["expected"], label(r["predicted"])) for r in rows]
    scores = {}
    for intent in sorted({e for e, _ in pairs}):
        tp = sum(e == p == intent for e, p in pairs)
        support = sum(e == intent for e, _ in pairs)
        scores[intent] = {**prf(tp, sum(p == intent for _, p in pairs), support),
                          "support": support}
    return scores


def entity_scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-entity P/R/F1 on exact (type, start, end) spans, plus overlap F1 and micro F1."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    misses = []
    for r in rows:
        gold = {(g["entity"], g["start"], g["end"]) for g in r["gold"]}
        pred = {(p["entity"], p["start"], p["end"]) for p in r["entities"]}
        for entity in {e for e, _, _ in gold | pred}:
            g = {s for s in gold if s[0] == entity}
            p = {s for s in pred if s[0] == entity}
            counts[entity]["tp"] += len(g & p)
            counts[entity]["gold"] += len(g)
            counts[entity]["pred"] += len(p)
            counts[entity]["overlap_tp_gold"] += sum(
                any(a[1] < b[2] and b[1] < a[2] for b in p) for a in g)
            counts[entity]["overlap_tp_pred"] += sum(
                any(a[1] < b[2] and b[1] < a[2] for b in g) for a in p)
        if gold != pred:
            misses.append({"text": r["text"],
                           "gold": sorted(f"{r['text'][s:e]}={t}" for t, s, e in gold),
                           "predicted": sorted(f"{r['text'][s:e]}={t}" for t, s, e in pred)})
    per_entity = {}
    for entity, c in sorted(counts.items()):
        overlap_p = c["overlap_tp_pred"] / c["pred"] if c["pred"] else 0.0
        overlap_r = c["overlap_tp_gold"] / c["gold"] if c["gold"] else 0.0
        per_entity[entity] = {
            **prf(c["tp"], c["pred"], c["gold"]), "support": c["gold"],
            "overlap_f1": round(2 * overlap_p * overlap_r / (overlap_p + overlap_r), 3)
            if overlap_p + overlap_r else 0.0}
    total = Counter()
    for c in counts.values():
        total.update(c)
    return {"utterances": len(rows),
            "micro": {**prf(total["tp"], total["pred"], total["gold"]),
                      "support": total["gold"]},
            "per_entity": per_entity, "errors": misses[:15]}


def evaluate_file(examples: list[dict[str, Any]], results: dict[str, dict[str, Any]],
                  threshold: float, ambiguity: float, confusions: int, errors: bool
                  ) -> dict[str, Any]:
    rows = []
    for example in examples:
        result = results[example["text"]]
        top = ranked(result)
        rows.append({
            **example,
            "predicted": (result.get("intent") or {}).get("name") or FALLBACK,
            "top": top[0][0] if top else FALLBACK,
            "confidence": round(top[0][1], 3) if top else 0.0,
            "ranking": top[:2],
            "entities": result.get("entities") or [],
        })

    wrong: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in rows:
        if r["predicted"] != r["expected"] and not (
                r["expected"] == OUT_OF_SCOPE and r["predicted"] in REJECTED):
            wrong[(r["expected"], r["predicted"])].append(f"{r['text']} ({r['confidence']:.2f})")
    worst = sorted(wrong.items(), key=lambda item: -len(item[1]))[:confusions]

    sweep = {}
    for value in SWEEP:
        for r in rows:
            r["simulated"] = simulate(r["ranking"], value, ambiguity)
        sweep[str(value)] = rates(rows, "simulated")
    inside = sum(r["expected"] != OUT_OF_SCOPE for r in rows)
    outside = len(rows) - inside
    # fewest messages handled wrongly: in-scope not given their intent + out-of-scope let in
    best = min(sweep, key=lambda k: (
        round((1 - sweep[k]["intent_accuracy"]) * inside + (1 - sweep[k]["oos_rejected"])
              * outside), float(k)))

    # The same at the configured cut, for a few ambiguity thresholds (top two intents
    # closer than this are rejected; actions/fallback.py then asks between them).
    ambiguity_sweep = {}
    for value in AMBIGUITY_SWEEP:
        for r in rows:
            r["simulated"] = simulate(r["ranking"], threshold, value)
        ambiguity_sweep[str(value)] = rates(rows, "simulated")

    f1 = per_intent(rows)
    at_model: dict[str, float | None] = {**rates(rows, "predicted")}
    has_oos = any(r["expected"] == OUT_OF_SCOPE for r in rows)
    if not has_oos:
        at_model["oos_rejected"] = None
    section: dict[str, Any] = {
        "utterances": len(rows),
        "in_scope_utterances": sum(r["expected"] != OUT_OF_SCOPE for r in rows),
        "oos_utterances": sum(r["expected"] == OUT_OF_SCOPE for r in rows),
        **at_model,
        "top_intent_accuracy_ignoring_fallback": rates(rows, "top")["intent_accuracy"],
        "meets_targets": (at_model["intent_accuracy"] >= TARGETS["intent_accuracy"]
                          and (not has_oos or at_model["oos_rejected"] >= TARGETS["oos_rejected"])
                          and at_model["in_scope_false_rejection"]
                          <= TARGETS["in_scope_false_rejection"]),
        "fallback_sweep": sweep,
        "ambiguity_sweep": ambiguity_sweep,
        "best_threshold": float(best),
        "macro_f1": round(sum(s["f1"] for s in f1.values()) / max(len(f1), 1), 4),
        "weakest_intents": sorted(((k, v["f1"]) for k, v in f1.items()),
                                  key=lambda kv: kv[1])[:10],
        "worst_confusions": [{"expected": e, "predicted": p, "count": len(texts),
                              "examples": texts[:3]} for (e, p), texts in worst],
        "per_intent": f1,
        "predictions_by_intent": dict(Counter(r["predicted"] for r in rows).most_common()),
        "confusion": confusion_matrix(rows),
    }
    annotated = [r for r in rows if r["gold"] is not None]
    if annotated:
        section["entities"] = entity_scores(annotated)
    if errors:
        section["errors"] = [
            {"expected": r["expected"], "predicted": r["predicted"], "text": r["text"],
             "ranking": [[n, round(c, 3)] for n, c in r["ranking"]]}
            for r in rows if r["predicted"] != r["expected"]
            and not (r["expected"] == OUT_OF_SCOPE and r["predicted"] in REJECTED)]
    return section


def confusion_matrix(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """``{expected: {predicted: count}}`` over every utterance (a rejection, nlu_fallback,
    is its own column), for `shopbot report`."""
    matrix: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows:
        matrix[r["expected"]][r["predicted"]] += 1
    return {expected: dict(counts) for expected, counts in sorted(matrix.items())}


def display(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="trained Rasa model .tar.gz")
    parser.add_argument("--train", action="store_true",
                        help="train a model from the repo's data first (timed) and evaluate it")
    parser.add_argument("--save-model", type=Path,
                        help="with --train: keep the trained model at this path")
    parser.add_argument("--eval", type=Path, action="append",
                        help=f"eval file (repeatable; default {display(DEFAULT_EVAL)})")
    parser.add_argument("--entities", type=Path, default=DEFAULT_ENTITIES,
                        help="annotated product searches for entity F1 ('' to skip)")
    parser.add_argument("--config", type=Path, default=PROJECT_ROOT / "config.yml",
                        help="the config trained with --train, and the fallback thresholds")
    parser.add_argument("--confusions", type=int, default=15)
    parser.add_argument("--errors", action="store_true",
                        help="also list every wrong prediction (with its top two intents)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="also write the JSON line here (`shopbot report` reads it)")
    args = parser.parse_args()
    if not args.train and (args.model is None or not args.model.is_file()):
        raise SystemExit(f"model {args.model} not found (give --model or --train)")

    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    files = list(dict.fromkeys(p.resolve() for p in args.eval or [DEFAULT_EVAL]))
    if str(args.entities) and args.entities.is_file() and args.entities.resolve() not in files:
        files.append(args.entities.resolve())
    names = {}
    for path in files:
        name = path.stem
        names[path] = name if name not in names.values() else display(path)
    examples = {path: load_eval(path) for path in files}
    texts = list(dict.fromkeys(e["text"] for ex in examples.values() for e in ex))

    training = None
    with tempfile.TemporaryDirectory(prefix="nlu-bench-") as folder:
        model = args.model
        if args.train:
            model, seconds = train(args.config, Path(folder))
            training = {"seconds": round(seconds, 1), "config": display(args.config)}
            if args.save_model:
                shutil.copyfile(model, args.save_model)
                training["saved_model"] = str(args.save_model)
        quiet_rasa()
        results, latencies = asyncio.run(parse_all(model, texts))

    threshold, ambiguity = fallback_settings(args.config)
    evals = {names[path]: {"file": display(path),
                           **evaluate_file(examples[path], results, threshold, ambiguity,
                                           args.confusions, args.errors)}
             for path in files}
    annotated_files = [name for name, section in evals.items() if "entities" in section]
    entities = None
    if annotated_files:
        rows = []
        for path in files:
            for example in examples[path]:
                if example["gold"] is not None:
                    rows.append({**example,
                                 "entities": results[example["text"]].get("entities") or []})
        entities = {"files": annotated_files, **entity_scores(rows)}
        entities.pop("errors")
    latencies.sort()
    summary = {
        "model": model.name if not args.train else "trained by --train",
        "training": training,
        "targets": TARGETS,
        "fallback": {"threshold": threshold, "ambiguity_threshold": ambiguity},
        "parse_ms": {"p50": round(latencies[len(latencies) // 2], 1),
                     "p95": round(latencies[int(len(latencies) * 0.95)], 1),
                     "messages": len(latencies)},
        "summary": {name: {k: s[k] for k in ("intent_accuracy", "in_scope_false_rejection",
                                              "oos_rejected", "best_threshold")}
                    for name, s in evals.items()},
        "entities": entities,
        "evals": evals,
    }
    line = json.dumps(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(line + "\n", encoding="utf-8")
    print(line)


if __name__ == "__main__":
    main()
