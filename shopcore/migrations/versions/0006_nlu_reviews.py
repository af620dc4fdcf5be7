"""nlu_reviews: shopper messages the bot was unsure of, labelled by staff.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shopcore.db import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nlu_reviews",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("text_key", sa.String(300), nullable=False, unique=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("intent", sa.String(80), nullable=False),
        sa.Column("reviewed_by", sa.String(254), nullable=False),
        sa.Column("reviewed_at", UTCDateTime, nullable=False),
        sa.Column("exported_at", UTCDateTime),
    )


def downgrade() -> None:
    op.drop_table("nlu_reviews")
