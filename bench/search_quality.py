"""Search quality benchmark: NDCG@10 of product search on the real catalog.

Usage:
    .venv/bin/python bench/search_quality.py [--store DIR] [--catalog PATH] [--queries PATH]
        [--modes dense,lexical,hybrid] [--per-query]

Relevance is computed from the catalog's own attributes with the judgement specs in
``bench/search_queries.yml`` (the exact grading rule is documented at the top of that file and
implemented in :func:`graded_relevance` and, vectorised, in :class:`CatalogArrays`).

Prints ONE JSON line to stdout (and writes it to ``--out``, default
var/bench/search_quality.json, where `shopbot report` reads it):
    {"queries": N, "ndcg@10": {"dense": x, ...}, "mean_latency_ms": {"dense": ms, ...}}
With ``--per-query`` the worst 15 queries per mode (NDCG, and what came back against what the
spec wanted) go to stderr.
"""

from __future__ import annotations

import argparse
import gzip
import inspect
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STORE = PROJECT_ROOT / "var" / "store" / "catalog-products"
DEFAULT_CATALOG = PROJECT_ROOT.parent / "shared" / "data" / "catalog" / "products.jsonl.gz"
DEFAULT_QUERIES = Path(__file__).resolve().parent / "search_queries.yml"
DEFAULT_MODES = ("dense", "lexical", "hybrid")
DEFAULT_OUT = PROJECT_ROOT / "var" / "bench" / "search_quality.json"
K = 10
TOP_GRADE = 3.0
SOFT_BONUS = 0.5

# Facets a spec may name. Value facets hold a list of accepted catalog values (compared
# case-insensitively); "price" is the [min_price, max_price] range on the effective price.
VALUE_FACETS = (
    "article_type", "sub_category", "master_category", "base_colour", "gender", "brand",
    "usage", "season",
)
HARD_FACETS = ("article_type", "sub_category", "master_category", "base_colour", "gender",
               "brand", "price")
SOFT_FACETS = ("usage", "season")
ALL_FACETS = HARD_FACETS + SOFT_FACETS


# --------------------------------------------------------------------------- relevance


def effective_price(product: dict[str, Any]) -> float:
    """What the shopper pays: discounted_price when 0 < discounted_price < price, else price."""
    price = float(product.get("price") or 0)
    discounted = float(product.get("discounted_price") or 0)
    return discounted if 0 < discounted < price else price


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple, set)):
        return [str(v) for v in value]
    return [str(value)]


def stated_facets(spec: dict[str, Any]) -> list[str]:
    """The facets a spec states, in ALL_FACETS order ("price" when min or max price is set)."""
    found = []
    for facet in ALL_FACETS:
        if facet == "price":
            if spec.get("min_price") is not None or spec.get("max_price") is not None:
                found.append(facet)
        elif _as_list(spec.get(facet)):
            found.append(facet)
    return found


