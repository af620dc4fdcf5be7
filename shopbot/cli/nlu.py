"""`shopbot nlu export`: the messages staff labelled in the console ("Teach the bot") as a
Rasa NLU training file.

The file is regenerated from every label each time (a changed label changes the file), at
``bot/data/nlu/reviewed.yml`` unless ``--out`` says otherwise; ``shopbot train`` then trains
on it with the rest of ``bot/data``. Review the diff before training: that is the point of
exporting instead of training on labels directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopbot.cli.common import console
from shopcore.settings import PROJECT_ROOT, get_settings

nlu_app = typer.Typer(help="Training data from the console's labelled messages.",
                      no_args_is_help=True)

DEFAULT_OUT = PROJECT_ROOT / "bot" / "data" / "nlu" / "reviewed.yml"


@nlu_app.command("export")
def export(
    out: Annotated[Path, typer.Option(help="Where to write the Rasa NLU file.")] = DEFAULT_OUT,
) -> None:
    """Write every labelled message as Rasa training data (then: `shopbot train`)."""
    from shop.teaching import ReviewStore, rasa_nlu_yaml
    from shopcore.db import open_database

    store = ReviewStore(open_database(get_settings().shop_database_url))
    reviews = store.all()
    if not reviews:
        console.print("no labelled messages yet: label some in the console (Teach the bot)")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(rasa_nlu_yaml(reviews), encoding="utf-8")
    partial.replace(out)  # never a half-written training file
    new = store.mark_exported()
    intents = len({r.intent for r in reviews})
    console.print(f"wrote {len(reviews)} examples for {intents} intents to {out} "
                  f"({new} new since the last export); retrain with `shopbot train`")
