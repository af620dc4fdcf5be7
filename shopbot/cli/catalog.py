"""`shopbot ingest` and `shopbot search`: load a catalog into the product store, search it.

`shopbot search --batch FILE --json` is a contract used by evaluations outside the test
suite: one JSON line per query, ``{"query": ..., "ids": [best first]}``. Keep it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from shopbot.cli.common import (
    StoreOption,
    VerboseOption,
    console,
    fail,
    images_for,
    open_store,
    store_for,
)
from shopcore.logs import setup_logging
from shopcore.settings import get_settings

if TYPE_CHECKING:
    from retrieval.ingest import IngestReport


def run_ingest(catalog: Path | None, images: Path | None, store_dir: Path,
               prune: bool = True) -> IngestReport:
    """Ingest with progress bars on stderr (one for products, one for photos)."""
    from retrieval.ingest import ingest_catalog

    store = open_store(store_dir)
    bars: list[tqdm] = []

    def progress_factory(total: int):  # noqa: ANN202
        desc, unit = ("ingest", "product") if not bars else ("photos", "photo")
        bar = tqdm(total=total, unit=unit, desc=desc, file=sys.stderr)
        bars.append(bar)
        return bar.update

    try:
        return ingest_catalog(
            store, catalog, images_dir=images, prune=prune,
            batch_size=get_settings().embed_batch_size, progress_factory=progress_factory,
        )
    finally:
        for bar in bars:
            bar.close()


def ingest(
    catalog: Annotated[
        Path | None,
        typer.Argument(help="Catalog file (.jsonl, .jsonl.gz, .csv); sample if omitted."),
    ] = None,
    images: Annotated[
        Path | None, typer.Option("--images", help="Folder of <product id>.jpg photos.")
    ] = None,
    store: StoreOption = None,
    prune: Annotated[
        bool, typer.Option(help="Remove stored products that are no longer in the catalog.")
    ] = True,
    verbose: VerboseOption = False,
) -> None:
    """Load a catalog into the product store (idempotent: unchanged products are skipped)."""
    setup_logging(verbose)
    store_dir = store_for(catalog, store)
    try:
        report = run_ingest(catalog, images_for(catalog, images), store_dir, prune)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    rate = report.loaded / report.seconds if report.seconds else 0
    console.print(
        f"[green]ingested[/green] {report.loaded} products into {store_dir} "
        f"(catalog v{report.version}) in "
        f"{report.seconds:.1f}s ({rate:.0f}/s): {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.removed} removed, {report.skipped} skipped, "
        f"{report.with_images} with photos"
    )
    for line in report.errors[:5]:
        console.print(f"  [yellow]skipped[/yellow] {line}")


def search(
    query: Annotated[str | None, typer.Argument(help="What the shopper typed.")] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="How many products.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    batch: Annotated[
        Path | None, typer.Option("--batch", help="File with one query per line ('-' = stdin).")
    ] = None,
    store: StoreOption = None,
) -> None:
    """Search the product store for one query, or for every line of a batch file."""
    setup_logging()
    if (query is None) == (batch is None):
        fail("give either a QUERY or --batch FILE")
    from retrieval.search import ProductSearch

    store_obj = open_store(store)
    if store_obj.count() == 0:
        console.print(f"[yellow]warning:[/yellow] store {store_obj.store_dir} is empty; "
                      "run `shopbot ingest` first")
    searcher = ProductSearch(store_obj)
    if batch is not None:
        handle = sys.stdin if str(batch) == "-" else batch.open(encoding="utf-8")
        with handle:
            for line in handle:
                text = line.rstrip("\n")
                if not text.strip():
                    continue
                result = searcher.search(text, k=k)
                print(json.dumps({"query": text, "ids": result.ids}, ensure_ascii=False),
                      flush=True)
        return
    assert query is not None
    result = searcher.search(query, k=k)
    if as_json:
        print(json.dumps({"query": query, "ids": result.ids,
                          "understood": result.constraints.to_dict(),
                          "relaxed": result.relaxed}, ensure_ascii=False))
        return
    table = Table(title=f"{query!r} -> {result.constraints.describe()}"
                  + (f" (relaxed: {', '.join(result.relaxed)})" if result.relaxed else ""))
    for column in ("#", "id", "name", "price", "colour", "type"):
        table.add_column(column)
    for i, p in enumerate(result.products, 1):
        table.add_row(str(i), p.id, p.name, f"{p.final_price:,.0f}", p.base_colour, p.article_type)
    Console().print(table)
