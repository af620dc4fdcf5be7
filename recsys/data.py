"""User sequences: loaders (Amazon 5-core text, events logs), item id mapping, splits, tensors.

Internally items are integers ``1..n_items``; ``0`` is padding everywhere, so one embedding
table and one score column layout serve every model. External ids stay strings because a
shop's product ids ("15970") are strings in the catalog and in the events log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sqlalchemy import column, create_engine, select
from sqlalchemy import table as sql_table
from sqlalchemy.pool import NullPool

from shopcore.db import driver_url

logger = logging.getLogger(__name__)

PAD = 0


class ItemVocab:
    """External item id (str) <-> internal index (1-based; 0 is padding)."""

    def __init__(self, item_ids: Sequence[str]) -> None:
        self.item_ids: list[str] = [str(i) for i in item_ids]
        self.index: dict[str, int] = {item: n + 1 for n, item in enumerate(self.item_ids)}
        if len(self.index) != len(self.item_ids):
            raise ValueError("item ids must be unique")

    def __len__(self) -> int:
        return len(self.item_ids)

    def __contains__(self, item_id: object) -> bool:
        return str(item_id) in self.index

    def to_index(self, item_id: str) -> int:
        """Internal index, or 0 (padding) for an id the vocabulary has never seen."""
        return self.index.get(str(item_id), PAD)

    def to_id(self, index: int) -> str:
        return self.item_ids[index - 1]

    def fingerprint(self) -> str:
        """Order-sensitive hash: a model's score columns are only valid for this exact list."""
        return catalog_fingerprint(self.item_ids)


def catalog_fingerprint(item_ids: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for item in item_ids:
        digest.update(str(item).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:16]


@dataclass
class SequenceDataset:
    """One time-ordered list of internal item indices per user."""

    sequences: list[list[int]]
    vocab: ItemVocab
    user_ids: list[str]
    name: str = "dataset"

    @property
    def n_items(self) -> int:
        return len(self.vocab)

    @property
    def n_interactions(self) -> int:
        return sum(len(s) for s in self.sequences)

    def summary(self) -> dict[str, int | str]:
        return {"name": self.name, "users": len(self.sequences), "items": self.n_items,
                "interactions": self.n_interactions}


def load_amazon(path: str | Path, name: str | None = None) -> SequenceDataset:
    """Read ``user item item ...`` lines (items in time order), as in the SASRec/S3-Rec files.

    Internal index equals the file's item id when ids are the usual dense ``1..N`` integers,
    which keeps ``*_item2attributes.json`` aligned without a lookup.
    """
    path = Path(path)
    raw_users: list[str] = []
    raw_sequences: list[list[str]] = []
    skipped = 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) < 2:
                skipped += bool(parts)
                continue
            raw_users.append(parts[0])
            raw_sequences.append(parts[1:])
    if skipped:
        logger.warning("%s: skipped %d lines without items", path, skipped)
    unique = {item for seq in raw_sequences for item in seq}
    ordered = sorted(unique, key=lambda s: (0, int(s), s) if s.isdigit() else (1, 0, s))
    vocab = ItemVocab(ordered)
    sequences = [[vocab.index[item] for item in seq] for seq in raw_sequences]
    return SequenceDataset(sequences, vocab, raw_users, name or path.stem)


def load_item_attributes(path: str | Path, vocab: ItemVocab) -> list[list[int]]:
    """Attribute ids per internal item (index 0 = padding), from ``*_item2attributes.json``.

    Attribute ids are shifted by one so 0 can pad ragged lists.
    """
    mapping = json.loads(Path(path).read_text(encoding="utf-8"))
    attributes: list[list[int]] = [[] for _ in range(len(vocab) + 1)]
    for item_id, attrs in mapping.items():
        index = vocab.to_index(item_id)
        if index:
            attributes[index] = [int(a) + 1 for a in attrs]
    return attributes


# --------------------------------------------------------------------------- events log

