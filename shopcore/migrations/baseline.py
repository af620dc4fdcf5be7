"""The shop schema as it stood before migrations (revision 0001), frozen.

Revision 0001 creates these tables; a database made before migrations existed (by the old
``metadata.create_all``) is completed with them and stamped instead (see
:func:`shopcore.migrations.upgrade`). Never edit this to change the schema: add a revision.
The column types are shop.db's own (``UTCDateTime``, ``Id``); changing one of those is a
revision too.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from shopcore.db import Id, UTCDateTime


def baseline_metadata() -> MetaData:
    """A fresh MetaData holding the 0001 tables (fresh, so it never mixes with shop.db's)."""
    metadata = MetaData()
    Table(
        "orders", metadata,
        Column("order_id", String(16), primary_key=True),
        Column("sender_id", Id, nullable=False),
        Column("status", String(32), nullable=False),
        Column("placed_at", UTCDateTime, nullable=False),
        Column("packed_at", UTCDateTime),
        Column("shipped_at", UTCDateTime),
        Column("expected_delivery", UTCDateTime),
        Column("delivered_at", UTCDateTime),
        Column("cancelled_at", UTCDateTime),
        Column("address", Text, nullable=False),
        Column("payment_method", String(32), nullable=False),
        Column("subtotal", Float, nullable=False),
        Column("shipping_fee", Float, nullable=False),
        Column("cod_fee", Float, nullable=False, server_default="0"),
        Column("total", Float, nullable=False),
        Column("invoice_number", String(32), nullable=False, unique=True),
        Index("orders_by_sender", "sender_id", "placed_at"),
    )
    Table(
        "order_items", metadata,
        Column("order_id", String(16), ForeignKey("orders.order_id", ondelete="CASCADE"),
               primary_key=True),
        Column("line_no", Integer, primary_key=True),
        Column("product_id", Id, nullable=False),
        Column("name", Text, nullable=False),
        Column("size", String(32), nullable=False, server_default=""),
        Column("qty", Integer, CheckConstraint("qty > 0"), nullable=False),
        Column("unit_price", Float, CheckConstraint("unit_price >= 0"), nullable=False),
        Column("returned_qty", Integer, nullable=False, server_default="0"),
    )
    Table(
        "refunds", metadata,
        Column("refund_id", String(32), primary_key=True),
        Column("order_id", String(16), ForeignKey("orders.order_id", ondelete="CASCADE"),
               nullable=False),
        Column("kind", String(16), nullable=False),
        Column("status", String(16), nullable=False),
        Column("reason", Text, nullable=False),
        Column("lines", JSON, nullable=False),
        Column("amount", Float, nullable=False),
        Column("requested_at", UTCDateTime, nullable=False),
        Column("approved_at", UTCDateTime),
        Column("refunded_at", UTCDateTime),
        Index("refunds_by_order", "order_id"),
    )
    Table(
        "cart_lines", metadata,
        Column("sender_id", Id, primary_key=True),
        Column("product_id", Id, primary_key=True),
        Column("size", String(32), primary_key=True, server_default=""),
        Column("qty", Integer, CheckConstraint("qty > 0"), nullable=False),
        Column("added_at", UTCDateTime, nullable=False),
        Column("position", Integer, nullable=False, server_default="0"),
    )
    Table(
        "profiles", metadata,
        Column("sender_id", Id, primary_key=True),
        Column("data", JSON, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
    )
    Table(
        "tickets", metadata,
        Column("ticket_id", String(16), primary_key=True),
        Column("sender_id", Id, nullable=False),
        Column("reason", Text, nullable=False),
        Column("intent", String(80), nullable=False, server_default=""),
        Column("transcript", JSON, nullable=False),
        Column("turns_dropped", Integer, nullable=False, server_default="0"),
        Column("status", String(16), nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Index("tickets_by_sender", "sender_id", "created_at"),
    )
    Table(
        "sender_links", metadata,
        Column("alias", Id, primary_key=True),
        Column("canonical", Id, nullable=False),
        Column("linked_at", Float, nullable=False),
        Index("sender_links_canonical", "canonical"),
    )
    Table(
        "sender_link_codes", metadata,
        Column("code", String(6), primary_key=True),
        Column("sender", Id, nullable=False, unique=True),
        Column("expires_at", Float, nullable=False),
    )
    Table(
        "sender_link_failures", metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("sender", Id, nullable=False),
        Column("at", Float, nullable=False),
        Index("sender_link_failures_at", "at"),
    )
    Table(
        "pending_purges", metadata,
        Column("sender_id", Id, primary_key=True),
    )
    Table(
        "sender_link_issued", metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("sender", Id, nullable=False),
        Column("at", Float, nullable=False),
        Index("sender_link_issued_sender_at", "sender", "at"),
    )
    Table(
        "product_events", metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("sender_id", Id, nullable=False),
        Column("product_id", Id, nullable=False),
        Column("event_type", String(16), nullable=False),
        Column("ts", Float, nullable=False),
        Index("product_events_by_sender", "sender_id", "ts"),
    )
    return metadata
