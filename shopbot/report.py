"""`shopbot report`: one self-contained HTML page (and PNGs) of how well the bot does, from
the benchmarks' results.

Each benchmark writes its one JSON line to ``var/bench/`` (``bench/nlu.py`` -> nlu.json,
``bench/search_quality.py`` -> search_quality.json, ``bench/recsys.py`` -> recsys.json,
``bench/images.py`` -> images.json); this module draws them with matplotlib: the NLU
confusion matrix and per-intent F1 of every eval set, search NDCG@10 per mode on the judged
queries, recommender HR@10 / NDCG@10 per dataset and model, and the photo classifier's
confusion on reframed shop photos. A benchmark not run yet is named with the command that
produces it. The HTML embeds its images (data URIs), so it can be mailed or archived as one
file; the PNGs are written beside it.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from shopcore.settings import Settings  # noqa: E402

logger = logging.getLogger(__name__)

BENCHES = {
    "nlu": ("NLU: intents", "nlu.json",
            ".venv-rasa/bin/python bench/nlu.py --model var/models/<model>.tar.gz "
            "--eval bench/nlu_eval.yml --eval bench/nlu_third_party.yml"),
    "search": ("Product search on the judged queries", "search_quality.json",
               ".venv/bin/python bench/search_quality.py"),
    "recsys": ("Recommender", "recsys.json", ".venv/bin/python bench/recsys.py"),
    "photos": ("Photo classifier", "images.json", ".venv/bin/python bench/images.py"),
}
MAX_MATRIX = 45  # classes shown in a confusion matrix (the most frequent)


@dataclass
class Section:
    key: str
    title: str
    command: str
    source: Path
    html: str = ""
    images: dict[str, bytes] = field(default_factory=dict)  # file name -> PNG
    missing: str = ""  # why there is nothing to show


def h(value: object) -> str:
    return escape(str(value), quote=True)


def read_result(path: Path) -> tuple[dict[str, Any] | None, str]:
    """A benchmark's JSON (the last line of its file), or None and why not."""
    if not path.is_file():
        return None, "not run yet"
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        data = json.loads(lines[-1]) if lines else None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return None, f"unreadable ({exc.__class__.__name__})"
    if not isinstance(data, dict):
        return None, "not a benchmark result"
    return data, ""


def png(figure: Figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return out.getvalue()


def confusion_figure(matrix: dict[str, dict[str, int]], title: str) -> Figure:
    """Rows: the truth, columns: the prediction, shaded by the share of the row; counts
    written in cells when the matrix is small enough to read them."""
    totals = {k: sum(v.values()) for k, v in matrix.items()}
    rows = sorted(totals, key=lambda k: (-totals[k], k))[:MAX_MATRIX]
    predicted = {p for v in matrix.values() for p in v}
    columns = rows + sorted(predicted - set(rows))[:10]  # rejections, other answers
    counts = np.array([[matrix.get(r, {}).get(c, 0) for c in columns] for r in rows], float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.28 * len(columns) + 2)
    figure, axes = plt.subplots(figsize=(size, max(3.5, 0.28 * len(rows) + 1.5)))
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    axes.set_xticks(range(len(columns)), columns, rotation=90, fontsize=7)
    axes.set_yticks(range(len(rows)), rows, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=10)
    if len(columns) <= 25:
        for i in range(len(rows)):
            for j in range(len(columns)):
                if counts[i, j]:
                    axes.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=6,
                              color="white" if shares[i, j] > 0.6 else "black")
    return figure


def bars_figure(groups: dict[str, dict[str, float]], title: str, ylabel: str,
                horizontal: bool = False) -> Figure:
    """Grouped bars: one group per key of ``groups``, one bar per inner key."""
    names = list(groups)
    series = sorted({s for g in groups.values() for s in g})
    width = 0.8 / max(len(series), 1)
    figure, axes = plt.subplots(figsize=(max(5.0, 0.5 * len(names) * max(len(series), 1) + 2),
                                         3.6) if not horizontal else (7, 0.22 * len(names) + 1.5))
    for k, name in enumerate(series):
        values = [groups[g].get(name, 0.0) or 0.0 for g in names]
        positions = np.arange(len(names)) + k * width
        if horizontal:
            axes.barh(positions, values, height=width, label=name)
        else:
            axes.bar(positions, values, width=width, label=name)
    ticks = np.arange(len(names)) + width * (len(series) - 1) / 2
    if horizontal:
        axes.set_yticks(ticks, names, fontsize=7)
        axes.set_xlabel(ylabel)
        axes.invert_yaxis()
    else:
        axes.set_xticks(ticks, names, rotation=30, ha="right", fontsize=8)
        axes.set_ylabel(ylabel)
    if len(series) > 1:
        axes.legend(fontsize=8)
    axes.set_title(title, fontsize=10)
    return figure


