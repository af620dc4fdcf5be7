"""`shopbot images train|index` and `shopbot classify`: the photo side of the command line.

`shopbot classify PATH... --json` is a contract used by evaluations outside the test suite:
one JSON line per image, ``{"path", "article_type", "colour", "score", "top": [[label,
score], ...]}`` (plus ``colour_score``, ``source``, ``confident``); an unusable image gets
``{"path", "error", "reason"}`` instead. Keep it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from shopbot.cli.common import (
    StoreOption,
    VerboseOption,
    console,
    fail,
    open_store,
    store_for,
)
from shopcore.logs import setup_logging
from shopcore.settings import get_settings

images_app = typer.Typer(help="Product photos: train the category head, index photos.",
                         no_args_is_help=True)
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
CLASSIFY_BATCH = 16


def _products(catalog: Path | None, store_dir: Path):  # noqa: ANN202 - lazy heavy imports
    """Labelled products from the catalog file, else from what the store holds."""
    if catalog is not None:
        from retrieval.catalog import load_catalog

        products, _report = load_catalog(catalog)
        return products
    products, _vectors = open_store(store_dir).all_products()
    return products


def _photos(images: Path, ids: set[str]) -> list[Path]:
    if not images.is_dir():
        raise FileNotFoundError(f"images folder not found: {images}")
    return sorted(p for p in images.iterdir()
                  if p.suffix.lower() in PHOTO_SUFFIXES and p.stem in ids)


@images_app.command("train")
def train(
    images: Annotated[Path, typer.Option("--images", help="Folder of <product id>.jpg photos.")],
    catalog: Annotated[
        Path | None, typer.Option("--catalog", help="Catalog file with the photos' labels "
                                  "(default: the products in the store).")
    ] = None,
    store: StoreOption = None,
    views: Annotated[int, typer.Option(min=1, max=32, help="Encoded framings per photo.")] = 8,
    cache: Annotated[
        Path | None, typer.Option("--cache", help="Feature cache folder (default: var/images).")
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Train the photo category head (article type, colour) on the catalog's own photos.

    Features of every framing are cached under var/images, so retraining is quick.
    """
    setup_logging(verbose)
    from retrieval.images.features import photo_features
    from retrieval.images.head import TrainingData, train_head, training_steps

    store_dir = store_for(catalog, store)
    try:
        products = {p.id: p for p in _products(catalog, store_dir)}
        photos = _photos(images, set(products))
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    if not photos:
        fail(f"no photos in {images} match a product ({len(products)} products known)")
    with tqdm(total=len(photos), unit="photo", desc="encode", file=sys.stderr) as bar:
        features = photo_features(photos, views, cache_dir=cache, progress=bar.update)
    data = TrainingData.build(features, products)
    with tqdm(total=training_steps(), unit="epoch", desc="train", file=sys.stderr) as bar:
        head, report = train_head(data, progress=bar.update)
    head.save(store_dir)
    above = report["above_cut"]
    coverage = report["coverage"]
    console.print(
        f"[green]trained[/green] image head in {store_dir}: {coverage['classes']} article types "
        f"({coverage['share']:.1%} of {coverage['photos']} photos; classes under "
        f"{coverage['min_photos_per_class']} photos left out), {len(head.colours)} colours\n"
        f"  held-out test: top-1 {report['top1']:.3f}, top-3 {report['top3']:.3f}, "
        f"macro-F1 {report['macro_f1']:.3f}, colour {report['colour_accuracy']:.3f}\n"
        f"  confidence cut {head.cut:.3f}: {above['precision']:.3f} precision on "
        f"{above['coverage']:.1%} of test photos"
    )


@images_app.command("index")
def index(
    images: Annotated[
        Path | None, typer.Option("--images", help="Photos folder (default: the store's).")
    ] = None,
    store: StoreOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Embed the store's product photos for visual similarity search (incremental)."""
    setup_logging(verbose)
    from retrieval.images.index import index_catalog_images

    store_obj = open_store(store)
    images = images or store_obj.images_dir
    if images is None or not images.is_dir():
        fail("no photos folder: pass --images DIR")
    products, _vectors = store_obj.all_products()
    with tqdm(total=len(products), unit="product", desc="photos", file=sys.stderr) as bar:
        encoded = index_catalog_images(store_obj, products, images, progress=bar.update,
                                       prune=True)
    console.print(f"[green]indexed[/green] {encoded} new or changed photos "
                  f"in {store_obj.store_dir}")


def classify(
    paths: Annotated[list[Path], typer.Argument(help="Photos to classify.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    store: Annotated[
        Path | None, typer.Option("--store", help="Store with the trained head (default: "
                                  "SHOPBOT_STORE_DIR; no head there = ImageNet fallback).")
    ] = None,
    max_mb: Annotated[float, typer.Option("--max-mb", help="Refuse larger files.")] = 20.0,
) -> None:
    """Say what each photo shows: article type, colour, score and the top guesses."""
    setup_logging(False)
    from retrieval.images.classifier import ImageClassifier
    from shopcore.images import ImageRejected, load_image

    classifier = ImageClassifier.load(store or get_settings().store_path)
    max_bytes = int(max_mb * 1024 * 1024)
    rows: list[dict[str, object]] = []
    for start in range(0, len(paths), CLASSIFY_BATCH):
        batch, loaded = paths[start:start + CLASSIFY_BATCH], []
        outcome: dict[int, dict[str, object]] = {}
        for i, path in enumerate(batch):
            try:
                loaded.append((i, load_image(path, max_bytes=max_bytes)))
            except ImageRejected as exc:
                outcome[i] = {"path": str(path), "error": exc.message, "reason": exc.reason}
        results = classifier.classify_many([image for _, image in loaded]) if loaded else []
        for (i, _image), result in zip(loaded, results, strict=True):
            outcome[i] = {"path": str(batch[i]), **result.as_dict()}
        for i in range(len(batch)):
            rows.append(outcome[i])
            if as_json:
                print(json.dumps(outcome[i], ensure_ascii=False), flush=True)
    if not as_json:
        table = Table(title=f"photos ({classifier.source}, cut {classifier.cut:.2f})")
        for column in ("path", "article type", "score", "colour", "top guesses"):
            table.add_column(column)
        for row in rows:
            if "error" in row:
                table.add_row(str(row["path"]), f"[red]{row['error']}[/red]", "", "", "")
                continue
            top = ", ".join(f"{label} {score:.2f}" for label, score in row["top"])  # type: ignore[attr-defined]
            table.add_row(str(row["path"]), str(row["article_type"]), f"{row['score']:.2f}",
                          str(row["colour"]), top)
        Console().print(table)
    if rows and all("error" in row for row in rows):
        raise typer.Exit(1)

