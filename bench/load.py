"""Cost per turn and load: closed-loop simulated shoppers against the embedded stack and the
scaled topology, in one run, through the web server's /api/chat.

Usage:
    .venv/bin/python bench/load.py [--catalog PATH | --sample] [--store DIR] [--scale 2]
        [--shoppers 8,32,64] [--duration 40] [--long 200] [--model PATH]
    .venv/bin/python bench/load.py --soak 30 --shoppers 8     (the soak: memory and errors)

Phases (each stack is started here, on loopback, in a temporary var/; nothing is trained:
the model is var/models/bot-<fingerprint>.tar.gz, as bench/conversations.py picks it):
1. embedded (one Rasa, one action server, SQLite, Chroma folder): 1 shopper sending plain
   replies (greeting, thanks, FAQ); 1 shopper searching and refining; then the mixed load
   (bench/shoppers.py) at each --shoppers count; then one conversation of --long turns
   (does a turn cost more late in a long conversation? Rasa's SQL tracker store reloads the
   whole conversation every turn).
2. scaled (--scale N, 0 to skip): PostgreSQL, Redis, a Chroma server, N Rasa + N action
   servers behind HAProxy; the same mixed loads. The store is copied into the Chroma
   server (vectors included; nothing re-embedded).

During every mixed load each process's CPU time is sampled (psutil): the JSON gives CPU ms
per answered turn per process kind, which says where a turn's cost goes, and a projection
of turns/s for 8 and 32 cores if the bottleneck process kind is given more replicas.

Prints ONE JSON line on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("SHOPBOT_MODELS_DIR", str(PROJECT_ROOT / "var" / "models"))

from bench.shoppers import (  # noqa: E402
    ARTICLES,
    COLOURS,
    PLAIN,
    Turn,
    one_turn,
    percentile,
    run_shoppers,
    shopper,
    summary,
)

REAL_CATALOG = PROJECT_ROOT.parent / "shared" / "data" / "catalog" / "products.jsonl.gz"
REAL_STORE_CACHE = PROJECT_ROOT / "test-artifacts" / "cache" / "catalog-products"
SECRET = "bench-load-customer-token-key-0123456789"


def log(message: str) -> None:
    print(f"[load] {message}", file=sys.stderr, flush=True)


def service_roots(services: list[Any]) -> list[tuple[str, int]]:
    """(kind, pid) of each running service: "rasa server 2" counts as "rasa server"."""
    return [(re.sub(r" \d+$", "", s.name), s.process.pid) for s in services
            if s.process and s.process.poll() is None]


def process_tree(roots: list[tuple[str, int]]) -> dict[int, tuple[str, psutil.Process]]:
    """Every process below the roots with the kind of the service it belongs to (a Sanic
    worker counts as its server; Rasa's MiniLM worker is told apart: it is its own cost)."""
    found: dict[int, tuple[str, psutil.Process]] = {}
    for kind, pid in roots:
        try:
            root = psutil.Process(pid)
            found[pid] = (kind, root)
            for child in root.children(recursive=True):
                line = " ".join(child.cmdline())
                found[child.pid] = ("rasa nlu encoder" if "encoder_worker" in line else kind,
                                    child)
        except psutil.Error:
            continue
    return found


class CpuMeter:
    """CPU seconds per service kind over a window, for every process below ``roots``."""

    def __init__(self, roots: list[tuple[str, int]]) -> None:
        self.roots = roots
        self.start: dict[int, tuple[str, float]] = {}

    def _sample(self) -> dict[int, tuple[str, float]]:
        sample = {}
        for pid, (kind, process) in process_tree(self.roots).items():
            try:
                times = process.cpu_times()
                sample[pid] = (kind, times.user + times.system)
            except psutil.Error:
                continue
        return sample

    def __enter__(self) -> CpuMeter:
        self.start = self._sample()
        return self

    def __exit__(self, *exc: object) -> None:
        self.end = self._sample()

    def by_kind(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for pid, (kind, seconds) in self.end.items():
            before = self.start.get(pid, (kind, 0.0))[1]
            used[kind] = used.get(kind, 0.0) + max(0.0, seconds - before)
        return used


def cpu_report(meter: CpuMeter, answered: int, replicas: int) -> dict[str, Any]:
    """CPU ms per answered turn by process kind, and what more cores would give.

    The projection assumes each turn costs what it cost here and that replicas of every
    kind are added until the cores are used: turns/s = cores / CPU seconds per turn (at
    most; locks, the database and the network are not free)."""
    used = meter.by_kind()
    per_turn = {kind: round(seconds * 1000 / max(answered, 1), 1)
                for kind, seconds in sorted(used.items(), key=lambda kv: -kv[1])}
    total_s = sum(used.values()) / max(answered, 1)
    return {"cpu_ms_per_turn": per_turn, "cpu_ms_per_turn_total": round(total_s * 1000, 1),
            "projected_turns_per_s": {f"{cores}_cores": round(cores / total_s, 1)
                                      for cores in (2, 8, 32)} if total_s else {},
            "replicas": replicas}


def mixed_loads(web_url: str, roots: list[tuple[str, int]], counts: list[int], duration: float,
                replicas: int, tag: str) -> dict[str, Any]:
    results = {}
    for count in counts:
        log(f"{tag}: {count} shoppers for {duration:.0f} s...")
        with CpuMeter(roots) as meter:
            turns = asyncio.run(run_shoppers(web_url, count, duration, secret=SECRET,
                                             prefix=f"{tag}-{count}-{time.time():.0f}"))
        result = summary(turns, duration)
        answered = sum(1 for t in turns if t.answered)
        result.update(cpu_report(meter, answered, replicas))
        log(f"{tag}: {count} shoppers: {json.dumps(result)}")
        results[str(count)] = result
    return results


async def single(web_url: str, kinds: str, duration: float) -> dict[str, Any]:
    """One shopper sending only plain replies, or only search and refine turns."""
    import random

    def plain_script(rng: random.Random) -> list[tuple[str, str]]:
        return [("plain", text) for text in PLAIN]

    def search_script(rng: random.Random) -> list[tuple[str, str]]:
        colour, other = rng.sample(COLOURS, 2)
        return [("search", f"show me {colour} {rng.choice(ARTICLES)}"),
                ("refine", f"in {other}"), ("refine", "under 3000")]

    turns: list[Turn] = []
    await shopper(web_url, f"single-{kinds}-{time.time():.0f}", time.monotonic() + duration,
                  turns, SECRET, script=plain_script if kinds == "plain" else search_script)
    return summary(turns, duration)


async def long_conversation(web_url: str, length: int) -> dict[str, Any]:
    """One conversation of ``length`` turns: latency early vs late."""
    import aiohttp

    from bench.shoppers import customer_token

    name = f"long-{time.time():.0f}"
    turns: list[Turn] = []
    script = [("plain", "hi"), ("search", "show me red dresses"), ("refine", "in blue"),
              ("plain", "what is your return policy?"), ("plain", "thanks!")]
    headers = {"Authorization": f"Bearer {customer_token(name, SECRET)}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for index in range(length):
            kind, text = script[index % len(script)]
            turns.append(await one_turn(http, web_url, name, index, kind, text))
    window = min(10, length // 4)

    def p50(part: list[Turn]) -> float:
        return round(percentile([t.latency_s * 1000 for t in part if t.answered], 50))

    # Compare like with like: the same five-turn cycle early and late.
    early = turns[5:5 + 2 * window]
    late = turns[length - 2 * window:]
    return {"turns": length, "early_turns": f"{early[0].index}-{early[-1].index}",
            "early_p50_ms": p50(early), "late_turns": f"{late[0].index}-{late[-1].index}",
            "late_p50_ms": p50(late), "errors": sum(1 for t in turns if not t.answered)}


def stack_settings(var_dir: Path, store_dir: Path) -> Any:
    from shopbot.stack import free_port
    from shopcore.settings import Settings

    return Settings(var_dir=var_dir, store_dir=store_dir, demo=False,
                    customer_token_secret=SECRET, chats_per_minute=1_000_000,
                    requests_per_address_minute=10_000_000, rasa_port=free_port(),
                    action_port=free_port(), web_port=free_port())


@contextmanager
def embedded_stack(store_dir: Path, model: Path) -> Iterator[Any]:
    from shopbot.stack import Stack

    with tempfile.TemporaryDirectory(prefix="shopbot-load-") as run_dir:
        stack = Stack(stack_settings(Path(run_dir), store_dir), model)
        began = time.perf_counter()
        stack.start()
        log(f"embedded stack up in {time.perf_counter() - began:.0f} s")
        try:
            yield stack
        finally:
            stack.stop()


@contextmanager
def scaled_stack(store_dir: Path, model: Path, replicas: int) -> Iterator[Any]:
    from retrieval.ingest import copy_catalog
    from retrieval.store import ProductStore
    from shopbot.scaled import Backends, ScaledStack

    with tempfile.TemporaryDirectory(prefix="shopbot-load-scaled-") as run_dir:
        root = Path(run_dir)
        backends = Backends(root / "servers", root / "logs")
        backends.start()
        try:
            settings = backends.apply(stack_settings(root / "var", root / "store"))
            began = time.perf_counter()
            copied = copy_catalog(ProductStore(store_dir), ProductStore.from_settings(settings))
            log(f"copied {copied} products into the Chroma server in "
                f"{time.perf_counter() - began:.0f} s")
            stack = ScaledStack(settings, model, replicas=replicas, log_dir=root / "logs")
            began = time.perf_counter()
            stack.start(timeout=600)
            log(f"scaled stack ({replicas} replicas) up in {time.perf_counter() - began:.0f} s")
            try:
                yield stack, backends
            finally:
                stack.stop()
        finally:
            backends.stop()


def pick_model(given: Path | None) -> Path:
    from shopbot.stack import bot_fingerprint

    if given:
        return given
    model = PROJECT_ROOT / "var" / "models" / f"bot-{bot_fingerprint()}.tar.gz"
    if not model.is_file():
        raise SystemExit(f"{model} is missing: run `make train` (or `shopbot train`) first")
    return model


def pick_store(args: argparse.Namespace) -> Path:
    from retrieval.ingest import ingest_catalog
    from retrieval.store import ProductStore

    if args.store:
        return args.store
    if not args.sample and (args.catalog or REAL_CATALOG).is_file():
        catalog = args.catalog or REAL_CATALOG
        store_dir = REAL_STORE_CACHE if catalog == REAL_CATALOG else \
            PROJECT_ROOT / "test-artifacts" / "cache" / f"load-{catalog.name.split('.')[0]}"
    else:
        catalog, store_dir = None, PROJECT_ROOT / "test-artifacts" / "cache" / "load-sample"
    log(f"store {store_dir} (ingesting {catalog or 'the sample catalog'} if it changed)...")
    ingest_catalog(ProductStore(store_dir), catalog)
    return store_dir


def rss_by_process(roots: list[tuple[str, int]]) -> dict[str, int]:
    """Resident memory (bytes) of every process below ``roots``, keyed "kind pid"."""
    found: dict[str, int] = {}
    for pid, (kind, process) in process_tree(roots).items():
        try:
            found[f"{kind} {pid}"] = process.memory_info().rss
        except psutil.Error:
            continue
    return found


def soak(stack: Any, minutes: float, shoppers: int, warm_up_s: float = 120.0
         ) -> dict[str, Any]:
    """``shoppers`` for ``minutes`` after a warm-up: errors, and each process's resident
    memory growth from the end of the warm-up to the end (caches filled by then)."""
    roots = service_roots(stack.services)
    log(f"soak: warm-up {warm_up_s:.0f} s...")
    asyncio.run(run_shoppers(stack.web_url, shoppers, warm_up_s, secret=SECRET,
                             prefix=f"warm-{time.time():.0f}"))
    before = rss_by_process(roots)
    log(f"soak: {shoppers} shoppers for {minutes:g} min...")
    turns = asyncio.run(run_shoppers(stack.web_url, shoppers, minutes * 60, secret=SECRET,
                                     prefix=f"soak-{time.time():.0f}"))
    after = rss_by_process(roots)
    growth = {name: {"start_mb": round(before[name] / 2**20), "end_mb": round(rss / 2**20),
                     "growth_pct": round(100 * (rss - before[name]) / before[name], 1)}
              for name, rss in after.items() if name in before and before[name] > 2**24}
    return {"minutes": minutes, "shoppers": shoppers, **summary(turns, minutes * 60),
            "rss": growth,
            "max_growth_pct": max((g["growth_pct"] for g in growth.values()), default=None)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", type=Path, help="catalog (default: the 44k catalog in "
                        "../shared/data when present, else the sample)")
    parser.add_argument("--sample", action="store_true", help="the bundled sample catalog")
    parser.add_argument("--store", type=Path, help="an ingested product store to use as is")
    parser.add_argument("--model", type=Path, help="trained Rasa model (.tar.gz)")
    parser.add_argument("--scale", type=int, default=2, help="replicas of the scaled phase "
                        "(0: embedded only)")
    parser.add_argument("--shoppers", default="8,32,64", help="mixed-load sizes")
    parser.add_argument("--duration", type=float, default=40.0, help="seconds per load")
    parser.add_argument("--single", type=float, default=20.0,
                        help="seconds of each one-shopper load")
    parser.add_argument("--long", type=int, default=200, help="turns of the long conversation")
    parser.add_argument("--soak", type=float, metavar="MINUTES",
                        help="instead of the phases above: the embedded stack under 8 "
                        "shoppers for MINUTES (30 is the target), memory growth per process")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts = [int(c) for c in args.shoppers.split(",") if c.strip()]
    model = pick_model(args.model)
    store_dir = pick_store(args)
    result: dict[str, Any] = {"bench": "load", "model": model.name, "store": str(store_dir),
                              "cores": psutil.cpu_count(), "duration_s": args.duration}
    if args.soak:
        with embedded_stack(store_dir, model) as stack:
            result["soak"] = soak(stack, args.soak, counts[0])
        print(json.dumps(result))
        return 0
    with embedded_stack(store_dir, model) as stack:
        roots = service_roots(stack.services)
        embedded: dict[str, Any] = {}
        for kinds in ("plain", "search"):
            log(f"embedded: 1 shopper, {kinds} turns...")
            embedded[f"one_shopper_{kinds}"] = asyncio.run(single(stack.web_url, kinds,
                                                                  args.single))
        plain = embedded["one_shopper_plain"]["p95_ms"]
        search = embedded["one_shopper_search"]["by_kind"]
        search_p95 = max(v["p95_ms"] for v in search.values()) if search else None
        embedded["search_vs_plain_p95"] = round(search_p95 / plain, 2) if plain and \
            search_p95 else None
        embedded["mixed"] = mixed_loads(stack.web_url, roots, counts, args.duration, 1,
                                        "embedded")
        if args.long:
            log(f"embedded: one conversation of {args.long} turns...")
            embedded["long_conversation"] = asyncio.run(long_conversation(stack.web_url,
                                                                          args.long))
        result["embedded"] = embedded
    log(f"embedded: {json.dumps(embedded)}")
    if args.scale:
        from shopbot.stack import StackError

        try:
            with scaled_stack(store_dir, model, args.scale) as (stack, backends):
                roots = service_roots([*stack.services, *backends.services])
                result["scaled"] = {"replicas": args.scale,
                                    "mixed": mixed_loads(stack.web_url, roots, counts,
                                                         args.duration, args.scale, "scaled")}
        except StackError as exc:  # the embedded figures still count
            result["scaled"] = {"replicas": args.scale, "error": str(exc)[:500]}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
