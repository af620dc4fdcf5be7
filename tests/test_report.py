"""`shopbot report` as installed: the benchmarks' JSON in, one self-contained HTML page and
its PNGs out; and the console page that shows it.

The NLU input is made by ``bench/nlu.py``'s own evaluation code (its ``evaluate_file`` on
parse results shaped as Rasa returns them), so the report reads what the benchmark writes;
the other benchmarks' lines follow their documented shapes (each takes minutes to hours on
real data, see the README for measured runs).
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

BENCH = Path(__file__).resolve().parent.parent / "bench"
SHOPBOT = Path(sys.executable).parent / "shopbot"


def _bench_nlu() -> Any:
    spec = importlib.util.spec_from_file_location("bench_nlu", BENCH / "nlu.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def parse(intent: str, confidence: float, runner_up: str) -> dict[str, Any]:
    """One message as Rasa's Agent.parse_message answers it."""
    ranking = [{"name": intent, "confidence": confidence},
               {"name": runner_up, "confidence": 1 - confidence}]
    return {"intent": ranking[0], "intent_ranking": ranking, "entities": []}


def nlu_result() -> dict[str, Any]:
    nlu = _bench_nlu()
    examples = [{"expected": e, "text": t, "gold": None} for e, t in [
        ("greet", "hi"), ("greet", "hello there"), ("greet", "yo"),
        ("track_order", "where is my parcel"), ("track_order", "order status"),
        ("out_of_scope", "what's the weather")]]
    results = {"hi": parse("greet", 0.98, "goodbye"),
               "hello there": parse("greet", 0.9, "goodbye"),
               "yo": parse("goodbye", 0.6, "greet"),
               "where is my parcel": parse("track_order", 0.95, "greet"),
               "order status": parse("track_order", 0.7, "greet"),
               "what's the weather": parse("nlu_fallback", 0.2, "greet")}
    section = nlu.evaluate_file(examples, results, 0.3, 0.05, 5, False)
    assert section["confusion"] == {"greet": {"greet": 2, "goodbye": 1},
                                    "out_of_scope": {"nlu_fallback": 1},
                                    "track_order": {"track_order": 2}}
    return {"model": "bot-test.tar.gz", "fallback": {"threshold": 0.3},
            "evals": {"third_party": {"file": "bench/x.yml", **section}}}


RESULTS = {
    "search_quality.json": {"queries": 140, "ndcg@10": {"dense": 0.71, "lexical": 0.66,
                                                        "hybrid": 0.78},
                            "mean_latency_ms": {"dense": 21.0, "lexical": 4.2, "hybrid": 26.5}},
    "recsys.json": {"datasets": {"beauty": {
        "data": {"users": 22363},
        "popular": {"test_hr@10": 0.012, "test_ndcg@10": 0.006},
        "sasrec_attr": {"test_hr@10": 0.101, "test_ndcg@10": 0.0571}}}},
    "images.json": {"head": {"test": {"top1": 0.93, "top3": 0.98, "macro_f1": 0.9},
                             "test_reframed": {"top1": 0.81, "top3": 0.95, "macro_f1": 0.78,
                                               "confusion": {"Tshirts": {"Tshirts": 40,
                                                                         "Tops": 3},
                                                             "Watches": {"Watches": 12}}}}},
}


def write_results(folder: Path, skip: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in {"nlu.json": nlu_result(), **RESULTS}.items():
        if name != skip:
            (folder / name).write_text("progress line\n" + json.dumps(data) + "\n")


def run_report(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOPBOT_VAR_DIR": str(cwd / "var")}
    return subprocess.run([str(SHOPBOT), "report", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def images_of(html: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(data)))
            for data in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_shopbot_report_writes_one_self_contained_page_and_its_pngs(tmp_path: Path) -> None:
    write_results(tmp_path / "var" / "bench")
    done = run_report(tmp_path)  # the defaults: <var>/bench in, <var>/report out
    assert done.returncode == 0, done.stderr
    out = tmp_path / "var" / "report"
    html = (out / "report.html").read_text()
    assert "Not measured" not in html
    for title in ("NLU: intents", "Product search on the judged queries", "Recommender",
                  "Photo classifier"):
        assert title in html
    # intent accuracy: 4 of the 5 in-scope messages; NDCG, recommender and photo numbers
    assert "80.0%" in html and "0.78" in html and "0.0571" in html and "81.0%" in html
    # Nothing outside the file: no scripts, links or remote images.
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")
    pictures = images_of(html)
    files = sorted(p.name for p in out.glob("*.png"))
    assert files == ["nlu-confusion-third_party.png", "nlu-f1-third_party.png",
                     "photo-confusion.png", "recsys-beauty.png", "search-ndcg.png"]
    assert len(pictures) == len(files)
    for picture in pictures:
        assert picture.format == "PNG" and picture.width > 200 and picture.height > 150


def test_a_missing_or_broken_result_is_named_with_the_command_that_makes_it(
        tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_results(results, skip="recsys.json")
    (results / "images.json").write_text("{not json")
    done = run_report(tmp_path, "--results", str(results), "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "r" / "report.html").read_text()
    assert re.search(r"Not measured: not run yet .*recsys\.json.*bench/recsys\.py", html)
    assert re.search(r"Not measured: unreadable \(JSONDecodeError\).*bench/images\.py", html)
    assert "search-ndcg.png" in html


@pytest.fixture
def report_settings(tmp_path: Path) -> Any:
    from shopcore.settings import Settings

    return Settings(var_dir=tmp_path / "var", store_dir=tmp_path / "store",
                    database_url=f"sqlite:///{tmp_path / 'shop.db'}", demo=False)


async def test_the_console_shows_the_latest_report_to_staff_only(
        report_settings: Any, tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from retrieval.store import ProductStore
    from shop.staff import StaffStore
    from shopbot.report import write_report
    from shopbot.web import create_app
    from shopcore.db import close_databases, open_database
    from tests.test_console import EMAIL, PASSWORD, sign_in

    StaffStore(open_database(report_settings.shop_database_url)).add(EMAIL, PASSWORD)
    app = create_app(report_settings, ProductStore(tmp_path / "store"))
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/console/report", allow_redirects=False)).status == 302
        assert (await sign_in(client)).status == 303
        none = await client.get("/console/report")
        assert none.status == 404 and "shopbot report" in await none.text()

        write_results(tmp_path / "var" / "bench")
        write_report(tmp_path / "var" / "bench", tmp_path / "var" / "report")
        shown = await client.get("/console/report")
        html = await shown.text()
        assert shown.status == 200 and "shopbot evaluation report" in html
        policy = shown.headers["Content-Security-Policy"]
        assert "img-src data:" in policy and "script-src" not in policy
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert len(images_of(html)) == 5
        page = await client.get("/console/insights")
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert 'href="/console/report"' in await page.text()
    close_databases()
