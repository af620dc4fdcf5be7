"""The ``shopbot`` command line: one Typer app, one module per group of commands.

``catalog`` (ingest, search), ``bot`` (train, run, shell), ``images`` (photo head, photo
index, classify), ``recsys`` (train and evaluate recommenders), ``shop`` (the shop's own
data), ``db`` (the shop database's schema migrations), ``staff`` (web console accounts),
``nlu`` (training data from the console's labelled messages), ``report`` (the evaluation
report from the benchmarks' results).
The modules import only ``common``; this file puts them together.
"""

from __future__ import annotations

import typer

from shopbot.cli import bot, catalog, db, images, nlu, recsys, report, shop, staff

app = typer.Typer(help="shopbot: a conversational shopping assistant.", no_args_is_help=True)
app.command()(catalog.ingest)
app.command()(catalog.search)
app.command()(bot.train)
app.command()(bot.run)
app.command()(bot.shell)
app.add_typer(images.images_app, name="images")
app.command(help="Classify product photos: one JSON line per image with --json.")(
    images.classify)
app.add_typer(recsys.recsys_app, name="recsys")
app.add_typer(shop.shop_app, name="shop")
app.add_typer(db.db_app, name="db")
app.add_typer(staff.staff_app, name="staff")
app.add_typer(nlu.nlu_app, name="nlu")
app.command()(report.report)