EventRow = tuple[str, str, str, float]
EVENT_COLUMNS = ("user_id", "item_id", "event_type", "timestamp")
# The shop's own interaction log (shopcore.db.product_events), in its database or a copy.
SHOP_EVENTS_TABLE = "product_events"
SHOP_EVENT_COLUMNS = ("sender_id", "product_id", "event_type", "ts")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def sequences_from_events(
    rows: Iterable[Sequence[object]],
    event_types: Collection[str] | None = None,
    min_length: int = 1,
    vocab: ItemVocab | None = None,
    name: str = "events",
) -> SequenceDataset:
    """Group ``(user, item, event_type, timestamp)`` rows into time-ordered user sequences.

    Consecutive repeats of one item (view, then add-to-cart of the same product) collapse to
    one step: they say nothing about what comes next. With ``vocab`` given, items outside it
    are dropped (scoring a fixed catalog); otherwise the vocabulary is built from the rows.
    Malformed rows are skipped and counted in one log line.
    """
    by_user: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
    malformed = 0
    for order, row in enumerate(rows):
        try:
            user, item, event_type, timestamp = row[0], row[1], row[2], row[3]
            ts = float(timestamp)  # type: ignore[arg-type]
        except (TypeError, ValueError, IndexError):
            malformed += 1
            continue
        if user is None or item is None or str(item).strip() == "":
            malformed += 1
            continue
        if event_types is not None and str(event_type) not in event_types:
            continue
        by_user[str(user)].append((ts, order, str(item).strip()))
    if malformed:
        logger.warning("events: skipped %d malformed rows", malformed)

    user_items: list[tuple[str, list[str]]] = []
    for user, events in by_user.items():
        events.sort()
        items: list[str] = []
        for _, _, item in events:
            if not items or items[-1] != item:
                items.append(item)
        user_items.append((user, items))

    if vocab is None:
        seen: dict[str, None] = {}
        for _, items in user_items:
            for item in items:
                seen.setdefault(item, None)
        vocab = ItemVocab(list(seen))
    sequences, users, dropped = [], [], 0
    for user, items in user_items:
        seq = [vocab.to_index(item) for item in items]
        kept = [i for i in seq if i != PAD]
        dropped += len(seq) - len(kept)
        deduped = [i for n, i in enumerate(kept) if n == 0 or kept[n - 1] != i]
        if len(deduped) >= min_length:
            sequences.append(deduped)
            users.append(user)
    if dropped:
        logger.info("events: dropped %d events on items outside the vocabulary", dropped)
    return SequenceDataset(sequences, vocab, users, name)


def read_events_db(
    source: str | Path,
    table: str = "events",
    columns: tuple[str, str, str, str] | None = None,
) -> Iterator[EventRow]:
    """Stream ``(user, item, event_type, timestamp)`` rows from a table of any database the
    shop runs on: an SQLAlchemy URL (a live shop database on PostgreSQL), or a SQLite file's
    path (opened read-only). ``columns`` default to the shop's own for its interaction log
    (``product_events``), else ``user_id, item_id, event_type, timestamp``."""
    if columns is None:
        columns = SHOP_EVENT_COLUMNS if table == SHOP_EVENTS_TABLE else EVENT_COLUMNS
    for identifier in (table, *columns):
        if not _IDENTIFIER.match(identifier):
            raise ValueError(f"not a plain SQL identifier: {identifier!r}")
    text = str(source)
    url = (driver_url(text) if "://" in text
           else f"sqlite:///file:{Path(text).resolve()}?mode=ro&uri=true")
    engine = create_engine(url, poolclass=NullPool)
    query = select(*(column(name) for name in columns)).select_from(sql_table(table))
    try:
        with engine.connect() as connection:
            for row in connection.execution_options(stream_results=True).execute(query):
                yield tuple(row)  # type: ignore[misc]
    finally:
        engine.dispose()


def read_events_csv(path: str | Path) -> Iterator[EventRow]:
    """Rows of a CSV with a header naming ``user_id, item_id, event_type, timestamp``."""
    import csv

    with Path(path).open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            yield (row.get("user_id"), row.get("item_id"), row.get("event_type") or "",
                   row.get("timestamp"))  # type: ignore[misc]


SQLITE_SUFFIXES = {".db", ".sqlite", ".sqlite3"}


