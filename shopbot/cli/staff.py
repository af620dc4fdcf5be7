"""`shopbot staff add|list|disable`: the accounts that may sign in to the web console.

Passwords are asked twice on a hidden prompt, or read from the first line of stdin with
``--password-stdin`` (scripts; never on the command line, where ``ps`` and shell history
would show it). Every command works on the configured database (``SHOPBOT_DATABASE_URL``,
default SQLite in ``var/``). Refusals (weak password, taken email, unknown account) exit 1.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from shopbot.cli.common import console, fail
from shopcore.settings import get_settings

if TYPE_CHECKING:
    from shop.staff import StaffStore

staff_app = typer.Typer(help="Staff accounts for the web console (/console).",
                        no_args_is_help=True)

EmailArgument = Annotated[str, typer.Argument(help="The staff member's email (their login).")]


def _store() -> StaffStore:
    from shop.staff import StaffStore
    from shopcore.db import open_database

    return StaffStore(open_database(get_settings().shop_database_url))


@staff_app.command("add")
def add(
    email: EmailArgument,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from the first line of stdin.")] = False,
) -> None:
    """Add a staff account (password: at least 12 characters)."""
    from shop.staff import StaffError, check_email

    try:
        address = check_email(email)
    except StaffError as refused:
        fail(str(refused), 1)
    store = _store()
    if store.find(address) is not None:  # say so before asking for a password
        fail(f"{address} already has an account", 1)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        member = store.add(address, password)
    except StaffError as refused:
        fail(str(refused), 1)
    console.print(f"staff account added for {member.email}: sign in at /console/login")


@staff_app.command("list")
def list_staff(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per account.")] = False,
) -> None:
    """Every staff account: email, active or disabled, created, last sign-in."""
    members = _store().all()
    if as_json:
        for m in members:
            print(json.dumps({
                "email": m.email, "disabled": m.disabled, "created_at": m.created_at.isoformat(),
                "last_login_at": m.last_login_at.isoformat() if m.last_login_at else None}))
        return
    table = Table("email", "status", "created", "last sign-in")
    for m in members:
        table.add_row(m.email, "disabled" if m.disabled else "active",
                      m.created_at.strftime("%Y-%m-%d %H:%M"),
                      m.last_login_at.strftime("%Y-%m-%d %H:%M") if m.last_login_at else "never")
    console.print(table if members else "no staff accounts yet: `shopbot staff add EMAIL`")


@staff_app.command("disable")
def disable(email: EmailArgument) -> None:
    """Disable an account: it can't sign in, and its open sessions stop at once."""
    if not _store().disable(email):
        fail(f"no staff account for {email.strip().lower()!r}", 1)
    console.print(f"staff account of {email.strip().lower()} disabled")
