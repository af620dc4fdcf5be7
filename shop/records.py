"""Every shop store over one database, opened from settings: the one entry point the action
server, the CLI and the tests use."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shop.cart import CartStore
from shop.events import EventLog
from shop.orders import OrderStore
from shop.privacy import ForgetReport, combined, forget_shopper
from shop.profile import ProfileStore
from shop.rules import OrderRules
from shop.searches import SearchLog
from shop.tickets import TicketStore
from shopcore.conversations import request_purge
from shopcore.db import Database, open_database
from shopcore.ids import valid_id
from shopcore.links import LinkStore
from shopcore.settings import Settings
from shopcore.uploads import UploadStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShopRecords:
    """The shop's data: orders, carts, profiles, tickets, the event log and channel links."""

    db: Database
    orders: OrderStore
    cart: CartStore
    profiles: ProfileStore
    tickets: TicketStore
    events: EventLog
    links: LinkStore
    searches: SearchLog
    tracker: str | None = None  # Rasa's tracker store, an SQLAlchemy URL
    uploads: UploadStore | None = None

    @classmethod
    def open(cls, settings: Settings, rules: OrderRules | None = None,
             contact_hours: str = "") -> ShopRecords:
        """The stores over ``settings.database_url``; ``rules`` and ``contact_hours`` come
        from the shop's policy file (see :func:`policy_terms`)."""
        database = open_database(settings.shop_database_url)
        return cls(db=database, orders=OrderStore(database, rules),
                   cart=CartStore(database), profiles=ProfileStore(database),
                   tickets=TicketStore(database, contact_hours=contact_hours),
                   events=EventLog(database), links=LinkStore(database),
                   searches=SearchLog(database), tracker=settings.tracker_store_url,
                   uploads=UploadStore.from_settings(settings))

    def forget(self, sender_id: str) -> ForgetReport:
        """'Forget me': everything held about the shopper and every chat linked to them (see
        :mod:`shop.privacy`); the conversations are purged again once Rasa saved the turn."""
        chats = [sender_id, *self.links.aliases(sender_id)] if valid_id(sender_id) \
            else [sender_id]
        reports = [forget_shopper(chat, orders=self.orders, cart=self.cart,
                                  profile=self.profiles, tickets=self.tickets,
                                  events=self.events, links=self.links,
                                  searches=self.searches,
                                  tracker=self.tracker, uploads=self.uploads)
                   for chat in chats]
        if valid_id(sender_id):
            request_purge(self.db, chats)
        return combined(reports)


def policy_terms() -> tuple[OrderRules, str]:
    """The order rules and contact hours of the shop's policy file; the defaults (which
    match the shipped file) when it can't be read, so orders never stop over it."""
    from retrieval.policy import current_policy

    try:
        policy = current_policy()
        return OrderRules.from_policy(policy), policy.contact.hours
    except Exception:
        logger.exception("shop policy unusable for order rules: using defaults")
        return OrderRules(), ""
