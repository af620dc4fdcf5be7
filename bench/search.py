"""Search performance benchmark: ingest throughput, search latency, HNSW recall, 1M-scale.

Usage:
    .venv/bin/python bench/search.py [--store DIR] [--catalog PATH] [--ingest-sample 3000]
        [--reps 5] [--scale 1000000] [--skip-ingest] [--skip-1m] [--skip-chroma-1m]
        [--chroma-budget-s 900] [--chroma-max-rss-gb 12] [--bm25-budget-s 300]

Prints ONE JSON line on stdout; progress goes to stderr. Sections:

* ``ingest``: ``ingest_products`` into a fresh temporary store on the first N catalog
  products, with the time split into encode / Chroma upsert / publishing the version
  (its indexes built and saved, the pointer moved; measured by
  wrapping those calls here, the library is untouched) and the re-ingest of the same products.
* ``search_44k``: latency of ``ProductSearch.search(q, k=10)`` (hybrid, and ``mode="dense"``)
  over a fixed list of shopper queries on the existing store (opened read-only in spirit:
  nothing is written to it), plus a per-stage breakdown of the hybrid path.
* ``recall``: Chroma HNSW recall@10 against exact numpy search over the same vectors
  (``store.lexical.vectors``), unfiltered, with both latencies.
* ``scale_1m``: the 44k vectors tiled to ``--scale`` rows as perturbed copies (original +
  Gaussian noise, re-normalised), facets tiled alike, then (a) the library's masked exact
  ``LexicalIndex.dense_top`` (b) bm25s ``LexicalIndex.top`` over tiled texts (c) the full
  hybrid ``ProductSearch.search`` over that 1M index (products fetched from the 44k store)
  (d) a temporary Chroma collection with the same HNSW settings: add throughput, query
  latency and recall@10 against numpy brute force on the same vectors.

Everything built goes to a temporary directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STORE = PROJECT_ROOT / "var" / "store" / "catalog-products"
DEFAULT_CATALOG = PROJECT_ROOT.parent / "shared" / "data" / "catalog" / "products.jsonl.gz"
DEFAULT_QUERIES = Path(__file__).resolve().parent / "search_queries.yml"

sys.path.insert(0, str(PROJECT_ROOT))

TARGETS = {
    "search_p95_ms_44k": 50.0,
    "search_p95_ms_1m": 150.0,
    "recall_at_10": 0.98,
    "ingest_products_per_s": 250.0,
}
K = 10
DEPTH = 100  # retrieval.search.CANDIDATES: how deep the hybrid path asks each ranker

# ~50 shopper queries: facet-heavy, free text, brand, typos, price ranges.
QUERIES: list[str] = [
    # facet-heavy
    "black heels under 1500",
    "red dress for women under 2000",
    "men blue jeans",
    "white sneakers for women",
    "nike running shoes for men under 4000",
    "black leather wallet for men",
    "women handbags under 1000",
    "grey tshirt for boys",
    "navy blue formal shirt for men",
    "pink kurta for women",
    "brown belt for men",
    "gold earrings under 500",
    "green tops for girls",
    "black watch for men above 5000",
    "women flip flops under 500",
    # free text
    "something for a wedding",
    "gift for my husband",
    "outfit for a beach holiday",
    "comfortable shoes for walking all day",
    "what should i wear to a job interview",
    "cozy winter wear",
    "party wear for tonight",
    "summer casual look",
    "ethnic wear for diwali",
    "gym clothes",
    "accessories for the office",
    # brand
    "puma",
    "adidas originals",
    "titan watches",
    "fossil watch for women",
    "levis jeans",
    "united colors of benetton shirts",
    "fastrack sunglasses",
    "reebok",
    "lavie handbags",
    "wrangler",
    # typos
    "snekers for men",
    "tshrit for men",
    "adiddas running shoes",
    "hanbag for women",
    "sunglases",
    "jeens for women",
    "kurtha",
    "wallett for men",
    # price ranges
    "shoes between 1000 and 2000",
    "watches under 3000",
    "shirts above 2000",
    "dresses from 500 to 1500",
    "cheap tshirts",
    "sandals under rs 800",
    "perfume below 1000",
    "backpack under 2k",
]

_STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def rss_gb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in GB."""
    values: dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                values[line.split(":")[0]] = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return round(values.get("VmRSS", 0.0), 2), round(values.get("VmHWM", 0.0), 2)


def stats_ms(values_ms: Sequence[float]) -> dict[str, Any]:
    if not values_ms:
        return {"n": 0}
    arr = np.asarray(values_ms, dtype=np.float64)
    return {
        "n": int(arr.size),
        "p50_ms": round(float(np.percentile(arr, 50)), 2),
        "p95_ms": round(float(np.percentile(arr, 95)), 2),
        "max_ms": round(float(arr.max()), 2),
        "mean_ms": round(float(arr.mean()), 2),
    }


def ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


# --------------------------------------------------------------------------- call timing


class Timers:
    """Seconds and call counts per label, filled by :func:`timed`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


@contextmanager
def timed(owner: Any, name: str, label: str, timers: Timers) -> Iterator[None]:
    """Wrap ``owner.name`` (an instance, a class or a module) so its calls are timed."""
    is_class = isinstance(owner, type)
    own = vars(owner)
    had_own = name in own
    raw = own.get(name)
    target = getattr(owner, name)
    # A plain function on a class must keep receiving ``self``; everything else is called
    # through the bound/static object we just looked up.
    call = raw if is_class and not isinstance(raw, (classmethod, staticmethod)) else target

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            timers.seconds[label] += time.perf_counter() - t0
            timers.calls[label] += 1

    if is_class and isinstance(raw, (classmethod, staticmethod)):
        setattr(owner, name, staticmethod(wrapper))
    else:
        setattr(owner, name, wrapper)
    try:
        yield
    finally:
        if had_own:
            setattr(owner, name, raw)
        else:
            delattr(owner, name)


@contextmanager
def timed_many(patches: Sequence[tuple[Any, str, str]], timers: Timers) -> Iterator[None]:
    with ExitStack() as stack:
        for owner, name, label in patches:
            stack.enter_context(timed(owner, name, label, timers))
        yield


# --------------------------------------------------------------------------- 1. ingest


def first_products(catalog: Path, n: int) -> list[Any]:
    """The first ``n`` distinct products of the catalog file (last record of an id wins)."""
    from retrieval.catalog import iter_catalog

    by_id: dict[str, Any] = {}
    for product in iter_catalog(catalog):
        if product.id not in by_id and len(by_id) >= n:
            break
        by_id[product.id] = product
    return list(by_id.values())[:n]


def bench_ingest(catalog: Path, sample: int, tmp_root: Path) -> dict[str, Any]:
    import retrieval.ingest as ingest_module
    import retrieval.store as store_module
    from retrieval.embeddings import encode
    from retrieval.lexical import LexicalIndex
    from retrieval.store import ProductCollection, ProductStore
    from retrieval.vocab import CatalogVocabulary

    t0 = time.perf_counter()
    products = first_products(catalog, sample)
    load_s = time.perf_counter() - t0
    log(f"ingest: loaded {len(products)} products in {load_s:.1f}s")
    t0 = time.perf_counter()
    encode(["warm up the model"])
    model_load_s = time.perf_counter() - t0

    store_dir = Path(tempfile.mkdtemp(prefix="ingest-", dir=tmp_root))
    store = ProductStore(store_dir)
    timers = Timers()
    patches = [
        (ingest_module, "encode", "encode"),
        (ProductCollection, "existing_hashes", "existing_hashes"),
        (ProductCollection, "upsert", "chroma_upsert"),
        (ProductCollection, "all_ids", "all_ids"),
        (ProductCollection, "copy_to", "copy_unchanged"),
        (store, "publish", "publish"),
        (store_module, "build_indexes", "publish.build_indexes"),
        (CatalogVocabulary, "from_products", "publish.vocab_build"),
        (LexicalIndex, "build", "publish.bm25_facets_build"),
        (store_module, "save_indexes", "publish.save_indexes"),
    ]

    def run_once(label: str) -> dict[str, Any]:
        timers.reset()
        with timed_many(patches, timers):
            t0 = time.perf_counter()
            report = ingest_module.ingest_products(store, products)
            total = time.perf_counter() - t0
        top = ("existing_hashes", "encode", "chroma_upsert", "all_ids", "copy_unchanged",
               "publish")
        breakdown = {f"{key}_s": round(timers.seconds.get(key, 0.0), 3) for key in top}
        breakdown["other_s"] = round(total - sum(timers.seconds.get(k, 0.0) for k in top), 3)
        publish = {f"{key.split('.', 1)[1]}_s": round(value, 3)
                   for key, value in timers.seconds.items() if key.startswith("publish.")}
        share = {key: round(timers.seconds.get(key, 0.0) / total, 3) for key in top}
        log(f"ingest {label}: {total:.1f}s {breakdown}")
        return {
            "seconds": round(total, 3),
            "added": report.added, "updated": report.updated, "unchanged": report.unchanged,
            "breakdown": breakdown, "publish_breakdown": publish, "share": share,
            "encode_calls": timers.calls.get("encode", 0),
        }

    try:
        first = run_once("fresh")
        again = run_once("re-ingest")
        n = len(products)
        return {
            "products": n,
            "catalog": str(catalog),
            "catalog_load_s": round(load_s, 2),
            "model_load_s_excluded": round(model_load_s, 2),
            "products_per_s": round(n / first["seconds"], 1),
            "products_per_s_excluding_publish": round(
                n / max(1e-9, first["seconds"] - first["breakdown"]["publish_s"]), 1),
            "fresh": first,
            "reingest": again,
            "reingest_products_per_s": round(n / again["seconds"], 1),
        }
    finally:
        store = None  # let Chroma close the temporary store before it is removed
        gc.collect()
        shutil.rmtree(store_dir, ignore_errors=True)


# --------------------------------------------------------------------------- 2. search


def time_search(search: Any, queries: Sequence[str], reps: int, **kwargs: Any
                ) -> tuple[list[float], dict[str, float]]:
    """One warm-up pass, then ``reps`` timed passes; returns all timings and per-query medians."""
    for query in queries:
        search.search(query, k=K, **kwargs)
    timings: dict[str, list[float]] = defaultdict(list)
    for _ in range(reps):
        for query in queries:
            t0 = time.perf_counter()
            search.search(query, k=K, **kwargs)
            timings[query].append(ms_since(t0))
    flat = [v for values in timings.values() for v in values]
    medians = {q: float(np.median(v)) for q, v in timings.items()}
    return flat, medians


def stage_breakdown(search: Any, queries: Sequence[str]) -> dict[str, Any]:
    """Mean ms per search spent in each stage of the hybrid path (one pass, wrapped calls)."""
    import retrieval.search as search_module

    store = search.store
    lexical = store.lexical
    timers = Timers()
    patches = [
        (search_module, "encode", "encode_query"),
        (search, "understand", "parse_query"),
        (lexical.facets, "mask", "facet_mask"),
        (lexical, "dense_top", "dense_top_numpy"),
        (lexical, "top", "bm25_top"),
        (store, "get", "fetch_products"),
    ]
    with timed_many(patches, timers):
        t0 = time.perf_counter()
        for query in queries:
            search.search(query, k=K)
        total = time.perf_counter() - t0
    n = len(queries)
    stages = {label: round(seconds * 1000 / n, 2) for label, seconds in timers.seconds.items()}
    stages["other"] = round(total * 1000 / n - sum(stages.values()), 2)
    return {
        "mean_ms_per_search": round(total * 1000 / n, 2),
        "stage_mean_ms": stages,
        "stage_share": {k: round(v / (total * 1000 / n), 3) for k, v in stages.items()},
        "calls_per_search": {k: round(v / n, 2) for k, v in timers.calls.items()},
    }


def encode_probe(queries: Sequence[str]) -> dict[str, Any]:
    """Single-query encode latency with torch's current thread count and with one thread.

    Diagnostic only: on a 2-core machine shared with other processes, intra-op threads can
    stall at barriers; the timed searches above use the library's settings untouched.
    """
    import torch

    from retrieval.embeddings import encode

    current = torch.get_num_threads()
    out: dict[str, Any] = {}
    try:
        for threads in dict.fromkeys([current, 1, current, 1]):
            torch.set_num_threads(threads)
            encode([queries[0]])
            timings = []
            for query in queries:
                t0 = time.perf_counter()
                encode([query])
                timings.append(ms_since(t0))
            out[f"torch_threads_{threads}"] = stats_ms(timings)
    finally:
        torch.set_num_threads(current)
    return out


def bench_search(search: Any, queries: Sequence[str], reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {"queries": len(queries), "reps": reps, "k": K,
                           "load_avg_before": [round(x, 2) for x in os.getloadavg()]}
    for mode in ("hybrid", "dense"):
        log(f"search_44k: {mode} x{reps}")
        flat, medians = time_search(search, queries, reps, mode=mode)
        slowest = sorted(medians.items(), key=lambda kv: -kv[1])[:5]
        out[mode] = stats_ms(flat) | {"slowest_queries_median_ms": {
            q: round(v, 1) for q, v in slowest}}
    out["hybrid_stages"] = stage_breakdown(search, queries)
    out["query_encode_probe"] = encode_probe(queries)
    out["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


# --------------------------------------------------------------------------- 3. recall


def exact_top(vectors: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    scores = vectors @ query
    best = np.argpartition(-scores, k - 1)[:k]
    return best[np.argsort(-scores[best])]


def recall_and_latency(
    vectors: np.ndarray, ids: np.ndarray, collection: Any, query_vectors: np.ndarray, k: int
) -> dict[str, Any]:
    """recall@k of ``collection`` against numpy over ``vectors`` (row i has id ``ids[i]``).

    ``recall@k`` counts ids (the brief's definition). Many catalog products share their
    embedding text, hence their vector, so the exact top k is ambiguous at ties;
    ``recall@k_tie_aware`` also counts a returned row whose exact score reaches the k-th
    exact score (the usual distance-based ANN recall).
    """
    row_of = {str(pid): row for row, pid in enumerate(ids)}
    brute_ms: list[float] = []
    chroma_ms: list[float] = []
    hits = tie_hits = 0
    per_query: list[float] = []
    exact_top(vectors, query_vectors[0], k)  # warm-up both
    t0 = time.perf_counter()  # the first query also pays for loading/finishing the index
    collection.query(query_embeddings=[query_vectors[0].tolist()], n_results=k, include=[])
    first_query_ms = ms_since(t0)
    for q in query_vectors:
        t0 = time.perf_counter()
        truth = exact_top(vectors, q, k)
        brute_ms.append(ms_since(t0))
        payload = [q.tolist()]
        t0 = time.perf_counter()
        got = collection.query(query_embeddings=payload, n_results=k, include=[])["ids"][0]
        chroma_ms.append(ms_since(t0))
        found = len({str(ids[i]) for i in truth} & set(got))
        hits += found
        per_query.append(found / k)
        kth = float(vectors[truth[-1]] @ q)
        got_rows = [row_of[g] for g in got if g in row_of]
        if got_rows:
            tie_hits += int(np.sum(vectors[got_rows] @ q >= kth - 1e-5))
    n = len(query_vectors)
    return {
        "queries": n,
        f"recall@{k}": round(hits / (k * n), 4),
        f"recall@{k}_tie_aware": round(tie_hits / (k * n), 4),
        f"min_query_recall@{k}": round(min(per_query), 2),
        "queries_below_1.0": int(sum(r < 1.0 for r in per_query)),
        "bruteforce_numpy": stats_ms(brute_ms),
        "chroma_hnsw": stats_ms(chroma_ms),
        "chroma_first_query_ms": round(first_query_ms, 1),
    }


def recall_queries(queries: Sequence[str]) -> list[str]:
    texts = list(queries)
    try:
        import yaml

        data = yaml.safe_load(DEFAULT_QUERIES.read_text(encoding="utf-8")) or []
        entries = data if isinstance(data, list) else data.get("queries", [])
        texts += [e["query"] for e in entries if isinstance(e, dict) and e.get("query")]
    except Exception as error:  # noqa: BLE001 - the extra queries are optional
        log(f"recall: not using {DEFAULT_QUERIES.name}: {error}")
    return list(dict.fromkeys(texts))


def bench_recall(store: Any, query_vectors: np.ndarray) -> dict[str, Any]:
    lexical = store.lexical
    vectors = lexical.vectors.astype(np.float32, copy=False)
    log(f"recall: {len(query_vectors)} queries over {len(vectors)} vectors "
        f"(chroma count {store.count()})")
    result = recall_and_latency(vectors, lexical.facets.ids, store.collection, query_vectors, K)
    _, inverse, counts = np.unique(vectors, axis=0, return_inverse=True, return_counts=True)
    duplicated = int((counts[inverse.ravel()] > 1).sum())
    return {"vectors": int(len(vectors)), "chroma_count": store.count(),
            "rows_sharing_their_vector": duplicated,
            "hnsw": {"space": "cosine", "ef_search": 200, "ef_construction": 200}} | result


# --------------------------------------------------------------------------- 4. scale


class ScaledStore:
    """Stands in for ProductStore over the tiled index: real vocabulary, products from 44k."""

    def __init__(self, base: Any, lexical: Any) -> None:
        self.base = base
        self.lexical = lexical
        self.vocab = base.vocab

    def get(self, ids: Sequence[str]) -> list[Any]:
        wanted = [str(i) for i in ids]
        originals = {pid: pid.split("~", 1)[0] for pid in wanted}
        found = {p.id: p for p in self.base.get(list(dict.fromkeys(originals.values())))}
        return [found[originals[pid]].model_copy(update={"id": pid})
                for pid in wanted if originals[pid] in found]

    def query(self, *args: Any, **kwargs: Any) -> list[Any]:  # pragma: no cover - unused
        raise NotImplementedError("dense mode is measured on the 44k store")


def perturbed_copies(base: np.ndarray, scale: int, sigma: float, seed: int) -> np.ndarray:
    """``scale`` unit rows: copy 0 is ``base``, later copies are base + N(0, sigma^2) noise."""
    n, dim = base.shape
    out = np.empty((scale, dim), dtype=np.float32)
    rng = np.random.default_rng(seed)
    for copy in range(math.ceil(scale / n)):
        lo, hi = copy * n, min(scale, (copy + 1) * n)
        block = out[lo:hi]
        block[:] = base[:hi - lo]
        if copy:
            block += rng.standard_normal(block.shape, dtype=np.float32) * np.float32(sigma)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
    return out


def tiled_facets(facets: Any, scale: int) -> Any:
    from retrieval.lexical import FacetTable

    n = len(facets)
    src = np.arange(scale) % n
    ids = np.array([str(facets.ids[i]) if row < n else f"{facets.ids[i]}~{row // n}"
                    for row, i in enumerate(src)], dtype=object)
    return FacetTable(
        ids=ids,
        article_type=facets.article_type[src], colour=facets.colour[src],
        gender=facets.gender[src], brand=facets.brand[src], usage=facets.usage[src],
        price=facets.price[src],
    )


def prepared_queries(search: Any, queries: Sequence[str]) -> list[dict[str, Any]]:
    """What the hybrid path derives from each query before ranking (parse, text, vector)."""
    from retrieval.embeddings import encode
    from retrieval.query import ranking_text
    from retrieval.search import build_where

    prepared = []
    for query in queries:
        constraints = search.understand(query)
        prepared.append({"query": query, "constraints": constraints,
                         "text": ranking_text(query, constraints),
                         "filtered": build_where(constraints) is not None})
    vectors = encode([p["text"] for p in prepared])
    for p, v in zip(prepared, vectors, strict=True):
        p["vector"] = v
    return prepared


def time_dense_top(lexical: Any, prepared: list[dict[str, Any]], reps: int) -> dict[str, Any]:
    """The library's masked exact search, as the hybrid path calls it (depth 100)."""
    mask_ms: list[float] = []
    dense_ms: list[float] = []
    total_ms: list[float] = []
    unfiltered_ms: list[float] = []
    selectivity: list[float] = []
    n = len(lexical.facets)
    lexical.dense_top(prepared[0]["vector"], DEPTH, None)  # warm-up
    for _ in range(reps):
        for p in prepared:
            t0 = time.perf_counter()
            mask = lexical.facets.mask(p["constraints"]) if p["filtered"] else None
            t1 = time.perf_counter()
            lexical.dense_top(p["vector"], DEPTH, mask)
            t2 = time.perf_counter()
            lexical.dense_top(p["vector"], DEPTH, None)
            unfiltered_ms.append(ms_since(t2))
            mask_ms.append((t1 - t0) * 1000)
            dense_ms.append((t2 - t1) * 1000)
            total_ms.append((t2 - t0) * 1000)
            if mask is not None:
                selectivity.append(float(mask.sum()) / n)
    return {
        "rows": n,
        "masked_mask_plus_dense_top": stats_ms(total_ms),
        "facet_mask_only": stats_ms(mask_ms),
        "dense_top_only": stats_ms(dense_ms),
        "unfiltered_dense_top": stats_ms(unfiltered_ms),
        "filtered_queries": sum(p["filtered"] for p in prepared),
        "mask_selectivity_median": round(float(np.median(selectivity)), 4) if selectivity else None,
        "mask_selectivity_max": round(float(np.max(selectivity)), 4) if selectivity else None,
    }


def time_bm25_top(lexical: Any, prepared: list[dict[str, Any]], reps: int) -> dict[str, Any]:
    masks = [lexical.facets.mask(p["constraints"]) if p["filtered"] else None for p in prepared]
    lexical.top(prepared[0]["text"], DEPTH, masks[0])
    timings: list[float] = []
    for _ in range(reps):
        for p, mask in zip(prepared, masks, strict=True):
            t0 = time.perf_counter()
            lexical.top(p["text"], DEPTH, mask)
            timings.append(ms_since(t0))
    return stats_ms(timings)


def build_bm25(texts_tokens: list[list[str]], copies: int, scale: int) -> tuple[Any, float]:
    import bm25s

    corpus = list(itertools.islice(itertools.cycle(texts_tokens), min(scale, copies * len(
        texts_tokens))))
    retriever = bm25s.BM25()
    t0 = time.perf_counter()
    retriever.index(corpus, show_progress=False)
    seconds = time.perf_counter() - t0
    del corpus
    return retriever, seconds


def bench_scale_local(
    args: argparse.Namespace, store: Any, search: Any, queries: Sequence[str],
    vectors_big: np.ndarray,
) -> dict[str, Any]:
    """(a) masked dense_top (b) bm25 top (c) full hybrid search, all over the tiled index."""
    from retrieval.lexical import LexicalIndex, tokenize
    from retrieval.search import ProductSearch

    lexical = store.lexical
    base_n = len(lexical.facets)
    scale = len(vectors_big)
    copies = math.ceil(scale / base_n)
    out: dict[str, Any] = {}

    prepared = prepared_queries(search, queries)
    log("scale: 44k reference timings of dense_top/bm25 top")
    out["reference_44k"] = {
        "dense": time_dense_top(lexical, prepared, args.reps_1m),
        "bm25_top": time_bm25_top(lexical, prepared, args.reps_1m),
    }

    t0 = time.perf_counter()
    facets_big = tiled_facets(lexical.facets, scale)
    out["facets_build_s"] = round(time.perf_counter() - t0, 2)
    big = LexicalIndex(lexical.retriever, facets_big, vectors_big)  # retriever swapped below
    log(f"scale: (a) dense_top at {scale} rows, rss {rss_gb()}")
    out["dense"] = time_dense_top(big, prepared, args.reps_1m)
    log(f"scale: dense {out['dense']['masked_mask_plus_dense_top']}")

    # (b) bm25 over tiled search texts. Identical texts tokenise identically, so the 44k
    # token lists are tiled instead of tokenising 1M strings again (tokenising time is
    # reported separately, extrapolated).
    products, _ = store.all_products()
    by_id = {p.id: p for p in products}
    texts = [by_id[str(pid)].search_text() if str(pid) in by_id else ""
             for pid in lexical.facets.ids]
    del products, by_id
    t0 = time.perf_counter()
    tokens = tokenize(texts)
    tokenize_s = time.perf_counter() - t0
    _, base_build_s = build_bm25(tokens, 1, base_n)
    predicted = base_build_s * copies * 1.15
    use_copies = copies if predicted <= args.bm25_budget_s else max(
        1, int(args.bm25_budget_s / (base_build_s * 1.15)))
    bm25_rows = min(scale, use_copies * base_n)
    log(f"scale: (b) bm25 44k build {base_build_s:.1f}s, predicted {predicted:.0f}s at "
        f"{scale}; building {bm25_rows} docs")
    retriever, build_s = build_bm25(tokens, use_copies, scale)
    bm25: dict[str, Any] = {
        "docs": bm25_rows, "tokenize_44k_s": round(tokenize_s, 2),
        "tokenize_extrapolated_s": round(tokenize_s * scale / base_n, 1),
        "build_44k_s": round(base_build_s, 2), "build_s": round(build_s, 2),
        "build_docs_per_s": round(bm25_rows / build_s),
        "input": "tokens of the 44k search texts tiled (identical texts tokenise identically)",
    }
    if bm25_rows == scale:
        big.retriever = retriever
        bm25["top"] = time_bm25_top(big, prepared, args.reps_1m)
        bm25["extrapolated"] = False
    else:
        small = LexicalIndex(retriever, tiled_facets(lexical.facets, bm25_rows))
        measured = time_bm25_top(small, prepared, args.reps_1m)
        factor = scale / bm25_rows
        bm25["measured_at_docs"] = measured
        bm25["top"] = {k: (round(v * factor, 2) if k.endswith("_ms") else v)
                       for k, v in measured.items()}
        bm25["extrapolated"] = True
        bm25["note"] = (f"build predicted {predicted:.0f}s > budget; measured at {bm25_rows} "
                        f"docs and scaled latency linearly by {factor:.2f}")
        del small
    out["bm25"] = bm25
    log(f"scale: bm25 top {bm25['top']} rss {rss_gb()}")

    # (c) the whole hybrid search over the tiled index.
    if bm25_rows == scale:
        scaled = ProductSearch(ScaledStore(store, big))  # type: ignore[arg-type]
        log("scale: (c) full hybrid search over the tiled index")
        flat, medians = time_search(scaled, queries, args.reps_1m)
        slowest = sorted(medians.items(), key=lambda kv: -kv[1])[:5]
        out["hybrid_search"] = stats_ms(flat) | {
            "slowest_queries_median_ms": {q: round(v, 1) for q, v in slowest},
            "note": "ProductSearch.search over the tiled LexicalIndex; products are fetched "
                    "from the 44k Chroma store (ids mapped back)",
        }
        out["hybrid_stages"] = stage_breakdown(scaled, queries)
        log(f"scale: hybrid {stats_ms(flat)}")
        del scaled
    else:
        out["hybrid_search"] = {"n": 0, "note": "skipped: bm25 index not built at full scale"}
    big.retriever = None
    del big, retriever, facets_big, tokens, texts
    gc.collect()
    return out


def bench_chroma_scale(
    args: argparse.Namespace, vectors_big: np.ndarray, query_vectors: np.ndarray, tmp_root: Path
) -> dict[str, Any]:
    """Add the tiled vectors to a temporary Chroma collection within the time/RAM budget."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    path = Path(tempfile.mkdtemp(prefix="chroma-1m-", dir=tmp_root))
    client = chromadb.PersistentClient(path=str(path),
                                       settings=ChromaSettings(anonymized_telemetry=False))
    collection = client.get_or_create_collection(
        "scale", embedding_function=None,
        configuration={"hnsw": {"space": "cosine", "ef_search": 200, "ef_construction": 200}},
    )
    batch = min(args.chroma_batch, client.get_max_batch_size())
    target = len(vectors_big)
    rss_start = rss_gb()[0]
    log(f"chroma: adding up to {target} vectors in batches of {batch} "
        f"(budget {args.chroma_budget_s}s, {args.chroma_max_rss_gb} GB), rss {rss_start}")
    added = 0
    stopped = "complete"
    checkpoints: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    last_t, last_n = t_start, 0
    try:
        while added < target:
            hi = min(target, added + batch)
            collection.add(ids=[str(i) for i in range(added, hi)],
                           embeddings=vectors_big[added:hi])
            added = hi
            now = time.perf_counter()
            if added - last_n >= 50_000 or added == target:
                rate = (added - last_n) / (now - last_t)
                checkpoints.append({"rows": added, "elapsed_s": round(now - t_start, 1),
                                    "rate_per_s": round(rate), "rss_gb": rss_gb()[0],
                                    "load_avg_1m": round(os.getloadavg()[0], 2)})
                log(f"chroma: {added} rows, {now - t_start:.0f}s, {rate:.0f}/s, rss {rss_gb()}")
                last_t, last_n = now, added
            if added < target and now - t_start > args.chroma_budget_s:
                stopped = f"time budget {args.chroma_budget_s}s"
                break
            if added < target and rss_gb()[0] > args.chroma_max_rss_gb:
                stopped = f"rss over {args.chroma_max_rss_gb} GB"
                break
        add_s = time.perf_counter() - t_start
        count = collection.count()
        disk_gb = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1024 ** 3
        log(f"chroma: {count} rows in {add_s:.0f}s ({stopped}); recall and latency")
        ids = np.arange(added).astype(str)
        measured = recall_and_latency(vectors_big[:added], ids, collection, query_vectors, K)
        projected = None
        if added < target and checkpoints:
            tail_rate = checkpoints[-1]["rate_per_s"]
            projected = round(add_s + (target - added) / max(1, tail_rate))
        return {
            "rows": int(added), "target_rows": int(target), "count": int(count),
            "stopped": stopped, "add_s": round(add_s, 1),
            "add_per_s": round(added / add_s), "batch": batch,
            "projected_full_add_s_at_last_rate": projected,
            "checkpoints": checkpoints, "rss_gb_before": rss_start, "rss_gb_after": rss_gb()[0],
            "disk_gb": round(disk_gb, 2),
            "hnsw": {"space": "cosine", "ef_search": 200, "ef_construction": 200},
        } | measured
    finally:
        del collection
        with suppress(Exception):
            client.clear_system_cache()
        del client
        gc.collect()
        shutil.rmtree(path, ignore_errors=True)


def bench_scale(
    args: argparse.Namespace, store: Any, search: Any, queries: Sequence[str],
    query_vectors: np.ndarray, tmp_root: Path,
) -> dict[str, Any]:
    base = store.lexical.vectors.astype(np.float32, copy=False)
    t0 = time.perf_counter()
    vectors_big = perturbed_copies(base, args.scale, args.noise, args.seed)
    copies = math.ceil(args.scale / len(base))
    cos_to_original = float(np.mean(np.sum(
        vectors_big[len(base):2 * len(base)] * base[: len(vectors_big[len(base):2 * len(base)])],
        axis=1))) if copies > 1 else 1.0
    out: dict[str, Any] = {
        "rows": int(len(vectors_big)), "base_rows": int(len(base)), "copies": copies,
        "noise_sigma_per_dim": args.noise,
        "mean_cosine_copy_to_original": round(cos_to_original, 4),
        "vectors_build_s": round(time.perf_counter() - t0, 1),
        "vectors_gb": round(vectors_big.nbytes / 1024 ** 3, 2),
    }
    log(f"scale: {len(vectors_big)} vectors, cos to original {cos_to_original:.3f}, "
        f"rss {rss_gb()}")
    out["load_avg_before"] = [round(x, 2) for x in os.getloadavg()]
    out |= bench_scale_local(args, store, search, queries, vectors_big)
    out["load_avg_after_local"] = [round(x, 2) for x in os.getloadavg()]
    gc.collect()
    if args.skip_chroma_1m:
        out["chroma"] = {"skipped": True}
    else:
        out["chroma"] = bench_chroma_scale(args, vectors_big, query_vectors, tmp_root)
    del vectors_big
    gc.collect()
    out["peak_rss_gb"] = rss_gb()[1]
    return out


# --------------------------------------------------------------------------- main


def meets(summary: dict[str, Any]) -> dict[str, Any]:
    def p95(section: dict[str, Any] | None) -> float | None:
        return section.get("p95_ms") if section else None

    def at_most(value: float | None, limit: float) -> bool | None:
        return None if value is None else bool(value <= limit)

    def at_least(value: float | None, limit: float) -> bool | None:
        return None if value is None else bool(value >= limit)

    search = summary.get("search_44k", {})
    scale = summary.get("scale_1m") or {}
    chroma = scale.get("chroma") or {}
    return {
        "search_hybrid_p95_44k": at_most(p95(search.get("hybrid")), TARGETS["search_p95_ms_44k"]),
        "search_dense_p95_44k": at_most(p95(search.get("dense")), TARGETS["search_p95_ms_44k"]),
        "search_hybrid_p95_1m": at_most(p95(scale.get("hybrid_search")),
                                        TARGETS["search_p95_ms_1m"]),
        "dense_top_masked_p95_1m": at_most(
            p95((scale.get("dense") or {}).get("masked_mask_plus_dense_top")),
            TARGETS["search_p95_ms_1m"]),
        "bm25_top_p95_1m": at_most(p95((scale.get("bm25") or {}).get("top")),
                                   TARGETS["search_p95_ms_1m"]),
        "chroma_query_p95_1m": at_most(p95(chroma.get("chroma_hnsw")),
                                       TARGETS["search_p95_ms_1m"]),
        "recall_at_10_44k": at_least((summary.get("recall") or {}).get("recall@10"),
                                     TARGETS["recall_at_10"]),
        "recall_at_10_44k_tie_aware": at_least(
            (summary.get("recall") or {}).get("recall@10_tie_aware"), TARGETS["recall_at_10"]),
        "recall_at_10_1m": at_least(chroma.get("recall@10"), TARGETS["recall_at_10"]),
        "recall_at_10_1m_tie_aware": at_least(chroma.get("recall@10_tie_aware"),
                                              TARGETS["recall_at_10"]),
        "ingest": at_least((summary.get("ingest") or {}).get("products_per_s"),
                           TARGETS["ingest_products_per_s"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG)
    parser.add_argument("--ingest-sample", type=int, default=3000)
    parser.add_argument("--reps", type=int, default=5, help="timed passes per 44k search mode")
    parser.add_argument("--reps-1m", type=int, default=2, help="timed passes at scale")
    parser.add_argument("--scale", type=int, default=1_000_000)
    parser.add_argument("--noise", type=float, default=0.015,
                        help="Gaussian sigma per dimension for the perturbed copies")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bm25-budget-s", type=float, default=300.0)
    parser.add_argument("--chroma-budget-s", type=float, default=900.0)
    parser.add_argument("--chroma-max-rss-gb", type=float, default=12.0)
    parser.add_argument("--chroma-batch", type=int, default=5000)
    parser.add_argument("--tmp-dir", type=Path, default=None)
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads before anything runs (default: untouched)")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-1m", action="store_true")
    parser.add_argument("--skip-chroma-1m", action="store_true")
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    catalog = args.catalog if args.catalog.is_absolute() else (Path.cwd() / args.catalog)
    if not catalog.is_file():
        catalog = PROJECT_ROOT / args.catalog
    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    tmp_root = Path(tempfile.mkdtemp(prefix="shopbot-bench-search-", dir=args.tmp_dir))
    summary: dict[str, Any] = {
        "bench": "search",
        "cpus": os.cpu_count(),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "torch_threads": torch.get_num_threads(),
        "targets": TARGETS,
    }
    try:
        if not args.skip_ingest:
            summary["ingest"] = bench_ingest(catalog, args.ingest_sample, tmp_root)

        from retrieval.embeddings import encode
        from retrieval.search import ProductSearch
        from retrieval.store import ProductStore

        store = ProductStore(args.store)
        if store.lexical is None or store.lexical.vectors is None:
            raise SystemExit(f"{args.store} has no lexical index/vectors; ingest it first")
        search = ProductSearch(store)
        summary["store"] = {"path": str(args.store), "products": store.count()}
        summary["search_44k"] = bench_search(search, QUERIES, args.reps)
        log(f"search_44k hybrid {summary['search_44k']['hybrid']}")
        log(f"search_44k dense {summary['search_44k']['dense']}")

        texts = recall_queries(QUERIES)
        query_vectors = encode(texts)
        summary["recall"] = bench_recall(store, query_vectors)
        log(f"recall {summary['recall']}")

        if not args.skip_1m:
            summary["scale_1m"] = bench_scale(args, store, search, QUERIES, query_vectors,
                                              tmp_root)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    summary["meets_targets"] = meets(summary)
    summary["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    summary["peak_rss_gb"] = rss_gb()[1]
    summary["wall_s"] = round(time.perf_counter() - _STARTED, 1)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