def load_sequences(
    source: str | Path, event_types: Collection[str] | None = None, table: str = "events"
) -> SequenceDataset:
    """Any supported source: a database URL (events ``table``), or a file by its suffix:
    Amazon ``.txt``, SQLite events, CSV events."""
    if "://" in str(source):
        rows = read_events_db(str(source), table)
        return sequences_from_events(rows, event_types, min_length=1, name=table)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"interactions file not found: {path}")
    if path.suffix in SQLITE_SUFFIXES:
        rows = read_events_db(path, table)
        return sequences_from_events(rows, event_types, min_length=1, name=path.stem)
    if path.suffix == ".csv":
        return sequences_from_events(read_events_csv(path), event_types, name=path.stem)
    return load_amazon(path)


def remap_dataset(dataset: SequenceDataset, vocab: ItemVocab) -> SequenceDataset:
    """The same sequences in another vocabulary (a trained model's); unknown items become 0.

    Zeros are kept (not dropped) so a held-out item the model never saw counts as a miss.
    """
    mapping = np.array([0] + [vocab.to_index(i) for i in dataset.vocab.item_ids], dtype=np.int64)
    sequences = [mapping[np.asarray(seq, dtype=np.int64)].tolist() for seq in dataset.sequences]
    return SequenceDataset(sequences, vocab, dataset.user_ids, dataset.name)


# --------------------------------------------------------------------------- splitting


@dataclass
class LeaveOneOutSplit:
    """Last item = test, second-to-last = validation, the rest trains (SASRec protocol).

    Users with fewer than 3 items only train. The test history includes the validation item
    (the model is not retrained on it), as in the published protocol.
    """

    train: list[list[int]]
    valid_histories: list[list[int]]
    valid_targets: list[int]
    test_histories: list[list[int]]
    test_targets: list[int]
    n_items: int


def leave_one_out(dataset: SequenceDataset) -> LeaveOneOutSplit:
    train, valid_h, valid_t, test_h, test_t = [], [], [], [], []
    for seq in dataset.sequences:
        if len(seq) < 3:
            train.append([i for i in seq if i])
            continue
        # Unknown items (0 after remapping to a model's vocabulary) stay out of histories;
        # as targets they stay 0 and count as misses.
        train.append([i for i in seq[:-2] if i])
        valid_h.append(train[-1])
        valid_t.append(seq[-2])
        test_h.append([i for i in seq[:-1] if i])
        test_t.append(seq[-1])
    return LeaveOneOutSplit(train, valid_h, valid_t, test_h, test_t, dataset.n_items)


# --------------------------------------------------------------------------- tensors


def pad_sequences(
    sequences: Sequence[Sequence[int]], max_len: int, side: str = "left"
) -> torch.Tensor:
    """LongTensor ``[B, max_len]`` of the last ``max_len`` items of each sequence, 0-padded."""
    out = np.zeros((len(sequences), max_len), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = list(seq)[-max_len:] if max_len else []
        if not tail:
            continue
        if side == "left":
            out[row, max_len - len(tail):] = tail
        else:
            out[row, : len(tail)] = tail
    return torch.from_numpy(out)


@dataclass
class TrainBatch:
    """Right-padded next-item pairs: ``targets[b, t]`` follows ``inputs[b, t]`` (0 = none)."""

    inputs: torch.Tensor
    targets: torch.Tensor


class NextItemBatches:
    """Every training prefix as next-item pairs, bucketed by length to cut padding.

    Built once (the padded tensors are reused every epoch); each epoch shuffles users within
    length buckets and then the batch order, so batches stay short without a fixed order.
    """

    def __init__(self, sequences: Sequence[Sequence[int]], max_len: int, batch_size: int) -> None:
        usable = [list(s)[-(max_len + 1):] for s in sequences if len(s) >= 2]
        self.lengths = np.array([len(s) - 1 for s in usable], dtype=np.int64)
        self.inputs = pad_sequences([s[:-1] for s in usable], max_len, side="right")
        self.targets = pad_sequences([s[1:] for s in usable], max_len, side="right")
        self.batch_size = batch_size
        self.n_targets = int(self.lengths.sum())

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def epoch(self, rng: np.random.Generator) -> Iterator[TrainBatch]:
        jitter = rng.random(len(self.lengths))
        order = np.lexsort((jitter, self.lengths))
        chunks = [order[i: i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for pick in rng.permutation(len(chunks)):
            rows = torch.from_numpy(chunks[pick])
            width = int(self.lengths[chunks[pick]].max())
            yield TrainBatch(self.inputs[rows, :width], self.targets[rows, :width])
