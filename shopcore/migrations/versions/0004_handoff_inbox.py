"""Human handoff from the console: who holds a ticket's conversation, and the widget outbox.

tickets.held_by / held_at: the staff member talking with the shopper (NULL: the bot);
widget_outbox: messages for the chat widget sent outside a turn (staff replies).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shopcore.db import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as table:
        table.add_column(sa.Column("held_by", sa.String(254)))
        table.add_column(sa.Column("held_at", UTCDateTime))
    op.create_table(
        "widget_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sender_id", sa.String(128), nullable=False),
        sa.Column("message", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("widget_outbox_by_sender", "widget_outbox", ["sender_id", "id"])


def downgrade() -> None:
    op.drop_index("widget_outbox_by_sender", table_name="widget_outbox")
    op.drop_table("widget_outbox")
    with op.batch_alter_table("tickets") as table:
        table.drop_column("held_at")
        table.drop_column("held_by")
