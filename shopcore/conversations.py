"""Reading and deleting a shopper's conversation in Rasa's tracker store (and the photos in it).

Reading: :func:`read_turns` gives the staff console a conversation turn by turn (what the
shopper wrote with the intent Rasa recognised, what the bot or a staff member answered, when
a person took over) straight from Rasa's events table, so it works for every channel.

Deleting:
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
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    case,
    create_engine,
    delete,
    func,
    insert,
    inspect,
    or_,
    select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from shopcore.db import BUSY_TIMEOUT_S, Database, as_url, driver_url, pending_purges
from shopcore.ids import CHANNEL_PREFIXES, short, valid_id
from shopcore.settings import Settings
from shopcore.uploads import REF_PATTERN, UploadStore

logger = logging.getLogger(__name__)

TRACKER_TABLE = "events"  # Rasa 3.6 SQLTrackerStore
# The columns of Rasa's tracker table used here; Rasa makes and owns the table.
_events = Table(
    TRACKER_TABLE, MetaData(),
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255), nullable=False),
    Column("type_name", String(255), nullable=False),
    Column("timestamp", Float),
    Column("intent_name", String(255)),
    Column("action_name", String(255)),
    Column("data", Text),
)

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _engine(url: str) -> Engine | None:
    """An engine on the tracker store at ``url``; None for a SQLite file Rasa hasn't made
    yet (never create it here: opened read-write only, ``mode=rw``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if not path.is_file():
            return None
        url = f"sqlite:///file:{path.resolve()}?mode=rw&uri=true"
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):  # a file beside Rasa's: no connections kept open
                engine = create_engine(url, future=True, poolclass=NullPool,
                                       connect_args={"timeout": BUSY_TIMEOUT_S})
            else:
                engine = create_engine(driver_url(url), future=True, pool_pre_ping=True)
            _engines[url] = engine
        return engine


def _tracker(tracker: str | Path) -> Engine | None:
    """Rasa's tracker store (an SQLAlchemy URL, or a SQLite file's path) when it holds the
    events table; Rasa makes it on the first save, so until someone talked there is none."""
    engine = _engine(as_url(tracker))
    if engine is None:
        return None
    with engine.connect() as conn:
        return engine if inspect(conn).has_table(TRACKER_TABLE) else None


TURN_EVENTS = ("user", "bot", "pause", "resume")
MAX_TURNS_READ = 1000


def _turn(row_id: int, type_name: str, data: str | None) -> dict[str, Any] | None:
    """One stored event as the console shows it; None for one it can't read."""
    try:
        event = json.loads(data or "{}")
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    turn: dict[str, Any] = {"id": row_id, "ts": event.get("timestamp")}
    if type_name in ("pause", "resume"):
        return turn | {"role": "paused" if type_name == "pause" else "resumed", "text": ""}
    text = event.get("text") if isinstance(event.get("text"), str) else ""
    if type_name == "user":
        intent = (event.get("parse_data") or {}).get("intent") or {}
        return turn | {"role": "user", "text": text, "intent": intent.get("name") or "",
                       "confidence": intent.get("confidence"),
                       "channel": event.get("input_channel") or ""}
    metadata = event.get("metadata") if isinstance(event.get("metadata"), dict) else {}
    custom = (event.get("data") or {}).get("custom")
    products = []
    if isinstance(custom, dict) and custom.get("type") == "product_cards":
        products = [str(p.get("name", ""))[:120] for p in custom.get("products") or []
                    if isinstance(p, dict)]
        text = text or str(custom.get("intro") or "")
    staff = metadata.get("staff")
    return turn | {"role": "staff" if isinstance(staff, str) else "bot", "text": text,
                   "staff": staff if isinstance(staff, str) else None, "products": products}


