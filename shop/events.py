"""The shop's interaction log: what each shopper saw, opened, carted and bought.

Every product shown or handled in a conversation is appended here (table ``product_events``
of the shop database); the same log trains the shop's recommender (``shopbot recsys train
--events``) and gives the shopper's recent history at serving time. What the event kinds
mean is :mod:`recsys.events`'s business; storing them is this module's.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

from sqlalchemy import delete, func, insert, select

from recsys.events import INTERACTION_TYPES, Event, EventType
from shopcore.db import Database, product_events
from shopcore.ids import short, valid_id

logger = logging.getLogger(__name__)

_events = product_events
_STREAM_BATCH = 10_000


class EventLog:
    """Append-only event log with per-shopper reads and a right to be forgotten."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def funnel(self, since: float, until: float) -> dict[str, dict[str, int]]:
        """Per event kind in ``[since, until)``, in funnel order (shown, opened, carted,
        bought): events, and distinct shoppers."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(_events.c.event_type, func.count(),
                       func.count(func.distinct(_events.c.sender_id)))
                .where(_events.c.ts >= since, _events.c.ts < until)
                .group_by(_events.c.event_type))
            found = {kind: (int(n), int(people)) for kind, n, people in rows}
        return {kind.value: {"events": found.get(kind.value, (0, 0))[0],
                             "shoppers": found.get(kind.value, (0, 0))[1]}
                for kind in EventType}

    def log(
        self,
        sender_id: str,
        product_ids: Iterable[str],
        event_type: EventType | str,
        ts: float | None = None,
    ) -> int:
        """Record one event per product; bad ids are skipped with a log line, never raised."""
        kind = EventType(event_type)
        when = time.time() if ts is None else ts
        if not valid_id(sender_id):
            logger.warning("event not logged: bad sender id %s", short(sender_id))
            return 0
        return self._insert([Event(sender_id, pid, kind.value, when)
                             for pid in product_ids if valid_id(pid)])

    def log_many(self, events: Iterable[Event]) -> int:
        """Bulk insert (the simulator writes hundreds of thousands of events at once)."""
        return self._insert([Event(e.sender_id, e.product_id, EventType(e.event_type).value, e.ts)
                             for e in events if valid_id(e.sender_id) and valid_id(e.product_id)])

    def _insert(self, rows: list[Event]) -> int:
        if not rows:
            return 0
        with self.db.write() as conn:
            conn.execute(insert(_events), [
                {"sender_id": e.sender_id, "product_id": e.product_id,
                 "event_type": e.event_type, "ts": e.ts} for e in rows])
        return len(rows)

    def recent_items(
        self,
        sender_id: str,
        limit: int = 50,
        event_types: Sequence[EventType] = INTERACTION_TYPES,
    ) -> list[str]:
        """The shopper's last ``limit`` distinct products, oldest first (a model's history)."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(_events.c.product_id)
                .where(_events.c.sender_id == sender_id,
                       _events.c.event_type.in_([t.value for t in event_types]))
                .order_by(_events.c.ts.desc(), _events.c.id.desc()).limit(limit * 4)).all()
        newest_first = list(dict.fromkeys(pid for (pid,) in rows))[:limit]
        return newest_first[::-1]

    def items_of(self, sender_id: str, event_types: Sequence[EventType]) -> set[str]:
        """Every product of these kinds for this shopper (e.g. bought: don't recommend again)."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(_events.c.product_id).distinct()
                .where(_events.c.sender_id == sender_id,
                       _events.c.event_type.in_([t.value for t in event_types]))).all()
        return {pid for (pid,) in rows}

    def iter_events(self, event_types: Sequence[EventType] = INTERACTION_TYPES) -> Iterator[Event]:
        """All events of these kinds in time order: the training data (read in batches)."""
        kinds = [t.value for t in event_types]
        last: tuple[float, int] | None = None
        while True:
            query = (select(_events.c.id, _events.c.sender_id, _events.c.product_id,
                            _events.c.event_type, _events.c.ts)
                     .where(_events.c.event_type.in_(kinds))
                     .order_by(_events.c.ts, _events.c.id).limit(_STREAM_BATCH))
            if last is not None:
                query = query.where((_events.c.ts > last[0])
                                    | ((_events.c.ts == last[0]) & (_events.c.id > last[1])))
            with self.db.read() as conn:
                rows = conn.execute(query).all()
            for row in rows:
                yield Event(row.sender_id, row.product_id, row.event_type, row.ts)
            if len(rows) < _STREAM_BATCH:
                return
            last = (rows[-1].ts, rows[-1].id)

    def popularity(self, event_types: Sequence[EventType] = INTERACTION_TYPES) -> Counter[str]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(_events.c.product_id, func.count())
                .where(_events.c.event_type.in_([t.value for t in event_types]))
                .group_by(_events.c.product_id)).all()
        return Counter(dict(rows))

    def forget(self, sender_id: str) -> int:
        """Delete everything logged for this shopper ("forget me"); returns rows removed."""
        with self.db.write(sender_id) as conn:
            return conn.execute(delete(_events).where(_events.c.sender_id == sender_id)).rowcount

    def count(self) -> int:
        with self.db.read() as conn:
            return conn.execute(select(func.count()).select_from(_events)).scalar_one()
