"""Run in Rasa's virtualenv: many processes take the same conversation's lock at once and
record when each holds it; prints JSON: how many turns overlapped another's and how many
could not get the lock at all (Rasa answers those turns with an error).

Usage: lock_race.py CLASS REDIS_PORT PROCESSES TURNS
(CLASS: rasa for Rasa's RedisLockStore, atomic for bot.locks.AtomicRedisLockStore)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sys
import time


def store(kind: str, port: int):  # noqa: ANN201 - Rasa's types live in the other venv
    from rasa.core.lock_store import RedisLockStore
    from rasa.utils.endpoints import EndpointConfig

    from bot.locks import AtomicRedisLockStore

    if kind == "atomic":
        return AtomicRedisLockStore(EndpointConfig(url="127.0.0.1", port=port, db=3))
    return RedisLockStore(host="127.0.0.1", port=port, db=3)


def worker(kind: str, port: int, turns: int, start_at: float, out: multiprocessing.Queue) -> None:
    locks = store(kind, port)

    async def turn() -> tuple[float, float] | None:
        from rasa.core.lock_store import LockError

        try:
            async with locks.lock("race", lock_lifetime=3, wait_time_in_seconds=0.01):
                began = time.time()
                await asyncio.sleep(0.02)  # a turn's work while holding the lock
                return began, time.time()
        except LockError:
            return None

    async def main() -> list[tuple[float, float] | None]:
        while time.time() < start_at:
            await asyncio.sleep(0.001)
        return [await turn() for _ in range(turns)]

    out.put(asyncio.run(main()))


if __name__ == "__main__":
    kind, port, processes, turns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    store(kind, port).red.delete(store(kind, port).key_prefix + "race")
    queue: multiprocessing.Queue = multiprocessing.Queue()
    start_at = time.time() + 3.0
    jobs = [multiprocessing.Process(target=worker, args=(kind, port, turns, start_at, queue))
            for _ in range(processes)]
    for job in jobs:
        job.start()
    results = [s for _ in jobs for s in queue.get(timeout=240)]
    spans = sorted(s for s in results if s is not None)
    for job in jobs:
        job.join()
    overlaps = sum(1 for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1])
    print(json.dumps({"store": kind, "turns": len(spans), "overlapping": overlaps,
                      "lock_errors": len(results) - len(spans)}))
