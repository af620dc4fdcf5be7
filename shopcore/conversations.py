"""Deleting a shopper's conversation from Rasa's tracker store, and the photos in it.

"Forget me" runs as an action in the middle of a turn; Rasa saves that turn's events only
after the action answers, so deleting the tracker rows from the action alone leaves the
last turn behind. The action therefore deletes what is there and *asks* for a purge (a row
in ``pending_purges``); the input channels, which run in Rasa's process, call
:func:`purge_requested` once Rasa has handled the message, which is after it saved the turn.
The shopper's photo uploads are found through the conversation (each photo message carries
its upload ref) and deleted with it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import closing
from pathlib import Path

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import SQLAlchemyError

from shopcore.db import BUSY_TIMEOUT_S, Database, pending_purges
from shopcore.ids import short, valid_id
from shopcore.settings import Settings
from shopcore.uploads import REF_PATTERN, UploadStore

logger = logging.getLogger(__name__)

TRACKER_TABLE = "events"  # Rasa 3.6 SQLTrackerStore


def _tracker(tracker_db: Path | str) -> sqlite3.Connection | None:
    path = Path(tracker_db)
    if not path.is_file():  # Rasa hasn't saved anything yet; never create the file here
        return None
    db = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_S)
    exists = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (TRACKER_TABLE,)).fetchone()
    if not exists:
        db.close()
        return None
    return db


def uploads_in_conversation(tracker_db: Path | str, sender_id: str) -> set[str]:
    """The upload refs of the photos ``sender_id`` sent (from the stored user messages)."""
    if not valid_id(sender_id):
        return set()
    db = _tracker(tracker_db)
    if db is None:
        return set()
    refs: set[str] = set()
    with closing(db):
        rows = db.execute(f"SELECT data FROM {TRACKER_TABLE} WHERE sender_id = ? AND "
                          "type_name = 'user'", (sender_id,))
        for (data,) in rows:
            try:
                upload = (json.loads(data).get("metadata") or {}).get("upload") or {}
            except (ValueError, AttributeError):
                continue
            ref = upload.get("ref") if isinstance(upload, dict) else None
            if isinstance(ref, str) and REF_PATTERN.match(ref):
                refs.add(ref)
    return refs


def delete_conversation(tracker_db: Path | str, sender_id: str) -> int:
    """Delete the sender's events from Rasa's SQLite tracker store; rows removed."""
    if not valid_id(sender_id):
        return 0
    db = _tracker(tracker_db)
    if db is None:
        return 0
    with closing(db), db:
        return db.execute(f"DELETE FROM {TRACKER_TABLE} WHERE sender_id = ?",
                          (sender_id,)).rowcount


def forget_conversation(tracker_db: Path | str, uploads: UploadStore | None,
                        sender_id: str) -> tuple[int, int]:
    """The sender's photos, then their conversation; (events, photos) removed."""
    photos = 0
    if uploads is not None:
        photos = sum(uploads.delete(ref) for ref in uploads_in_conversation(tracker_db,
                                                                             sender_id))
    return delete_conversation(tracker_db, sender_id), photos


def request_purge(database: Database, sender_ids: list[str]) -> None:
    """Ask the channels to delete these conversations once Rasa has saved the turn."""
    with database.write("pending purges") as conn:
        for sender in {s for s in sender_ids if valid_id(s)}:
            conn.execute(delete(pending_purges).where(pending_purges.c.sender_id == sender))
            conn.execute(insert(pending_purges).values(sender_id=sender))


def purge_requested(database: Database, tracker_db: Path | str,
                    uploads: UploadStore | None) -> list[str]:
    """Carry out every requested purge (called by the channels after each handled message,
    when Rasa has saved it); the senders purged. A failed purge stays requested."""
    with database.read() as conn:
        senders = [row[0] for row in conn.execute(select(pending_purges.c.sender_id))]
    done = []
    for sender in senders:
        try:
            events, photos = forget_conversation(tracker_db, uploads, sender)
        except (sqlite3.Error, OSError) as error:
            logger.error("conversation purge for %s failed (kept for the next message): %s",
                         short(sender), error)
            continue
        with database.write("pending purges") as conn:
            conn.execute(delete(pending_purges).where(pending_purges.c.sender_id == sender))
        logger.info("purged the conversation of %s: %d events, %d photos", short(sender),
                    events, photos)
        done.append(sender)
    return done


class Purges:
    """What an input channel needs to carry out requested purges after each message."""

    def __init__(self, database: Database, tracker_db: Path | str,
                 uploads: UploadStore | None) -> None:
        self.database, self.tracker_db, self.uploads = database, tracker_db, uploads

    @classmethod
    def from_settings(cls, settings: Settings) -> Purges:
        from shopcore.db import open_database

        return cls(open_database(settings.shop_database_url),
                   settings.tracker_db,  # type: ignore[arg-type]
                   UploadStore.from_settings(settings))

    def run(self) -> list[str]:
        try:
            return purge_requested(self.database, self.tracker_db, self.uploads)
        except SQLAlchemyError as error:  # the shop database is down: next message retries
            logger.error("could not read the requested purges: %s", error)
            return []
