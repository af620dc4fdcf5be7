"""What every ``shopbot`` command shares: the error console, the store option and paths."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from shopcore.settings import Settings, get_settings

if TYPE_CHECKING:
    from retrieval.store import ProductStore

console = Console(stderr=True)

StoreOption = Annotated[
    Path | None,
    typer.Option("--store", help="Product store folder (default: var/store/default, or the "
                 "catalog's own store with --catalog)."),
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")]


def fail(message: str, code: int = 2) -> NoReturn:
    """Say what went wrong on stderr and exit with ``code`` (2: bad input, 1: it failed)."""
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def store_for(catalog: Path | None, store: Path | None, settings: Settings | None = None) -> Path:
    """Each catalog gets its own store unless one is named, so several live side by side."""
    settings = settings or get_settings()
    if store:
        return store
    if catalog:
        stem = catalog.name.split(".")[0]
        return Path(settings.var_dir) / "store" / f"{catalog.resolve().parent.name}-{stem}"
    return settings.store_path


def images_for(catalog: Path | None, images: Path | None) -> Path | None:
    """A Myntra-style folder keeps photos in images/ beside the catalog file: use it."""
    if images or not catalog:
        return images
    beside = catalog.resolve().parent / "images"
    return beside if beside.is_dir() else None


def open_store(store_dir: Path | None = None) -> ProductStore:
    """The product store (heavy imports stay lazy so ``--help`` is quick)."""
    from retrieval.store import ProductStore

    settings = get_settings()
    return ProductStore.from_settings(settings, store_dir or settings.store_path)
