"""`shopbot shop seed|orders|forget`: the shop's own data (orders, carts, profiles, tickets).

``seed`` gives the demo shoppers (``demo-shopper``, ``demo-shopper-2``) orders in every
state from the catalog the bot serves; it is idempotent. ``forget`` does what "forget me"
does in chat, for a support agent or a data request that came by email. Every command works
on the configured database (``SHOPBOT_DATABASE_URL``, default SQLite in ``var/``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from shopbot.cli.common import StoreOption, VerboseOption, console, fail, open_store
from shopcore.logs import setup_logging
from shopcore.settings import get_settings

if TYPE_CHECKING:
    from retrieval.catalog import Product
    from shop.records import ShopRecords

shop_app = typer.Typer(help="Shop data: demo orders, order lookup, forget a shopper.",
                       no_args_is_help=True)


def _records() -> ShopRecords:
    from shop.records import ShopRecords, policy_terms

    rules, hours = policy_terms()
    return ShopRecords.open(get_settings(), rules, hours)


def _products(catalog: Path | None, store: Path | None) -> list[Product]:
    """Products from a catalog file, else from the product store (else the sample catalog)."""
    from retrieval.catalog import load_catalog

    if catalog is None:
        products, _ = open_store(store).all_products()
        if products:
            return products
    products, _report = load_catalog(catalog)
    return products


@shop_app.command("seed")
def seed(
    catalog: Annotated[Path | None, typer.Option(
        "--catalog", help="Take products from this catalog file instead of the store.")] = None,
    store: StoreOption = None,
    sender: Annotated[list[str] | None, typer.Option(
        "--sender", help="Seed for these senders (repeatable; default: the demo shoppers).")
    ] = None,
    reset: Annotated[bool, typer.Option(
        "--reset", help="Rewrite the demo orders with dates relative to now.")] = False,
    verbose: VerboseOption = False,
) -> None:
    """Create demo orders in every state (placed ... returned) for the demo shoppers."""
    from shop.demo import DEMO_SENDERS, seed_demo_orders

    setup_logging(verbose)
    try:
        products = _products(catalog, store)
    except (OSError, ValueError) as error:
        fail(str(error))
    senders = sender or list(DEMO_SENDERS)
    created = seed_demo_orders(_records().orders, products, senders=senders, reset=reset)
    console.print(f"{created} demo orders created for {', '.join(senders)}")


@shop_app.command("orders")
def list_orders(
    sender_id: Annotated[str, typer.Argument(help="The shopper's sender id.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per order.")] = False,
) -> None:
    """A shopper's orders, newest first."""
    orders = _records().orders.orders_of(sender_id, limit=100)
    if as_json:
        for order in orders:
            print(order.model_dump_json())
        return
    table = Table("order", "status", "placed", "items", "total", "refund")
    for o in orders:
        refund = f"{o.refunds[-1].refund_id} {o.refunds[-1].status.value}" if o.refunds else ""
        table.add_row(o.order_id, o.status.value, o.placed_at.date().isoformat(),
                      str(o.item_count), f"{o.total:,.2f}", refund)
    console.print(table)


@shop_app.command("forget")
def forget(
    sender_id: Annotated[str, typer.Argument(help="The shopper's sender id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Don't ask for confirmation.")] = False,
) -> None:
    """Delete a shopper's profile, cart, tickets, events and conversation; anonymise orders."""
    if not yes and not typer.confirm(f"Forget everything about {sender_id!r}?"):
        raise typer.Exit(1)
    report = _records().forget(sender_id)
    print(json.dumps({"sender_id": report.sender_id, "deleted": report.deleted,
                      "orders_anonymised": report.orders_anonymised,
                      "addresses_kept": report.addresses_kept, "failed": report.failed}))
    console.print(report.message)
    if report.failed:
        raise typer.Exit(1)
