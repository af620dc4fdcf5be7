"""`shopbot db upgrade|current`: the shop database's schema version (alembic migrations).

Both work on the configured database (``SHOPBOT_DATABASE_URL``, default SQLite in ``var/``).
`shopbot run` upgrades by itself; run `upgrade` on its own before starting replicas of a
new release against a shared PostgreSQL database.
"""

from __future__ import annotations

import typer
from sqlalchemy.exc import SQLAlchemyError

from shopbot.cli.common import VerboseOption, console, fail
from shopcore.logs import setup_logging
from shopcore.settings import get_settings

db_app = typer.Typer(help="The shop database: schema migrations.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade(verbose: VerboseOption = False) -> None:
    """Migrate the shop database to the newest schema (safe to run while others do)."""
    from shopcore import migrations

    setup_logging(verbose)
    try:
        revision = migrations.upgrade(get_settings().shop_database_url)
    except SQLAlchemyError as error:
        fail(f"could not migrate the shop database: {error}", 1)
    console.print(f"shop database at revision {revision} (head)")


@db_app.command("current")
def current() -> None:
    """Print the shop database's schema revision ('none' before the first upgrade)."""
    from shopcore import migrations

    try:
        revision = migrations.current(get_settings().shop_database_url)
    except SQLAlchemyError as error:
        fail(f"could not read the shop database: {error}", 1)
    print(revision or "none")
    if revision != migrations.head():
        console.print(f"not at head: this code's newest revision is {migrations.head()} "
                      "(`shopbot db upgrade` migrates)")
