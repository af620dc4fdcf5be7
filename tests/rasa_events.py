"""Conversations written the way Rasa's SQL tracker store writes them, for tests of what
reads that store (the console, "forget me") without running a Rasa turn per event."""

from __future__ import annotations

import json

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, create_engine, insert

# Rasa 3.6's SQLTrackerStore table (rasa/core/tracker_store.py, SQLEvent), as Rasa makes it.
RASA_EVENTS = Table(
    "events", MetaData(),
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255), nullable=False, index=True),
    Column("type_name", String(255), nullable=False),
    Column("timestamp", Float),
    Column("intent_name", String(255)),
    Column("action_name", String(255)),
    Column("data", Text),
)


def rasa_saves(url: str, sender: str, ts: float, turns: list[tuple[str, str, str | None]]
               ) -> None:
    """Events as Rasa stores them, one second apart from ``ts``: (kind, text or action
    name, intent) per event, kind being user, bot or action."""
    engine = create_engine(url)
    RASA_EVENTS.create(engine, checkfirst=True)
    rows = []
    for i, (kind, what, intent) in enumerate(turns):
        data: dict[str, object] = {"event": kind, "timestamp": ts + i}
        if kind == "user":
            data |= {"text": what, "parse_data": {"intent": {"name": intent, "confidence": 0.9}},
                     "input_channel": "rest"}
        elif kind == "bot":
            data |= {"text": what, "data": {}, "metadata": {}}
        else:
            data |= {"name": what}
        rows.append({"sender_id": sender, "type_name": kind, "timestamp": ts + i,
                     "intent_name": intent if kind == "user" else None,
                     "action_name": what if kind == "action" else None,
                     "data": json.dumps(data)})
    with engine.begin() as conn:
        conn.execute(insert(RASA_EVENTS), rows)
    engine.dispose()