def _table(rows: list[list[object]], head: list[str]) -> str:
    body = "".join("<tr>" + "".join(f"<td>{h(c)}</td>" for c in r) + "</tr>" for r in rows)
    return (f"<table><thead><tr>{''.join(f'<th>{h(c)}</th>' for c in head)}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _pct(value: object) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, int | float) else "-"


def nlu_section(section: Section, data: dict[str, Any]) -> None:
    evals = data.get("evals") or {}
    rows = [[name, s.get("utterances"), _pct(s.get("intent_accuracy")),
             _pct(s.get("in_scope_false_rejection")), _pct(s.get("oos_rejected")),
             s.get("macro_f1", "-")] for name, s in evals.items()]
    parts = [f"<p>Model <code>{h(data.get('model', '?'))}</code>; fallback threshold "
             f"{h((data.get('fallback') or {}).get('threshold', '?'))}.</p>",
             _table(rows, ["eval set", "messages", "intent accuracy", "in-scope rejected",
                           "out-of-scope rejected", "macro F1"])]
    for name, s in evals.items():
        if s.get("confusion"):
            file = f"nlu-confusion-{name}.png"
            section.images[file] = png(confusion_figure(s["confusion"],
                                                        f"NLU confusion: {name}"))
            parts.append(f"<h3>{h(name)}</h3>" + _img(section, file))
        per_intent = s.get("per_intent") or {}
        if per_intent:
            file = f"nlu-f1-{name}.png"
            section.images[file] = png(bars_figure(
                {k: {"F1": v.get("f1", 0)} for k, v in sorted(per_intent.items())},
                f"F1 per intent: {name}", "F1", horizontal=True))
            parts.append(_img(section, file))
    section.html = "".join(parts)


def search_section(section: Section, data: dict[str, Any]) -> None:
    ndcg = data.get("ndcg@10") or {}
    latency = data.get("mean_latency_ms") or {}
    section.images["search-ndcg.png"] = png(bars_figure(
        {mode: {"NDCG@10": value} for mode, value in ndcg.items()},
        f"NDCG@10 on {data.get('queries', '?')} judged queries", "NDCG@10"))
    section.html = (_table([[m, v, latency.get(m, "-")] for m, v in ndcg.items()],
                           ["mode", "NDCG@10", "mean latency ms"])
                    + _img(section, "search-ndcg.png"))


def recsys_section(section: Section, data: dict[str, Any]) -> None:
    rows, parts = [], []
    for dataset, models in (data.get("datasets") or {}).items():
        scores = {m: {"HR@10": v["test_hr@10"], "NDCG@10": v["test_ndcg@10"]}
                  for m, v in models.items() if isinstance(v, dict) and "test_hr@10" in v}
        rows += [[dataset, m, s["HR@10"], s["NDCG@10"]] for m, s in scores.items()]
        if scores:
            file = f"recsys-{dataset}.png"
            section.images[file] = png(bars_figure(scores, f"{dataset}: leave-one-out test",
                                                   "score"))
            parts.append(_img(section, file))
    section.html = _table(rows, ["dataset", "model", "HR@10", "NDCG@10"]) + "".join(parts)


def photos_section(section: Section, data: dict[str, Any]) -> None:
    head = data.get("head") or {}
    rows = [[split, _pct(r.get("top1")), _pct(r.get("top3")), r.get("macro_f1", "-")]
            for split, r in head.items() if isinstance(r, dict) and "top1" in r]
    parts = [_table(rows, ["test set", "top-1", "top-3", "macro F1"])]
    matrix = (head.get("test_reframed") or {}).get("confusion")
    if matrix:
        section.images["photo-confusion.png"] = png(confusion_figure(
            matrix, "Photo classifier confusion (reframed shop photos)"))
        parts.append(_img(section, "photo-confusion.png"))
    section.html = "".join(parts)


BUILDERS = {"nlu": nlu_section, "search": search_section, "recsys": recsys_section,
            "photos": photos_section}


def _img(section: Section, file: str) -> str:
    encoded = base64.b64encode(section.images[file]).decode()
    return f'<img alt="{h(file)}" src="data:image/png;base64,{encoded}">'


def build(results_dir: Path) -> list[Section]:
    sections = []
    for key, (title, file, command) in BENCHES.items():
        section = Section(key, title, command, results_dir / file)
        data, why = read_result(section.source)
        if data is None:
            section.missing = why
        else:
            try:
                BUILDERS[key](section, data)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                logger.warning("report: %s has an unexpected shape: %r", file, exc)
                section.images.clear()
                section.missing = f"unexpected shape ({exc.__class__.__name__}: {exc})"
        sections.append(section)
    return sections


STYLE = """body{font:14px/1.45 system-ui,sans-serif;color:#1d2330;max-width:1100px;margin:2rem auto;
padding:0 1rem}h1{margin-bottom:.2rem}section{margin:2rem 0}table{border-collapse:collapse;
margin:.6rem 0}td,th{border-bottom:1px solid #dde1e8;padding:.25rem .6rem;text-align:left}
img{max-width:100%;display:block;margin:.6rem 0}.missing{color:#5d6677}code{font-size:.9em}"""


def build_default_paths(settings: Settings, results: Path | None, out: Path | None
                        ) -> tuple[Path, Path]:
    """Where the benchmarks write (``<var>/bench``) and where the console looks
    (``<var>/report``), unless given."""
    var = Path(settings.var_dir)
    return results or var / "bench", out or var / "report"


def write_report(results_dir: Path, out_dir: Path, now: datetime | None = None) -> Path:
    """Write ``report.html`` and the PNGs to ``out_dir``; returns the HTML's path."""
    sections = build(results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for section in sections:
        for file, data in section.images.items():
            (out_dir / file).write_bytes(data)
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    body = []
    for s in sections:
        if s.missing:
            content = (f'<p class="missing">Not measured: {h(s.missing)} '
                       f"(<code>{h(s.source.name)}</code>). Run <code>{h(s.command)}</code>."
                       "</p>")
        else:
            content = s.html
        body.append(f'<section id="{h(s.key)}"><h2>{h(s.title)}</h2>{content}</section>')
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shopbot evaluation report</title>
<style>{STYLE}</style></head><body>
<h1>shopbot evaluation report</h1>
<p>Written {h(when)} from the benchmark results in <code>{h(results_dir)}</code>.</p>
{"".join(body)}
</body></html>
"""
    path = out_dir / "report.html"
    partial = out_dir / "report.html.partial"
    partial.write_text(html, encoding="utf-8")
    partial.replace(path)
    return path
