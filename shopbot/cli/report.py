"""`shopbot report`: the evaluation report (HTML and PNGs) from the benchmarks' results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopbot.cli.common import console
from shopcore.settings import get_settings


def report(
    results: Annotated[Path | None, typer.Option(
        help="Folder with the benchmarks' JSON (default: <var>/bench).")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Where to write report.html and the PNGs (default: <var>/report, which the "
             "console shows at /console/report).")] = None,
) -> None:
    """Write the evaluation report: NLU confusion, search quality, recommender, photos."""
    from shopbot.report import build_default_paths, write_report

    results, out = build_default_paths(get_settings(), results, out)
    path = write_report(results, out)
    console.print(f"report written to {path}")
