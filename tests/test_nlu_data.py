"""The generated NLU training data: deterministic, up to date, valid, unambiguous.

Light checks (no Rasa, no model): scripts/generate_nlu.py gives the same output on every run
and it matches bot/data/nlu/generated.yml; that file is Rasa NLU YAML whose intents are all
in domain.yml, without entity markup, and none of its examples appears under two intents,
elsewhere in bot/data or in a benchmark file.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "bot" / "data" / "nlu" / "generated.yml"


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("generate_nlu",
                                                  ROOT / "scripts" / "generate_nlu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["generate_nlu"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated() -> dict[str, list[str]]:
    data = yaml.safe_load(GENERATED.read_text(encoding="utf-8"))
    assert str(data["version"]) == "3.1"
    result: dict[str, list[str]] = {}
    for block in data["nlu"]:
        assert set(block) == {"intent", "examples"}, block.keys()
        lines = block["examples"].splitlines()
        assert all(line.startswith("- ") for line in lines), block["intent"]
        assert block["intent"] not in result, f"{block['intent']} listed twice"
        result[block["intent"]] = [line[2:] for line in lines]
    return result


def domain_intents() -> set[str]:
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    return {i if isinstance(i, str) else next(iter(i)) for i in domain["intents"]}


def test_generator_is_deterministic(generator):
    first = generator.render(generator.generate(ROOT, GENERATED))
    second = generator.render(generator.generate(ROOT, GENERATED))
    assert first == second


def test_generated_file_is_up_to_date(generator):
    expected = generator.render(generator.generate(ROOT, GENERATED))
    assert GENERATED.read_text(encoding="utf-8") == expected, (
        "bot/data/nlu/generated.yml is stale: run .venv/bin/python scripts/generate_nlu.py")


def test_only_domain_intents_and_enough_examples(generated):
    assert set(generated) <= domain_intents()
    assert "out_of_scope" in generated
    for intent, texts in generated.items():
        assert 10 <= len(texts) <= 200, (intent, len(texts))


def test_no_entity_markup(generated):
    markup = re.compile(r"\[[^\]]+\](\(|\{)")
    assert not [t for texts in generated.values() for t in texts if markup.search(t)]


def test_no_collisions(generator, generated):
    owners: dict[str, set[str]] = {}
    for intent, texts in generated.items():
        keys = [generator.normalise(t) for t in texts]
        assert len(keys) == len(set(keys)), f"duplicates under {intent}"
        for key in keys:
            owners.setdefault(key, set()).add(intent)
    assert not {k: v for k, v in owners.items() if len(v) > 1}
    elsewhere = generator.existing_texts(ROOT, GENERATED) | generator.eval_texts(ROOT)
    assert not sorted(set(owners) & elsewhere)
