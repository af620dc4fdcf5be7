"""Serving benchmark: start the bot, time the first answer, RSS per process, REST latency.

Usage: .venv/bin/python bench/serving.py [--store DIR] [--turns 100]
Prints one JSON summary. The store must be ingested first (`shopbot ingest ...`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shopbot.stack import Stack, free_port, train_bot  # noqa: E402
from shopcore.settings import get_settings  # noqa: E402


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB (Linux /proc)."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines()
                          if line.startswith("VmRSS:"))
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            pids.extend(int(c) for c in children)
        except (OSError, StopIteration):
            continue
    return round(total / 1024, 1)


def say(url: str, sender: str, text: str) -> tuple[float, list[dict]]:
    request = urllib.request.Request(
        url, data=json.dumps({"sender": sender, "message": text}).encode(),
        headers={"Content-Type": "application/json"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        payload = json.loads(response.read())
    return (time.perf_counter() - started) * 1000, payload


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
        "max_ms": round(ordered[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--turns", type=int, default=100)
    args = parser.parse_args()
    base = get_settings()
    run_dir = Path("/tmp") / f"shopbot-bench-{time.time_ns()}"
    settings = base.replace(
        store_dir=args.store or base.store_dir, var_dir=run_dir, models_dir=base.models_dir,
        rasa_port=free_port(), action_port=free_port(), web_port=free_port())
    started = time.perf_counter()
    model = train_bot(Path(settings.models_dir))  # type: ignore[arg-type]
    stack = Stack(settings, model)
    stack.start()
    url = f"{stack.rasa_url}/webhooks/rest/webhook"
    try:
        _, first = say(url, "bench-first", "show me red dresses")
        first_answer_s = time.perf_counter() - started
        search = [say(url, "bench-search", q)[0]
                  for q in ["show me red dresses", "black heels under 1500", "men sneakers",
                            "blue jeans for women", "watches under 3000"] * (args.turns // 5)]
        greet = [say(url, "bench-greet", "hello")[0] for _ in range(args.turns)]
        summary = {
            "store": str(settings.store_dir),
            "start_to_first_answer_s": round(first_answer_s, 1),
            "first_answer_had_products": any("custom" in m for m in first),
            "rss_mb": {s.name: rss_mb(s.process.pid) for s in stack.services if s.process},
            "search_turn": percentiles(search),
            "greeting_turn": percentiles(greet),
            "turns_each": args.turns,
        }
    finally:
        stack.stop()
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
