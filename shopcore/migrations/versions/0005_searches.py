"""searches: every new product search with its result count, what was relaxed, and for
photo searches what the photo showed.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "searches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sender_id", sa.String(128), nullable=False),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("results", sa.Integer, nullable=False),
        sa.Column("exact", sa.Integer),
        sa.Column("relaxed", sa.String(120), nullable=False, server_default=""),
        sa.Column("predicted", sa.String(80)),
        sa.Column("confidence", sa.Float),
        sa.Column("ts", sa.Float, nullable=False),
    )
    op.create_index("searches_ts", "searches", ["ts"])
    op.create_index("searches_by_sender", "searches", ["sender_id", "ts"])


def downgrade() -> None:
    op.drop_index("searches_by_sender", table_name="searches")
    op.drop_index("searches_ts", table_name="searches")
    op.drop_table("searches")
