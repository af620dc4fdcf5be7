"""`shopbot recsys train|eval`: train a sequential recommender and evaluate a saved one.

Both read interactions from an Amazon-format ``.txt`` (``user item item ...``), a SQLite
events table or an events CSV (``user_id, item_id, event_type, timestamp``), or with
``--events`` the shop's own interaction log in its database. Progress bars go to stderr; the
summary is a table on stderr, or one JSON line on stdout with ``--json``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from shopbot.cli.common import VerboseOption, console, fail
from shopcore.logs import setup_logging
from shopcore.settings import get_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

recsys_app = typer.Typer(help="Sequential recommender: train and evaluate.",
                         no_args_is_help=True)

DataArgument = Annotated[
    Path | None, typer.Argument(help="Interactions: Amazon .txt, SQLite events (.db) or "
                                "events .csv; leave out with --events.")
]
FromShopOption = Annotated[bool, typer.Option(
    "--events", help="Use the shop's own interaction log (the configured database).")]
EventTypes = Annotated[
    list[str] | None,
    typer.Option("--event-type", help="Keep only these event types (repeatable)."),
]


def _load(data: Path | None, from_shop: bool, event_types: list[str] | None,  # noqa: ANN202
          table: str):
    """The interactions as sequences: a file, or the shop's own log (imports kept lazy)."""
    from recsys.data import load_sequences, sequences_from_events

    kinds = set(event_types) if event_types else None
    if (data is None) == (not from_shop):
        fail("give either a DATA file or --events")
    if from_shop:
        from shop.events import EventLog
        from shopcore.db import open_database

        log = EventLog(open_database(get_settings().shop_database_url))
        rows = ((e.sender_id, e.product_id, e.event_type, e.ts) for e in log.iter_events())
        dataset = sequences_from_events(rows, kinds, name="shop-events")
        if not dataset.sequences:
            fail("the shop's interaction log has no events yet")
        return dataset
    assert data is not None
    try:
        return load_sequences(data, event_types=kinds, table=table)
    except (OSError, ValueError) as exc:
        fail(str(exc))


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


@recsys_app.command()
def train(
    data: DataArgument = None,
    from_shop: FromShopOption = False,
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
    verbose: VerboseOption = False,
) -> None:
    """Train on all but the last two items per user; early-stop on validation NDCG@10."""
    setup_logging(verbose)
    from recsys.artifacts import save_model
    from recsys.data import leave_one_out, load_item_attributes
    from recsys.evaluate import LeaveOneOutEvaluator
    from recsys.models import MODEL_CLASSES
    from recsys.trainer import TrainConfig, build_and_train

    if model not in MODEL_CLASSES:
        fail(f"unknown model {model!r}; one of {', '.join(sorted(MODEL_CLASSES))}")
    dataset = _load(data, from_shop, event_type, table)
    split = leave_one_out(dataset)
    if not split.valid_targets:
        fail("no user has 3 or more interactions to validate on")
    config: dict[str, object] = {}
    if model in ("sasrec", "blend"):
        config = {"hidden": hidden, "blocks": blocks, "heads": heads, "max_len": max_len,
                  "dropout": dropout, "negatives": negatives}
    item_attributes = None
    sibling = data.with_name(f"{data.stem}_item2attributes.json") if data else None
    if no_attributes:
        attributes = None
    elif attributes is None and model in ("sasrec", "blend") and sibling and sibling.is_file():
        attributes = sibling
        console.print(f"fusing item attributes from {sibling}", style="dim")
    if attributes is not None:
        try:
            item_attributes = load_item_attributes(attributes, dataset.vocab)
        except (OSError, ValueError) as exc:
            fail(f"attributes: {exc}")
    train_config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                               eval_every=eval_every, time_budget_s=time_budget, seed=seed)
    started = time.perf_counter()
    trained, result = build_and_train(model, split, config, train_config, item_attributes)
    test = LeaveOneOutEvaluator(split.test_histories, split.test_targets, max_len=max_len,
                                name="test")(trained)
    path = out or Path(get_settings().models_dir) / "recsys" / f"{dataset.name}-{model}.pt"
    save_model(trained, dataset.vocab, path, meta={
        "data": str(data) if data else "shop events", "valid": result.best_valid, "test": test,
        "train": train_config.as_dict(), "epochs": result.epochs_run,
    })
    _report(f"trained {model} on {dataset.name}", {
        "model_file": str(path), "dataset": dataset.summary(), "valid": result.best_valid,
        "test": test, "best_epoch": result.best_epoch, "epochs": result.epochs_run,
        "stopped": result.stopped, "train_seconds": result.seconds,
        "total_seconds": round(time.perf_counter() - started, 1),
    }, as_json)


@recsys_app.command("eval")
def evaluate(
    model_file: Annotated[Path, typer.Argument(help="A file written by `shopbot recsys train`.")],
    data: DataArgument = None,
    from_shop: FromShopOption = False,
    split_name: Annotated[str, typer.Option("--split", help="test or valid.")] = "test",
    event_type: EventTypes = None,
    table: Annotated[str, typer.Option(help="SQLite events table.")] = "events",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
    verbose: VerboseOption = False,
) -> None:
    """Leave-one-out HR@10 / NDCG@10 of a saved model, ranking against all items."""
    setup_logging(verbose)
    from recsys.artifacts import ArtifactError, load_model
    from recsys.data import leave_one_out, remap_dataset
    from recsys.evaluate import LeaveOneOutEvaluator

    if split_name not in {"test", "valid"}:
        fail("--split must be test or valid")
    try:
        trained = load_model(model_file)
    except ArtifactError as exc:
        fail(str(exc))
    dataset = remap_dataset(_load(data, from_shop, event_type, table), trained.vocab)
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



@recsys_app.command()
def demo(
    store: Annotated[Path | None, typer.Option(help="Product store folder (default: the "
                                                    "configured one).")] = None,
    out: Annotated[Path | None, typer.Option(help="Model file (default: the recommender "
                                                  "the bot serves).")] = None,
    time_budget: Annotated[float, typer.Option(help="Training seconds at most.")] = 90.0,
    verbose: VerboseOption = False,
) -> None:
    """Train a clearly-labelled demo recommender on SYNTHETIC shopper sessions over the catalog
    (what `shopbot run` does once for a shop with no interaction log yet)."""
    setup_logging(verbose)
    from recsys.bootstrap import train_demo_recommender
    from shopbot.cli.common import open_store

    settings = get_settings()
    target = out or settings.recommender_path
    products, _ = open_store(store or settings.store_path).all_products()
    if not products:
        fail("the product store is empty; run `shopbot ingest` first")
    summary = train_demo_recommender(products, target, time_budget_s=time_budget)
    console.print(f"demo recommender (synthetic sessions) saved to {target}: "
                  f"{summary['epochs']} epochs in {summary['seconds']} s")
