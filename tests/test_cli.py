"""The `shopbot` command line, run as a real subprocess like evaluations run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SHOPBOT = Path(sys.executable).parent / "shopbot"


def shopbot(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SHOPBOT), *args], input=stdin, capture_output=True, text=True,
                          timeout=300)


def test_batch_search_contract(sample_store_dir: Path, tmp_path: Path) -> None:
    queries = ["show me red dresses", "", "black heels under 1500", "😀", "men sneakers"]
    batch = tmp_path / "queries.txt"
    batch.write_text("\n".join(queries) + "\n", encoding="utf-8")
    done = shopbot("search", "--batch", str(batch), "--json", "--k", "5",
                   "--store", str(sample_store_dir))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["query"] for line in lines] == [q for q in queries if q]
    assert all(set(line) == {"query", "ids"} for line in lines)
    red = lines[0]["ids"]
    assert len(red) == 5 and all(isinstance(i, str) for i in red)
    assert 1 <= len(lines[1]["ids"]) <= 5
    assert lines[2]["ids"] == []
    assert len(lines[3]["ids"]) == 5


def test_single_search_json_and_table(sample_store_dir: Path) -> None:
    done = shopbot("search", "red dresses", "--json", "--k", "3", "--store", str(sample_store_dir))
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert len(payload["ids"]) == 3 and payload["understood"]["colours"] == ["Red"]
    table = shopbot("search", "red dresses", "--k", "3", "--store", str(sample_store_dir))
    assert table.returncode == 0 and "Red" in table.stdout


def test_ingest_twice_changes_nothing(tmp_path: Path) -> None:
    catalog = tmp_path / "shop.csv"
    catalog.write_text("id,name,price,article_type,base_colour\n"
                       "1,Black Leather Belt,799,Belts,Black\n2,Brown Wallet,999,Wallets,Brown\n")
    store = tmp_path / "store"
    first = shopbot("ingest", str(catalog), "--store", str(store))
    assert first.returncode == 0, first.stderr
    assert "2 added" in first.stderr
    second = shopbot("ingest", str(catalog), "--store", str(store))
    assert "0 added, 0 updated, 2 unchanged" in second.stderr
    found = shopbot("search", "belt", "--json", "--store", str(store))
    assert json.loads(found.stdout)["ids"][0] == "1"


def test_bad_arguments_fail_clearly(tmp_path: Path) -> None:
    missing = shopbot("ingest", str(tmp_path / "nope.jsonl"), "--store", str(tmp_path / "s"))
    assert missing.returncode == 2 and "not found" in missing.stderr
    neither = shopbot("search", "--store", str(tmp_path / "s"))
    assert neither.returncode == 2


def test_demo_recommender_command_as_run_starts_it(sample_store_dir: Path, tmp_path: Path) -> None:
    """`shopbot run` starts `python -m shopbot recsys demo` as a child process; run it so."""
    from recsys.artifacts import try_load_model

    out = tmp_path / "recsys" / "demo.pt"
    done = subprocess.run(
        [sys.executable, "-m", "shopbot", "recsys", "demo", "--store", str(sample_store_dir),
         "--out", str(out), "--time-budget", "5"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trained = try_load_model(out)
    assert trained is not None and trained.meta["synthetic"] is True
    empty = subprocess.run(
        [sys.executable, "-m", "shopbot", "recsys", "demo", "--store", str(tmp_path / "none"),
         "--out", str(tmp_path / "x.pt")], capture_output=True, text=True, timeout=300)
    assert empty.returncode != 0 and "ingest" in empty.stdout + empty.stderr
    assert not (tmp_path / "x.pt").exists()
