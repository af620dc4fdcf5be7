"""orders.checkout_key: the checkout that made an order, so a retried checkout finds it.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("checkout_key", sa.String(64)))  # NULL: made otherwise
    op.create_index("orders_checkout_key", "orders", ["checkout_key"], unique=True)


def downgrade() -> None:
    op.drop_index("orders_checkout_key", table_name="orders")
    op.drop_column("orders", "checkout_key")