def read_turns(tracker: str | Path, sender_id: str, after: int = 0,
               limit: int = MAX_TURNS_READ) -> list[dict[str, Any]]:
    """The conversation's messages (and pauses) with an event id above ``after``, oldest
    first; each has ``id``, ``role`` (user, bot, staff, paused, resumed), ``text``, ``ts``,
    and for the shopper's messages the ``intent`` and ``confidence`` Rasa gave them."""
    if not valid_id(sender_id):
        return []
    engine = _tracker(tracker)
    if engine is None:
        return []
    with engine.connect() as conn:
        rows = conn.execute(
            select(_events.c.id, _events.c.type_name, _events.c.data)
            .where(_events.c.sender_id == sender_id, _events.c.id > after,
                   _events.c.type_name.in_(TURN_EVENTS))
            .order_by(_events.c.id.desc()).limit(limit)).all()
    turns = (_turn(r.id, r.type_name, r.data) for r in reversed(rows))
    return [t for t in turns if t is not None]


FALLBACK_ACTIONS = ("action_fallback", "action_default_fallback")
WIDGET_PREFIXES = ("web:", "customer:", "demo:")


def channel_of(sender_id: str) -> str:
    """Where a conversation happens, from the sender id's namespace."""
    prefix = sender_id.partition(":")[0] + ":"
    if prefix in WIDGET_PREFIXES:
        return "widget"
    return prefix[:-1] if prefix in CHANNEL_PREFIXES else "other"


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def list_conversations(
    tracker: str | Path, *, since: float, until: float, shopper: str = "",
    channel: str = "", intent: str = "", text: str = "", limit: int = 200,
) -> list[dict[str, Any]]:
    """Conversations with events in ``[since, until)``, the latest first: ``key`` (an event
    id of theirs, what the console links by), ``sender_id``, ``started`` and ``last`` (epoch
    seconds), ``turns`` (shopper messages), ``handed_off``, ``fell_back``, ``intents``
    (intent: count). Filters: sender id prefix, channel, a recognised intent, words the
    shopper wrote."""
    engine = _tracker(tracker)
    if engine is None:
        return []
    user = _events.c.type_name == "user"
    flag = lambda condition: func.max(case((condition, 1), else_=0))  # noqa: E731
    where = [_events.c.timestamp >= since, _events.c.timestamp < until]
    if shopper:
        where.append(_events.c.sender_id.like(_like_prefix(shopper), escape="\\"))
    if channel:
        prefixes = WIDGET_PREFIXES if channel == "widget" else (f"{channel}:",)
        where.append(or_(*(_events.c.sender_id.like(_like_prefix(p), escape="\\")
                           for p in prefixes)))
    statement = (
        select(_events.c.sender_id, func.min(_events.c.id).label("key"),
               func.min(_events.c.timestamp).label("started"),
               func.max(_events.c.timestamp).label("last"),
               func.sum(case((user, 1), else_=0)).label("turns"),
               flag(_events.c.action_name == "action_handoff").label("handed_off"),
               flag((_events.c.intent_name == "nlu_fallback")
                    | _events.c.action_name.in_(FALLBACK_ACTIONS)).label("fell_back"))
        .where(*where).group_by(_events.c.sender_id))
    if intent:
        statement = statement.having(flag(user & (_events.c.intent_name == intent)) == 1)
    if text:
        pattern = "%" + _like_prefix(text.lower())
        statement = statement.having(
            flag(user & func.lower(_events.c.data).like(pattern, escape="\\")) == 1)
    with engine.connect() as conn:
        rows = conn.execute(statement.order_by(func.max(_events.c.timestamp).desc())
                            .limit(limit)).all()
        senders = [r.sender_id for r in rows]
        intents: dict[str, dict[str, int]] = {s: {} for s in senders}
        if senders:
            for sender, name, count in conn.execute(
                    select(_events.c.sender_id, _events.c.intent_name, func.count())
                    .where(_events.c.sender_id.in_(senders), user, *where[:2])
                    .group_by(_events.c.sender_id, _events.c.intent_name)):
                if name:
                    intents[sender][name] = int(count)
    return [{"key": r.key, "sender_id": r.sender_id, "channel": channel_of(r.sender_id),
             "started": r.started, "last": r.last, "turns": int(r.turns or 0),
             "handed_off": bool(r.handed_off), "fell_back": bool(r.fell_back),
             "intents": intents[r.sender_id]} for r in rows]


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).date().isoformat()


