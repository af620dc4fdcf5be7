"""Build bench/nlu_third_party.yml: a third-party NLU evaluation set (never training data).

Sources (read from local copies; nothing is downloaded here):

* Bitext "Sample Customer Service Training Dataset" (27 customer-service intents, columns
  ``flags,utterance,category,intent``; the newer LLM release has ``instruction`` instead of
  ``utterance`` and is read as well). (c) Bitext Innovations; Bitext publishes its sample
  customer-service datasets under CDLA-Sharing-1.0
  (https://github.com/bitext/customer-support-llm-chatbot-training-dataset/blob/main/LICENSE.txt).
  bench/nlu_third_party.yml was built from the 8,359-row Bitext_Sample_Customer_Service_
  Training_Dataset.csv as copied in github.com/mohamedmgh/Chatbot_BERT_Intent_classifaction-
  (the repository bitext/customer-support-llm-chatbot-training-dataset keeps its CSV in LFS).
* CLINC150 out-of-scope queries (https://github.com/clinc/oos-eval, data/data_full.json, keys
  ``oos_test`` and ``oos_val``), CC BY 3.0.

Usage (any Python with PyYAML):
    python bench/third_party_eval.py --bitext path/to/bitext.csv --clinc path/to/data_full.json
        [--per-intent 40] [--oos 300] [--seed 13] [--out bench/nlu_third_party.yml]

The sample is seeded, so the same inputs give the same file. Bitext intents the bot does not
have are dropped; ``check_invoices`` (old Bitext name) maps to ``check_invoice``. Utterances
that also occur in the bot's training data (bot/data) are skipped, so the set stays held out.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from collections import defaultdict
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(__file__).resolve().parent / "nlu_third_party.yml"
RENAMES = {"check_invoices": "check_invoice"}
OUT_OF_SCOPE = "out_of_scope"


def domain_intents(root: Path = PROJECT_ROOT) -> set[str]:
    domain = yaml.safe_load((root / "domain.yml").read_text(encoding="utf-8"))
    return {i if isinstance(i, str) else next(iter(i)) for i in domain.get("intents") or []}


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w{} ]+", " ", text.lower())).strip()


def training_texts(root: Path = PROJECT_ROOT) -> set[str]:
    """Every example text in bot/data (entity markup removed), normalised."""
    texts = set()
    for path in sorted((root / "bot" / "data").rglob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for block in data.get("nlu") or []:
            for line in (block.get("examples") or "").splitlines():
                line = line.strip()
                if line.startswith("- "):
                    plain = re.sub(r"\[([^\]]+)\]\([^)]+\)|\[([^\]]+)\]\{[^}]+\}", r"\1\2",
                                   line[2:])
                    texts.add(normalise(plain))
    return texts


def read_bitext(path: Path) -> dict[str, list[str]]:
    by_intent: dict[str, list[str]] = defaultdict(list)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            text = (row.get("utterance") or row.get("instruction") or "").strip()
            intent = (row.get("intent") or "").strip()
            if text and intent:
                by_intent[RENAMES.get(intent, intent)].append(text)
    return by_intent


def read_clinc_oos(path: Path) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [text for key in ("oos_test", "oos_val") for text, _ in data.get(key) or []]


def sample(texts: list[str], count: int, rng: random.Random, skip: set[str]) -> list[str]:
    seen, unique = set(skip), []
    for text in texts:
        key = normalise(text)
        if key not in seen:
            seen.add(key)
            unique.append(text)
    unique.sort()  # independent of the file's row order
    return rng.sample(unique, min(count, len(unique)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bitext", type=Path, required=True)
    parser.add_argument("--clinc", type=Path, required=True)
    parser.add_argument("--per-intent", type=int, default=40)
    parser.add_argument("--oos", type=int, default=300)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    known = domain_intents()
    skip = training_texts()
    bitext = read_bitext(args.bitext)
    dropped = sorted(set(bitext) - known)
    result: dict[str, list[str]] = {}
    for intent in sorted(set(bitext) & known):
        result[intent] = sample(bitext[intent], args.per_intent,
                                random.Random(f"{args.seed}:{intent}"), skip)
    result[OUT_OF_SCOPE] = sample(read_clinc_oos(args.clinc), args.oos,
                                  random.Random(f"{args.seed}:{OUT_OF_SCOPE}"), skip)

    header = [
        "# Third-party NLU evaluation set for bench/nlu.py, built by bench/third_party_eval.py",
        f"# (seed {args.seed}, {args.per_intent} per intent, {args.oos} out-of-scope).",
        "# NEVER copy these utterances into bot/data: they measure how other people write.",
        "# Customer-service intents: Bitext Sample Customer Service Training Dataset",
        f"#   ({args.bitext.name}), (c) Bitext Innovations. The copy read carried no licence",
        "#   file; Bitext publishes its customer-service samples under CDLA-Sharing-1.0",
        "#   (https://github.com/bitext/customer-support-llm-chatbot-training-dataset):",
        "#   check before redistributing.",
        "# out_of_scope: CLINC150 oos_test/oos_val (https://github.com/clinc/oos-eval),"
        " CC BY 3.0.",
    ]
    if dropped:
        header.append(f"# Dropped Bitext intents the bot lacks: {', '.join(dropped)}.")
    body = yaml.safe_dump(result, allow_unicode=True, sort_keys=False, width=1000)
    args.out.write_text("\n".join(header) + "\n\n" + body, encoding="utf-8")
    counts = {k: len(v) for k, v in result.items()}
    print(json.dumps({"out": str(args.out), "intents": len(counts), "counts": counts}))


if __name__ == "__main__":
    main()
