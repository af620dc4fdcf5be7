"""`shopbot recsys train|eval`: train a sequential recommender and evaluate a saved one.

Both read interactions from an Amazon-format ``.txt`` (``user item item ...``), a SQLite
events table or an events CSV (``user_id, item_id, event_type, timestamp``). Progress bars
go to stderr; the summary is a table on stderr, or one JSON line on stdout with ``--json``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

os.environ.setdefault("HF_HUB_OFFLINE", "1")

app = typer.Typer(help="Sequential recommender: train and evaluate.", no_args_is_help=True)
console = Console(stderr=True)

DEFAULT_OUT_DIR = Path(__file__).resolve().parent.parent / "var" / "models" / "recsys"

DataArgument = Annotated[
    Path, typer.Argument(help="Interactions: Amazon .txt, SQLite events (.db) or events .csv.")
]
EventTypes = Annotated[
    list[str] | None,
    typer.Option("--event-type", help="Keep only these event types (repeatable)."),
]


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


def _load(data: Path, event_types: list[str] | None, table: str):  # noqa: ANN202 - lazy import
    from recsys.data import load_sequences

    try:
        return load_sequences(data, event_types=set(event_types) if event_types else None,
                              table=table)
    except (OSError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _report(title: str, rows: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, default=str))
        return
    table = Table(title=title)
    table.add_column("")
    table.add_column("value")
    for key, value in rows.items():
        table.add_row(key, json.dumps(value, default=str) if isinstance(value, dict) else
                      str(value))
    console.print(table)


@app.command()
def train(
    data: DataArgument,
    model: Annotated[str, typer.Option(
        help="popular, itemknn, sasrec or blend (SASRec + item-KNN, weight tuned on "
             "validation).")] = "blend",
    out: Annotated[Path | None, typer.Option(help="Model file (default var/models/recsys/"
                                                  "<data>-<model>.pt).")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 200,
    time_budget: Annotated[float | None, typer.Option(help="Stop training after this many "
                                                           "seconds (best epoch kept).")] = 900,
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    lr: float = 2e-3,
    hidden: int = 64,
    blocks: int = 2,
    heads: int = 1,
    max_len: int = 50,
    dropout: float = 0.5,
    negatives: Annotated[int, typer.Option(help="0 = full softmax over the catalog (best); "
                                                "N = sampled softmax with N shared negatives "
                                                "(about 4x faster per epoch).")] = 0,
    attributes: Annotated[Path | None, typer.Option(
        help="Amazon *_item2attributes.json to fuse into item vectors (default: the one next "
             "to DATA, <stem>_item2attributes.json, when it exists).")] = None,
    no_attributes: Annotated[bool, typer.Option(
        "--no-attributes", help="Do not fuse attributes even when the file is there.")] = False,
    patience: Annotated[int, typer.Option(help="Validations without gain before stopping.")] = 3,
    eval_every: Annotated[int, typer.Option(min=1)] = 2,
    seed: int = 0,
    event_type: EventTypes = None,
    table: Annotated[str, typer.Option(help="SQLite events table.")] = "events",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Train on all but the last two items per user; early-stop on validation NDCG@10."""
    _logging(verbose)
    from recsys.artifacts import save_model
    from recsys.data import leave_one_out, load_item_attributes
    from recsys.evaluate import LeaveOneOutEvaluator
    from recsys.models import MODEL_CLASSES
    from recsys.trainer import TrainConfig, build_and_train

    if model not in MODEL_CLASSES:
        console.print(f"[red]error:[/red] unknown model {model!r}; one of "
                      f"{', '.join(sorted(MODEL_CLASSES))}")
        raise typer.Exit(2)
    dataset = _load(data, event_type, table)
    split = leave_one_out(dataset)
    if not split.valid_targets:
        console.print("[red]error:[/red] no user has 3 or more interactions to validate on")
        raise typer.Exit(2)
    config: dict[str, object] = {}
    if model in ("sasrec", "blend"):
        config = {"hidden": hidden, "blocks": blocks, "heads": heads, "max_len": max_len,
                  "dropout": dropout, "negatives": negatives}
    item_attributes = None
    sibling = data.with_name(f"{data.stem}_item2attributes.json")
    if no_attributes:
        attributes = None
    elif attributes is None and model in ("sasrec", "blend") and sibling.is_file():
        attributes = sibling
        console.print(f"fusing item attributes from {sibling}", style="dim")
    if attributes is not None:
        try:
            item_attributes = load_item_attributes(attributes, dataset.vocab)
        except (OSError, ValueError) as exc:
            console.print(f"[red]error:[/red] attributes: {exc}")
            raise typer.Exit(2) from exc
    train_config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                               eval_every=eval_every, time_budget_s=time_budget, seed=seed)
    started = time.perf_counter()
    trained, result = build_and_train(model, split, config, train_config, item_attributes)
    test = LeaveOneOutEvaluator(split.test_histories, split.test_targets, max_len=max_len,
                                name="test")(trained)
    path = out or DEFAULT_OUT_DIR / f"{dataset.name}-{model}.pt"
    save_model(trained, dataset.vocab, path, meta={
        "data": str(data), "valid": result.best_valid, "test": test,
        "train": train_config.as_dict(), "epochs": result.epochs_run,
    })
    _report(f"trained {model} on {dataset.name}", {
        "model_file": str(path), "dataset": dataset.summary(), "valid": result.best_valid,
        "test": test, "best_epoch": result.best_epoch, "epochs": result.epochs_run,
        "stopped": result.stopped, "train_seconds": result.seconds,
        "total_seconds": round(time.perf_counter() - started, 1),
    }, as_json)


@app.command("eval")
def evaluate(
    model_file: Annotated[Path, typer.Argument(help="A file written by `shopbot recsys train`.")],
    data: DataArgument,
    split_name: Annotated[str, typer.Option("--split", help="test or valid.")] = "test",
    event_type: EventTypes = None,
    table: Annotated[str, typer.Option(help="SQLite events table.")] = "events",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Leave-one-out HR@10 / NDCG@10 of a saved model, ranking against all items."""
    _logging(verbose)
    from recsys.artifacts import ArtifactError, load_model
    from recsys.data import leave_one_out, remap_dataset
    from recsys.evaluate import LeaveOneOutEvaluator

    if split_name not in {"test", "valid"}:
        console.print("[red]error:[/red] --split must be test or valid")
        raise typer.Exit(2)
    try:
        trained = load_model(model_file)
    except ArtifactError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    dataset = remap_dataset(_load(data, event_type, table), trained.vocab)
    split = leave_one_out(dataset)
    histories = split.test_histories if split_name == "test" else split.valid_histories
    targets = split.test_targets if split_name == "test" else split.valid_targets
    max_len = int(trained.model.config.get("max_len", 50))
    evaluator = LeaveOneOutEvaluator(histories, targets, max_len=max_len, name=split_name,
                                     progress=True)
    metrics = evaluator(trained.model)
    unknown = sum(1 for t in targets if t == 0)
    _report(f"{trained.model.name} on {dataset.name} ({split_name})", {
        "model_file": str(model_file), "model": trained.model.name, split_name: metrics,
        "targets_unknown_to_model": unknown,
    }, as_json)


if __name__ == "__main__":
    app()
