"""Alembic's environment for the shop database: always on the connection the caller holds.

:func:`shopcore.migrations.upgrade` opens the transaction and takes the migration lock, then
runs alembic inside it, so there is no alembic.ini and no URL here.
"""

from __future__ import annotations

from alembic import context

from shopcore.db import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through shopcore.migrations (shopbot db upgrade)")
context.configure(connection=connection, target_metadata=metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
