"""The search log: every new product search, how many products it found and what had to be
relaxed to find any. The staff console reads it for top searches and for the searches that
found nothing or needed relaxing (what the catalog lacks), and per conversation for whether
a shopper found products."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import case, delete, func, insert, select

from shopcore.db import Database, searches
from shopcore.ids import short, valid_id
from shopcore.text import clip

logger = logging.getLogger(__name__)

MAX_QUERY_CHARS = 300
CONFIDENT = 0.5


@dataclass(frozen=True)
class SearchCount:
    """One query (lower-cased, spaces squeezed) and how often it was asked in a period."""

    query: str
    searches: int
    nothing_found: int  # searches that showed no product
    relaxed: int  # searches that showed products only after dropping part of the request


@dataclass(frozen=True)
class PhotoCount:
    """Photo searches of one predicted product type in a period."""

    predicted: str
    searches: int
    mean_confidence: float
    confident: int  # scored at least CONFIDENT


class SearchLog:
    def __init__(self, database: Database) -> None:
        self.db = database

    def log(self, sender_id: str, query: str, *, kind: str, results: int,
            exact: int | None = None, relaxed: Iterable[str] = (),
            predicted: str | None = None, confidence: float | None = None,
            ts: float | None = None) -> None:
        """Record one search; a bad sender id is skipped with a log line."""
        if not valid_id(sender_id):
            logger.warning("search not logged: bad sender id %s", short(sender_id))
            return
        words = " ".join(str(query).split()).lower()
        with self.db.write() as conn:
            conn.execute(insert(searches).values(
                sender_id=sender_id, query=clip(words, MAX_QUERY_CHARS), kind=kind,
                results=max(0, int(results)), exact=exact,
                relaxed=",".join(relaxed)[:120], predicted=predicted[:80] if predicted else None,
                confidence=confidence, ts=time.time() if ts is None else ts))

    def counts(self, since: float, until: float, limit: int = 50,
               problems_only: bool = False) -> list[SearchCount]:
        """The most asked queries in ``[since, until)``; ``problems_only``: only those that
        found nothing or needed relaxing, the most troubled first."""
        empty = func.sum(case((searches.c.results == 0, 1), else_=0))
        relaxed = func.sum(case(((searches.c.results > 0) & (searches.c.relaxed != ""), 1),
                                else_=0))
        asked = func.count()
        statement = (select(searches.c.query, asked, empty, relaxed)
                     .where(searches.c.ts >= since, searches.c.ts < until,
                            searches.c.query != "")
                     .group_by(searches.c.query))
        if problems_only:
            statement = statement.having(empty + relaxed > 0).order_by(
                (empty + relaxed).desc(), asked.desc(), searches.c.query)
        else:
            statement = statement.order_by(asked.desc(), searches.c.query)
        with self.db.read() as conn:
            return [SearchCount(q, int(n), int(e or 0), int(r or 0))
                    for q, n, e, r in conn.execute(statement.limit(limit))]

    def photo_types(self, since: float, until: float) -> list[PhotoCount]:
        """Photo searches per predicted product type: how many, and how confident."""
        confident = func.sum(case((searches.c.confidence >= CONFIDENT, 1), else_=0))
        with self.db.read() as conn:
            rows = conn.execute(
                select(searches.c.predicted, func.count(), func.avg(searches.c.confidence),
                       confident)
                .where(searches.c.kind == "photo", searches.c.ts >= since,
                       searches.c.ts < until)
                .group_by(searches.c.predicted).order_by(func.count().desc()))
            return [PhotoCount(p or "(not recognised)", int(n), float(a or 0), int(c or 0))
                    for p, n, a, c in rows]

    def outcomes(self, sender_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
        """Per shopper: (searches that showed products, searches that showed none)."""
        wanted = [s for s in set(sender_ids) if valid_id(s)]
        if not wanted:
            return {}
        found = func.sum(case((searches.c.results > 0, 1), else_=0))
        empty = func.sum(case((searches.c.results == 0, 1), else_=0))
        with self.db.read() as conn:
            rows = conn.execute(select(searches.c.sender_id, found, empty)
                                .where(searches.c.sender_id.in_(wanted))
                                .group_by(searches.c.sender_id))
            return {sender: (int(f or 0), int(e or 0)) for sender, f, e in rows}

    def delete_for(self, sender_id: str) -> int:
        """Forget the shopper's searches ("forget me"); returns how many."""
        if not valid_id(sender_id):
            return 0
        with self.db.write(sender_id) as conn:
            return conn.execute(delete(searches).where(searches.c.sender_id == sender_id)
                                ).rowcount
