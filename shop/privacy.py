"""'Forget me': delete everything the shop holds about one shopper, and say what was done.

Deleted, for the shopper and every chat linked to them (channel linking): profile, cart,
support tickets, the interaction log (recsys events), the search log, link rows and codes,
the photos they sent, and the conversation in Rasa's tracker store.
Kept: orders, because a shop must keep its sales records (invoices) for accounting and tax.
They are anonymised instead (see ``OrderStore.anonymise``): no longer linked to the shopper,
and finished orders lose their delivery address; orders still on their way keep it until
delivered (the parcel must arrive).

The conversation of the turn that runs the forget action is saved by Rasa only after the
action answers, so the action also requests a purge that the input channels carry out once
Rasa has saved the turn (:mod:`shopcore.conversations`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from shop.cart import CartStore
from shop.events import EventLog
from shop.orders import OrderStore
from shop.profile import ProfileStore
from shop.searches import SearchLog
from shop.tickets import TicketStore
from shopcore.conversations import forget_conversation
from shopcore.ids import short, valid_id
from shopcore.uploads import UploadStore

logger = logging.getLogger(__name__)



class SenderLinks(Protocol):
    """The channel-link store (:class:`shopcore.links.LinkStore`)."""

    def forget(self, sender: str) -> int: ...


@dataclass(frozen=True)
class ForgetReport:
    """What was deleted per store (rows), what was kept, what failed, and the reply."""

    sender_id: str
    deleted: dict[str, int] = field(default_factory=dict)
    orders_anonymised: int = 0
    addresses_kept: int = 0  # orders still on their way keep the address to arrive
    failed: dict[str, str] = field(default_factory=dict)
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed


def forget_shopper(
    sender_id: str, *,
    orders: OrderStore | None = None,
    cart: CartStore | None = None,
    profile: ProfileStore | None = None,
    tickets: TicketStore | None = None,
    events: EventLog | None = None,
    links: SenderLinks | None = None,
    searches: SearchLog | None = None,
    tracker: str | Path | None = None,
    uploads: UploadStore | None = None,
) -> ForgetReport:
    """Delete (or, for orders, anonymise) everything held about ``sender_id``.

    Each store is handled on its own: one failing (a locked file) doesn't stop the others,
    and the report and message say what could not be done. A store passed as None is skipped.
    ``tracker`` is Rasa's tracker store (``Settings.tracker_store_url``, or a SQLite file).
    """
    if not valid_id(sender_id):
        logger.warning("forget: bad sender id %s", short(sender_id))
        return ForgetReport(str(sender_id)[:40], failed={"sender": "not a valid sender id"},
                            message="Sorry, I couldn't tell who you are, so nothing was deleted.")
    steps = {
        "profile": profile.delete if profile else None,
        "cart": cart.clear if cart else None,
        "tickets": tickets.delete_for if tickets else None,
        "events": events.forget if events else None,
        "links": links.forget if links else None,
        "searches": searches.delete_for if searches else None,
        "conversation": ((lambda s: forget_conversation(tracker, uploads, s)[0])
                         if tracker is not None else None),
    }
    deleted: dict[str, int] = {}
    failed: dict[str, str] = {}
    for name, step in steps.items():
        if step is None:
            continue
        try:
            deleted[name] = step(sender_id)
        except (SQLAlchemyError, OSError) as error:
            logger.error("forget %s for %s failed: %s", name, short(sender_id), error)
            failed[name] = str(error)
    anonymised = kept = 0
    if orders is not None:
        try:
            anonymised, kept = orders.anonymise(sender_id)
        except (SQLAlchemyError, OSError) as error:
            logger.error("forget orders for %s failed: %s", short(sender_id), error)
            failed["orders"] = str(error)
    logger.info("forgot %s: deleted %s, %d orders anonymised", short(sender_id), deleted,
                anonymised)
    report = ForgetReport(sender_id, deleted, anonymised, kept, failed)
    return ForgetReport(**{**report.__dict__, "message": forget_message(report)})


def combined(reports: list[ForgetReport]) -> ForgetReport:
    """One report (and reply) for a shopper and their linked chats, forgotten together."""
    deleted: dict[str, int] = {}
    failed: dict[str, str] = {}
    for report in reports:
        for name, rows in report.deleted.items():
            deleted[name] = deleted.get(name, 0) + rows
        failed.update(report.failed)
    report = ForgetReport(reports[0].sender_id, deleted,
                          sum(r.orders_anonymised for r in reports),
                          sum(r.addresses_kept for r in reports), failed)
    return ForgetReport(**{**report.__dict__, "message": forget_message(report)})


def forget_message(report: ForgetReport) -> str:
    """The reply to "forget me": what is gone, what is kept and why."""
    gone = []
    if report.deleted.get("profile"):
        gone.append("your saved preferences")
    if report.deleted.get("cart"):
        n = report.deleted["cart"]
        gone.append(f"your cart ({n} item{'s' if n != 1 else ''})")
    if report.deleted.get("tickets"):
        gone.append("your support requests")
    if report.deleted.get("events"):
        gone.append("your browsing history")
    if report.deleted.get("links"):
        gone.append("the links to your other chats")
    if "conversation" in report.deleted:
        gone.append("our conversation history")
    text = ("Done: I've deleted " + _join(gone) + "." if gone
            else "I had nothing stored about you, so there was nothing to delete.")
    if report.orders_anonymised:
        n = report.orders_anonymised
        text += (f" Your {n} order{'s are' if n != 1 else ' is'} kept for the shop's accounts, "
                 "as invoices must be, but no longer linked to you")
        if report.addresses_kept:
            text += ("; an order still on its way keeps its delivery address until it arrives, "
                     "so quote its order number if you need help with it")
        text += "."
    if report.failed:
        text += (" Some of it couldn't be deleted just now (" + ", ".join(report.failed)
                 + "); please ask again in a moment or contact support.")
    return text


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
