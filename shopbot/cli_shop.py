"""`shopbot shop seed|orders|forget`: the shop's own data (orders, carts, profiles, tickets).

``seed`` gives the demo shoppers (``demo-shopper``, ``demo-shopper-2``) orders in every
state from the catalog the bot serves; it is idempotent. ``forget`` does what "forget me"
does in chat, for a support agent or a data request that came by email.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shopbot.settings import get_settings

shop_app = typer.Typer(help="Shop data: demo orders, order lookup, forget a shopper.",
                       no_args_is_help=True)
console = Console(stderr=True)

DbOption = Annotated[
    Path | None, typer.Option("--db", help="Shop database (default: settings shop_db).")
]


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


def _products(catalog: Path | None, store: Path | None):  # noqa: ANN202 - lazy heavy imports
    """Products from a catalog file, else from the product store (else the sample catalog)."""
    from retrieval.catalog import load_catalog

    if catalog is None:
        from retrieval.store import ProductStore

        settings = get_settings()
        product_store = ProductStore.from_settings(settings, store or settings.store_dir)
        products, _ = product_store.all_products()
        if products:
            return products
    products, _report = load_catalog(catalog)
    return products


@shop_app.command("seed")
def seed(
    db: DbOption = None,
    catalog: Annotated[Path | None, typer.Option(
        "--catalog", help="Take products from this catalog file instead of the store.")] = None,
    store: Annotated[Path | None, typer.Option(
        "--store", help="Product store folder (default: settings store_dir).")] = None,
    sender: Annotated[list[str] | None, typer.Option(
        "--sender", help="Seed for these senders (repeatable; default: the demo shoppers).")
    ] = None,
    reset: Annotated[bool, typer.Option(
        "--reset", help="Rewrite the demo orders with dates relative to now.")] = False,
    verbose: bool = False,
) -> None:
    """Create demo orders in every state (placed ... returned) for the demo shoppers."""
    from shopbot.orders import DEMO_SENDERS, OrderStore, seed_demo_orders

    _logging(verbose)
    try:
        products = _products(catalog, store)
    except (OSError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    senders = sender or list(DEMO_SENDERS)
    orders = OrderStore(db or get_settings().shop_db)
    created = seed_demo_orders(orders, products, senders=senders, reset=reset)
    console.print(f"{created} demo orders created for {', '.join(senders)} in {orders.path}")


@shop_app.command("orders")
def list_orders(
    sender_id: Annotated[str, typer.Argument(help="The shopper's sender id.")],
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per order.")] = False,
) -> None:
    """A shopper's orders, newest first."""
    from shopbot.orders import OrderStore

    orders = OrderStore(db or get_settings().shop_db).orders_of(sender_id, limit=100)
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
    db: DbOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Don't ask for confirmation.")] = False,
) -> None:
    """Delete a shopper's profile, cart, tickets, events and conversation; anonymise orders."""
    from recsys.events import EventLog
    from shopbot.cart import CartStore
    from shopbot.orders import OrderStore
    from shopbot.privacy import forget_shopper
    from shopbot.profile import ProfileStore
    from shopbot.tickets import TicketStore

    if not yes and not typer.confirm(f"Forget everything about {sender_id!r}?"):
        raise typer.Exit(1)
    settings = get_settings()
    path = db or settings.shop_db
    report = forget_shopper(
        sender_id, orders=OrderStore(path), cart=CartStore(path), profile=ProfileStore(path),
        tickets=TicketStore(path), events=EventLog(settings.events_db),
        tracker_db=settings.tracker_db,
    )
    print(json.dumps({"sender_id": report.sender_id, "deleted": report.deleted,
                      "orders_anonymised": report.orders_anonymised,
                      "addresses_kept": report.addresses_kept, "failed": report.failed}))
    console.print(report.message)
    if report.failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    shop_app()
