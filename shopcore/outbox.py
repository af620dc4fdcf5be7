"""Messages for the chat widget that come outside a turn: a staff member's replies and the
"you are talking with a person" notices of a human handoff.

A messaging platform gets such messages pushed through its API (the channel's output
channel); a web page can only be answered, so the REST channel's output channel writes them
here, in Rasa's process, and the widget polls the web server for them (``/api/chat/updates``).
SQLAlchemy Core only: both virtualenvs import it.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, insert, select

from shopcore.db import Database, now_utc, widget_outbox
from shopcore.ids import short, valid_id

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 4000
KEPT_KEYS = ("text", "staff", "notice")  # what a message may carry to the page


class WidgetOutbox:
    """The widget's messages per conversation (sender id), in order, each with an id."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def put(self, sender_id: str, message: dict[str, Any]) -> int | None:
        """Queue one message (its text and who wrote it); returns its id, None if refused."""
        text = message.get("text")
        if not valid_id(sender_id) or not isinstance(text, str) or not text.strip():
            logger.warning("outbox: refused a message for %s (no text or bad id)",
                           short(sender_id))
            return None
        kept = {k: message[k] for k in KEPT_KEYS if isinstance(message.get(k), str | bool)}
        kept["text"] = text[:MAX_TEXT_CHARS]
        with self.db.write(sender_id) as conn:
            return conn.execute(insert(widget_outbox).values(
                sender_id=sender_id, message=kept, created_at=now_utc())).inserted_primary_key[0]

    def since(self, sender_id: str, after: int, limit: int = 50) -> list[dict[str, Any]]:
        """The conversation's messages with an id above ``after``, oldest first."""
        if not valid_id(sender_id):
            return []
        with self.db.read() as conn:
            rows = conn.execute(
                select(widget_outbox.c.id, widget_outbox.c.message)
                .where(widget_outbox.c.sender_id == sender_id, widget_outbox.c.id > after)
                .order_by(widget_outbox.c.id).limit(limit))
            return [{"id": r.id, **r.message} for r in rows]

    def last_id(self, sender_id: str) -> int:
        """The id of the conversation's newest message (0: none), where a new page starts."""
        if not valid_id(sender_id):
            return 0
        with self.db.read() as conn:
            return conn.execute(select(widget_outbox.c.id)
                                .where(widget_outbox.c.sender_id == sender_id)
                                .order_by(widget_outbox.c.id.desc()).limit(1)).scalar() or 0

    def delete_for(self, sender_id: str) -> int:
        if not valid_id(sender_id):
            return 0
        with self.db.write(sender_id) as conn:
            return conn.execute(delete(widget_outbox)
                                .where(widget_outbox.c.sender_id == sender_id)).rowcount
