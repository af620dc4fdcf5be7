"""Teach the bot: messages it was unsure of, grouped by meaning, labelled by staff, and
written out as Rasa training data.

The console lists shopper messages that NLU fell back on or scored low
(:func:`shopcore.conversations.uncertain_messages`), grouped with the sentence encoder the
search already ships (:func:`group_by_meaning`), so one click labels a whole group. Labels are
kept here (table ``nlu_reviews``) until ``shopbot nlu export`` writes them as a Rasa NLU
file in ``bot/data/nlu/``; nothing is trained automatically: a person reviewed every
example, and ``shopbot train`` picks the file up like any other training data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import yaml
from sqlalchemy import insert, select, update

from shopcore.conversations import text_key
from shopcore.db import Database, as_utc, nlu_reviews, now_utc
from shopcore.text import BadInput, clean_text

logger = logging.getLogger(__name__)

OUT_OF_SCOPE = "out_of_scope"
SIMILAR = 0.72  # cosine similarity at which two messages join one group (MiniLM)
MAX_EXAMPLE_CHARS = 300


@dataclass(frozen=True)
class Review:
    text: str
    intent: str
    reviewed_by: str
    reviewed_at: datetime
    exported_at: datetime | None


def group_by_meaning(texts: list[str], encode: Callable[[list[str]], np.ndarray],
                     threshold: float = SIMILAR) -> list[list[int]]:
    """Indexes of ``texts`` in groups of similar meaning, in order of first appearance:
    each text joins the first group whose first member it is at least ``threshold``
    cosine-similar to (``encode`` gives unit-length rows)."""
    if not texts:
        return []
    vectors = encode(texts)
    groups: list[list[int]] = []
    for i in range(len(texts)):
        for group in groups:
            if float(vectors[group[0]] @ vectors[i]) >= threshold:
                group.append(i)
                break
        else:
            groups.append([i])
    return groups


class ReviewStore:
    """Staff labels for shopper messages, one per distinct text (a later label replaces)."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def label(self, texts: Iterable[str], intent: str, staff_email: str,
              known_intents: Iterable[str], *, now: datetime | None = None) -> int:
        """Label ``texts`` with ``intent`` (one of ``known_intents``, or out_of_scope);
        raises BadInput for an unknown intent. Returns how many were stored."""
        if intent not in set(known_intents) | {OUT_OF_SCOPE}:
            raise BadInput(f"Unknown intent {intent[:80]!r}.")
        now = as_utc(now) or now_utc()
        stored = 0
        with self.db.write("nlu reviews") as conn:
            for raw in texts:
                try:
                    text = clean_text(raw, what="message", max_chars=MAX_EXAMPLE_CHARS)
                except BadInput:
                    continue
                key = text_key(text)
                values = {"text": text, "intent": intent, "reviewed_by": staff_email,
                          "reviewed_at": now, "exported_at": None}
                if conn.execute(update(nlu_reviews).where(nlu_reviews.c.text_key == key)
                                .values(values)).rowcount == 0:
                    conn.execute(insert(nlu_reviews).values(text_key=key, **values))
                stored += 1
        logger.info("%d messages labelled %s by staff", stored, intent)
        return stored

    def reviewed_keys(self) -> set[str]:
        with self.db.read() as conn:
            return {row[0] for row in conn.execute(select(nlu_reviews.c.text_key))}

    def all(self) -> list[Review]:
        with self.db.read() as conn:
            rows = conn.execute(select(nlu_reviews).order_by(nlu_reviews.c.intent,
                                                             nlu_reviews.c.text_key))
            return [Review(r.text, r.intent, r.reviewed_by, r.reviewed_at, r.exported_at)
                    for r in rows]

    def mark_exported(self, *, now: datetime | None = None) -> int:
        with self.db.write("nlu reviews") as conn:
            return conn.execute(update(nlu_reviews).where(nlu_reviews.c.exported_at.is_(None))
                                .values(exported_at=as_utc(now) or now_utc())).rowcount


class LiteralText(str):
    """A YAML block scalar (``|``), the form Rasa's examples are written in."""


def _literal(dumper: yaml.SafeDumper, value: LiteralText) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(LiteralText, _literal)


def rasa_nlu_yaml(reviews: Iterable[Review]) -> str:
    """Reviewed messages as a Rasa 3 NLU training file, one block per intent."""
    by_intent: dict[str, list[str]] = {}
    for review in reviews:
        by_intent.setdefault(review.intent, []).append(review.text)
    nlu = [{"intent": intent,
            "examples": LiteralText("".join(f"- {_one_line(t)}\n" for t in sorted(texts)))}
           for intent, texts in sorted(by_intent.items())]
    header = ("# Written by `shopbot nlu export` from the messages staff labelled in the\n"
              "# console (Teach the bot). Regenerated on every export: label there, not here.\n")
    return header + yaml.dump({"version": "3.1", "nlu": nlu}, Dumper=_Dumper,
                              sort_keys=False, allow_unicode=True, width=1000)


def _one_line(text: str) -> str:
    """One example line; square brackets would read as Rasa entity markup, so they become
    round ones."""
    return " ".join(text.split()).replace("[", "(").replace("]", ")")