def split_facets(spec: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """(required, graded hard, soft) facets of a spec, per the rule in search_queries.yml."""
    stated = stated_facets(spec)
    required_names = set(_as_list(spec.get("required")))
    unknown = required_names - set(ALL_FACETS)
    if unknown:
        raise ValueError(f"unknown facet(s) in required: {sorted(unknown)}")
    missing = required_names - set(stated)
    if missing:
        raise ValueError(f"required facet(s) not stated: {sorted(missing)}")
    if "article_type" in stated:
        required_names.add("article_type")
    if not required_names:
        raise ValueError("spec needs article_type or a required: facet")
    required = [f for f in stated if f in required_names]
    hard = [f for f in stated if f in HARD_FACETS and f not in required_names]
    soft = [f for f in stated if f in SOFT_FACETS and f not in required_names]
    return required, hard, soft


def facet_matches(product: dict[str, Any], spec: dict[str, Any], facet: str) -> bool:
    """Whether one product satisfies one stated facet of the spec."""
    if facet == "price":
        price = effective_price(product)
        low, high = spec.get("min_price"), spec.get("max_price")
        return (low is None or price >= float(low)) and (high is None or price <= float(high))
    wanted = {v.strip().lower() for v in _as_list(spec.get(facet))}
    return str(product.get(facet) or "").strip().lower() in wanted


def grade_from_counts(required_ok: bool, hard_total: int, hard_matched: int,
                      soft_ok: bool) -> float:
    """The grading rule, shared by the scalar and the vectorised implementation."""
    if not required_ok:
        return 0.0
    missed = hard_total - hard_matched
    base = 3.0 if missed == 0 else 2.0 if missed == 1 else 1.0
    return min(TOP_GRADE, base + SOFT_BONUS) if soft_ok else base


def graded_relevance(product: dict[str, Any], spec: dict[str, Any]) -> float:
    """Graded relevance (0-3, in steps of 0.5) of one catalog product for one query spec."""
    required, hard, soft = split_facets(spec)
    required_ok = all(facet_matches(product, spec, f) for f in required)
    matched = sum(facet_matches(product, spec, f) for f in hard)
    soft_ok = bool(soft) and all(facet_matches(product, spec, f) for f in soft)
    return grade_from_counts(required_ok, len(hard), matched, soft_ok)


class CatalogArrays:
    """Column arrays of the catalog so a spec is graded for every product at once."""

    def __init__(self, products: Sequence[dict[str, Any]]) -> None:
        self.products = list(products)
        self.ids = [str(p.get("id")) for p in self.products]
        self.index = {pid: i for i, pid in enumerate(self.ids)}
        self.columns = {
            facet: np.array([str(p.get(facet) or "").strip().lower() for p in self.products],
                            dtype=object)
            for facet in VALUE_FACETS
        }
        self.price = np.array([effective_price(p) for p in self.products], dtype=float)

    def __len__(self) -> int:
        return len(self.products)

    def facet_mask(self, spec: dict[str, Any], facet: str) -> np.ndarray:
        if facet == "price":
            mask = np.ones(len(self), dtype=bool)
            if spec.get("min_price") is not None:
                mask &= self.price >= float(spec["min_price"])
            if spec.get("max_price") is not None:
                mask &= self.price <= float(spec["max_price"])
            return mask
        wanted = [v.strip().lower() for v in _as_list(spec.get(facet))]
        return np.isin(self.columns[facet], np.array(wanted, dtype=object))

    def relevance(self, spec: dict[str, Any]) -> np.ndarray:
        """graded_relevance of every product, vectorised (same rule, same numbers)."""
        required, hard, soft = split_facets(spec)
        n = len(self)
        required_ok = np.ones(n, dtype=bool)
        for facet in required:
            required_ok &= self.facet_mask(spec, facet)
        matched = np.zeros(n, dtype=int)
        for facet in hard:
            matched += self.facet_mask(spec, facet)
        missed = len(hard) - matched
        base = np.where(missed == 0, 3.0, np.where(missed == 1, 2.0, 1.0))
        if soft:
            soft_ok = np.ones(n, dtype=bool)
            for facet in soft:
                soft_ok &= self.facet_mask(spec, facet)
            base = np.where(soft_ok, np.minimum(TOP_GRADE, base + SOFT_BONUS), base)
        return np.where(required_ok, base, 0.0)


# --------------------------------------------------------------------------- NDCG


def dcg_at_k(rels: Iterable[float], k: int) -> float:
    return sum((2.0 ** r - 1.0) / math.log2(i + 2) for i, r in enumerate(list(rels)[:k]))


def ndcg_at_k(ranked_rels: Sequence[float], ideal_rels: Iterable[float], k: int) -> float:
    """NDCG@k: gain 2^rel - 1, log2(rank + 1) discount; the ideal is the best k of ideal_rels.

    ``ideal_rels`` is the relevance of every candidate (the whole catalog), in any order.
    Returns 0.0 when nothing is relevant or nothing was ranked.
    """
    ideal = np.sort(np.asarray(list(ideal_rels), dtype=float))[::-1][:k]
    ideal_dcg = dcg_at_k(ideal.tolist(), k)
    if ideal_dcg <= 0 or not len(ranked_rels):
        return 0.0
    return dcg_at_k(ranked_rels, k) / ideal_dcg


# --------------------------------------------------------------------------- loading


def load_catalog(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_queries(path: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    queries = data["queries"] if isinstance(data, dict) else data
    for spec in queries:
        if not str(spec.get("query", "")).strip():
            raise ValueError(f"spec without a query: {spec}")
        split_facets(spec)  # validates required / article_type
    return queries


def describe_product(product: dict[str, Any] | None) -> str:
    if product is None:
        return "<id not in catalog>"
    return (f"{product.get('article_type')}/{product.get('base_colour')}/"
            f"{product.get('gender')}/{product.get('brand')}/"
            f"{effective_price(product):.0f}/{product.get('usage')}")


def describe_spec(spec: dict[str, Any]) -> str:
    parts = []
    for facet in VALUE_FACETS:
        values = _as_list(spec.get(facet))
        if values:
            parts.append(f"{facet}={'|'.join(values)}")
    if spec.get("min_price") is not None or spec.get("max_price") is not None:
        parts.append(f"price={spec.get('min_price', '')}..{spec.get('max_price', '')}")
    if spec.get("required"):
        parts.append(f"required={'|'.join(_as_list(spec['required']))}")
    return " ".join(parts)


# --------------------------------------------------------------------------- evaluation


def make_searcher(store_dir: Path):
    """The real library's search over the store at ``store_dir``, wrapped by searcher_for."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(PROJECT_ROOT))
    from retrieval.search import ProductSearch
    from retrieval.store import ProductStore

    return searcher_for(ProductSearch(ProductStore(Path(store_dir))))


def searcher_for(search: Any):
    """Wrap a ProductSearch-like object as (text, mode) -> (ids, mode_used).

    ``mode_used`` is None when the library's ``search`` takes no ``mode`` argument yet; its one
    ranking is then reported as "hybrid".
    """

    def run(text: str, mode: str) -> tuple[list[str], str | None]:
        try:
            result = search.search(text, k=K, mode=mode)
        except TypeError:
            if "mode" in inspect.signature(search.search).parameters:
                raise  # a real error inside search, not a missing argument
            return [str(i) for i in search.search(text, k=K).ids], None
        return [str(i) for i in result.ids], mode

    return run


def evaluate(
    catalog: CatalogArrays,
    queries: list[dict[str, Any]],
    searcher,
    modes: Sequence[str],
) -> dict[str, Any]:
    """Run every query in every mode; per-mode mean NDCG@10, latency and per-query rows."""
    rels = [catalog.relevance(spec) for spec in queries]
    results: dict[str, dict[str, Any]] = {}
    # Warm-up (model load); also tells whether the library takes a mode at all.
    mode_supported = searcher(queries[0]["query"], modes[0] if modes else "hybrid")[1] is not None
    for mode in modes:
        if "hybrid" in results and not mode_supported:
            break  # the library takes no mode: its one ranking was already run as "hybrid"
        rows: list[dict[str, Any]] = []
        latencies: list[float] = []
        effective_mode = mode
        try:
            for spec, rel in zip(queries, rels, strict=True):
                started = time.perf_counter()
                ids, used = searcher(spec["query"], mode)
                latencies.append((time.perf_counter() - started) * 1000)
                if used is None:
                    effective_mode = "hybrid"
                positions = [catalog.index.get(pid) for pid in ids]
                ranked = [float(rel[p]) if p is not None else 0.0 for p in positions]
                rows.append({
                    "query": spec["query"],
                    "ndcg": ndcg_at_k(ranked, rel, K),
                    "rels": ranked,
                    "ids": ids,
                    "top_grade_count": int((rel >= TOP_GRADE).sum()),
                    "spec": spec,
                })
        except ValueError as exc:  # the library does not know this mode
            print(f"mode {mode!r} skipped: {exc}", file=sys.stderr)
            continue
        results[effective_mode] = {
            "ndcg": statistics.fmean(r["ndcg"] for r in rows),
            "latency_ms": statistics.fmean(latencies),
            "rows": rows,
        }
    return results


def print_worst(catalog: CatalogArrays, results: dict[str, Any], n: int = 15) -> None:
    for mode, result in results.items():
        print(f"\n== worst {n} queries, mode={mode} "
              f"(mean NDCG@10 {result['ndcg']:.4f}) ==", file=sys.stderr)
        for row in sorted(result["rows"], key=lambda r: r["ndcg"])[:n]:
            print(f"{row['ndcg']:.3f}  {row['query']!r}  "
                  f"[want {describe_spec(row['spec'])}; {row['top_grade_count']} at grade 3]",
                  file=sys.stderr)
            print(f"       rels {row['rels']}", file=sys.stderr)
            for pid in row["ids"][:3]:
                position = catalog.index.get(pid)
                product = catalog.products[position] if position is not None else None
                print(f"       got {pid}: {describe_product(product)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG)
    parser.add_argument("--queries", type=Path, default=DEFAULT_QUERIES)
    parser.add_argument("--modes", default=",".join(DEFAULT_MODES))
    parser.add_argument("--per-query", action="store_true",
                        help="print the worst 15 queries per mode to stderr")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="also write the JSON line here (`shopbot report` reads it)")
    args = parser.parse_args(argv)

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    catalog = CatalogArrays(load_catalog(args.catalog))
    queries = load_queries(args.queries)
    results = evaluate(catalog, queries, make_searcher(args.store), modes)
    summary = {
        "queries": len(queries),
        "ndcg@10": {mode: round(r["ndcg"], 4) for mode, r in results.items()},
        "mean_latency_ms": {mode: round(r["latency_ms"], 1) for mode, r in results.items()},
    }
    if args.per_query:
        print_worst(catalog, results)
    line = json.dumps(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(line + "\n", encoding="utf-8")
    print(line)


if __name__ == "__main__":
    main()