def daily_activity(tracker: str | Path, since: float, until: float) -> dict[str, dict[str, int]]:
    """Per UTC day in ``[since, until)``: conversations (shoppers who wrote), shopper
    messages, and those of them NLU fell back on."""
    engine = _tracker(tracker)
    days: dict[str, dict[str, Any]] = {}
    if engine is None:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(_events.c.sender_id, _events.c.timestamp, _events.c.intent_name)
            .where(_events.c.type_name == "user", _events.c.timestamp >= since,
                   _events.c.timestamp < until))
        for sender, ts, intent in rows:
            day = days.setdefault(_day(ts), {"senders": set(), "messages": 0, "fallbacks": 0})
            day["senders"].add(sender)
            day["messages"] += 1
            day["fallbacks"] += intent == "nlu_fallback"
    return {d: {"conversations": len(v["senders"]), "messages": v["messages"],
                "fallbacks": v["fallbacks"]} for d, v in sorted(days.items())}


RECOMMEND_ACTION = "action_recommend_products"
OPEN_ACTIONS = ("action_product_details", "action_compare_products", "action_add_to_cart")
NEW_LIST_ACTIONS = ("action_search_products", "action_photo_search", "action_refine_search")


def recommendation_clicks(tracker: str | Path, since: float, until: float
                          ) -> dict[str, dict[str, int]]:
    """Per UTC day: recommendations shown, and how many a shopper then acted on (opened,
    compared or carted one of them before asking for anything else to be listed)."""
    engine = _tracker(tracker)
    if engine is None:
        return {}
    watched = (RECOMMEND_ACTION, *OPEN_ACTIONS, *NEW_LIST_ACTIONS)
    days: dict[str, dict[str, int]] = {}
    pending: dict[str, str] = {}  # sender -> day of the recommendation not yet acted on
    with engine.connect() as conn:
        rows = conn.execute(
            select(_events.c.sender_id, _events.c.timestamp, _events.c.action_name)
            .where(_events.c.type_name == "action", _events.c.action_name.in_(watched),
                   _events.c.timestamp >= since, _events.c.timestamp < until)
            .order_by(_events.c.id))
        for sender, ts, action in rows:
            if action == RECOMMEND_ACTION:
                day = _day(ts)
                days.setdefault(day, {"shown": 0, "opened": 0})["shown"] += 1
                pending[sender] = day
            elif action in OPEN_ACTIONS and sender in pending:
                days[pending.pop(sender)]["opened"] += 1
            else:
                pending.pop(sender, None)
    return dict(sorted(days.items()))


def text_key(text: str) -> str:
    """The form messages are compared in: lower-case, whitespace squeezed."""
    return " ".join(text.split()).lower()[:300]


def uncertain_messages(tracker: str | Path, since: float, until: float,
                       threshold: float, limit: int = 5000) -> list[dict[str, Any]]:
    """Shopper messages of ``[since, until)`` that NLU fell back on or scored below
    ``threshold``, one entry per distinct text (most frequent first): ``text``, ``intent``
    and ``confidence`` (the latest), ``count``. Button payloads (``/intent``) are left out."""
    engine = _tracker(tracker)
    if engine is None:
        return []
    found: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(_events.c.intent_name, _events.c.data)
            .where(_events.c.type_name == "user", _events.c.timestamp >= since,
                   _events.c.timestamp < until)
            .order_by(_events.c.id.desc()).limit(limit))
        for intent, data in rows:
            try:
                event = json.loads(data or "{}")
                confidence = float(((event.get("parse_data") or {}).get("intent") or {})
                                   .get("confidence") or 0)
            except (ValueError, TypeError, AttributeError):
                continue
            text = event.get("text")
            if not isinstance(text, str) or not text.strip() or text.startswith("/"):
                continue
            if intent != "nlu_fallback" and confidence >= threshold:
                continue
            entry = found.setdefault(text_key(text), {"text": text.strip(), "intent": intent,
                                                      "confidence": confidence, "count": 0})
            entry["count"] += 1
    return sorted(found.values(), key=lambda e: (-e["count"], e["text"]))


def sender_of(tracker: str | Path, key: int) -> str | None:
    """The conversation an event id belongs to (the console's links name conversations by
    an event id, so sender ids - half of a web shopper's session - stay out of URLs)."""
    engine = _tracker(tracker)
    if engine is None:
        return None
    with engine.connect() as conn:
        return conn.execute(select(_events.c.sender_id).where(_events.c.id == key)).scalar()


def uploads_in_conversation(tracker: str | Path, sender_id: str) -> set[str]:
    """The upload refs of the photos ``sender_id`` sent (from the stored user messages)."""
    if not valid_id(sender_id):
        return set()
    engine = _tracker(tracker)
    if engine is None:
        return set()
    refs: set[str] = set()
    with engine.connect() as conn:
        rows = conn.execute(select(_events.c.data).where(_events.c.sender_id == sender_id,
                                                         _events.c.type_name == "user"))
        for (data,) in rows:
            try:
                upload = (json.loads(data).get("metadata") or {}).get("upload") or {}
            except (ValueError, TypeError, AttributeError):
                continue
            ref = upload.get("ref") if isinstance(upload, dict) else None
            if isinstance(ref, str) and REF_PATTERN.match(ref):
                refs.add(ref)
    return refs


def delete_conversation(tracker: str | Path, sender_id: str) -> int:
    """Delete the sender's events from Rasa's tracker store; rows removed."""
    if not valid_id(sender_id):
        return 0
    engine = _tracker(tracker)
    if engine is None:
        return 0
    with engine.begin() as conn:
        return conn.execute(delete(_events).where(_events.c.sender_id == sender_id)).rowcount


def forget_conversation(tracker: str | Path, uploads: UploadStore | None,
                        sender_id: str) -> tuple[int, int]:
    """The sender's photos, then their conversation; (events, photos) removed. ``tracker``
    is Rasa's tracker store: ``Settings.tracker_store_url``, or a SQLite file's path."""
    photos = 0
    if uploads is not None:
        photos = sum(uploads.delete(ref) for ref in uploads_in_conversation(tracker, sender_id))
    return delete_conversation(tracker, sender_id), photos


def request_purge(database: Database, sender_ids: list[str]) -> None:
    """Ask the channels to delete these conversations once Rasa has saved the turn."""
    with database.write("pending purges") as conn:
        for sender in {s for s in sender_ids if valid_id(s)}:
            conn.execute(delete(pending_purges).where(pending_purges.c.sender_id == sender))
            conn.execute(insert(pending_purges).values(sender_id=sender))


def purge_requested(database: Database, tracker: str | Path,
                    uploads: UploadStore | None) -> list[str]:
    """Carry out every requested purge (called by the channels after each handled message,
    when Rasa has saved it); the senders purged. A failed purge stays requested."""
    with database.read() as conn:
        senders = [row[0] for row in conn.execute(select(pending_purges.c.sender_id))]
    done = []
    for sender in senders:
        try:
            events, photos = forget_conversation(tracker, uploads, sender)
        except (SQLAlchemyError, OSError) as error:
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

    def __init__(self, database: Database, tracker: str | Path,
                 uploads: UploadStore | None) -> None:
        self.database, self.tracker, self.uploads = database, tracker, uploads

    @classmethod
    def from_settings(cls, settings: Settings) -> Purges:
        from shopcore.db import open_database

        return cls(open_database(settings.shop_database_url),
                   settings.tracker_store_url,
                   UploadStore.from_settings(settings))

    def run(self) -> list[str]:
        try:
            return purge_requested(self.database, self.tracker, self.uploads)
        except SQLAlchemyError as error:  # the shop database is down: next message retries
            logger.error("could not read the requested purges: %s", error)
            return []
