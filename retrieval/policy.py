"""The shop policy file (bot/policy.yml): load and validate it, answer by intent or by meaning.

The shop edits one YAML file with its facts (fees, days, contact details) and its answers;
answers quote facts as ``{section.field}`` so a fee is written once. The bot answers a named
intent with that intent's entry; any other shop question is matched by meaning against the
entries' question variants (MiniLM, the encoder search uses), and below a confidence
threshold the caller offers a person instead of guessing.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shopcore.settings import get_settings

logger = logging.getLogger(__name__)

POLICY_FILE_ENV = "SHOPBOT_POLICY_FILE"
# Cosine similarity (MiniLM) between a question and an entry's closest variant. Paraphrases
# of an entry score about 0.55-0.9; other shop questions and off-topic text mostly stay
# under 0.45 (tests/test_policy.py holds examples of both).
MIN_SCORE = 0.5


class PolicyError(ValueError):
    """The policy file is missing or invalid; the message says where and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShopInfo(_Section):
    name: str
    website: str
    app: str


class Contact(_Section):
    phone: str
    email: str
    whatsapp: str
    hours: str
    complaints_email: str


class Shipping(_Section):
    free_above: int = Field(ge=0, description="Order value (₹) from which delivery is free.")
    standard_fee: int = Field(ge=0)
    standard_days_metro: str
    standard_days_other: str
    express_fee: int = Field(ge=0)
    express_days: str
    same_day_cities: str
    same_day_fee: int = Field(ge=0)
    same_day_order_by: str
    international: bool


class Returns(_Section):
    window_days: int = Field(ge=0, description="Days after delivery a return is accepted.")
    refund_days: str
    non_returnable: str


class Cancellation(_Section):
    fee_before_dispatch: int = Field(ge=0)
    fee_after_dispatch: int = Field(ge=0)


class Payment(_Section):
    cod_limit: int = Field(ge=0)
    cod_fee: int = Field(ge=0)
    emi_above: int = Field(ge=0)


class PolicyEntry(_Section):
    """One topic: the answer, the intent it answers (if any), and question variants."""

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    intent: str | None = None
    questions: list[str] = Field(min_length=1)
    answer: str = Field(min_length=1)


class _FactFormatter(string.Formatter):
    """``{section.field}`` only: no indexing, no attributes beyond the policy's facts."""

    def get_field(self, field_name: str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        section, _, name = field_name.partition(".")
        facts = kwargs.get(section)
        if not isinstance(facts, BaseModel) or name not in type(facts).model_fields:
            raise KeyError(field_name)
        return getattr(facts, name), field_name


_FORMATTER = _FactFormatter()


class ShopPolicy(_Section):
    shop: ShopInfo
    contact: Contact
    shipping: Shipping
    returns: Returns
    cancellation: Cancellation
    payment: Payment
    entries: list[PolicyEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _entries_are_consistent(self) -> ShopPolicy:
        seen_ids: set[str] = set()
        seen_intents: set[str] = set()
        for entry in self.entries:
            if entry.id in seen_ids:
                raise ValueError(f"two entries have the id '{entry.id}'")
            seen_ids.add(entry.id)
            if entry.intent is not None:
                if entry.intent in seen_intents:
                    raise ValueError(f"two entries answer the intent '{entry.intent}'")
                seen_intents.add(entry.intent)
            try:
                self.answer(entry)
            except KeyError as error:
                raise ValueError(
                    f"the answer of '{entry.id}' uses {{{error.args[0]}}}, which is not a "
                    f"fact of this file (write {{{{ and }}}} for literal braces)"
                ) from None
            except (ValueError, IndexError) as error:
                raise ValueError(f"the answer of '{entry.id}' is not a valid template: "
                                 f"{error}") from None
        return self

    def _facts(self) -> dict[str, BaseModel]:
        return {name: getattr(self, name) for name in type(self).model_fields
                if name != "entries"}

    def answer(self, entry: PolicyEntry) -> str:
        """The entry's answer with its ``{section.field}`` facts filled in."""
        return _FORMATTER.vformat(entry.answer, (), self._facts()).strip()

    def for_intent(self, intent: str) -> PolicyEntry | None:
        return next((e for e in self.entries if e.intent == intent), None)

    @property
    def intents(self) -> set[str]:
        """The named intents this file answers."""
        return {e.intent for e in self.entries if e.intent is not None}


def policy_file() -> Path:
    """Where the policy file is: ``$SHOPBOT_POLICY_FILE``, else ``bot/policy.yml``."""
    return Path(get_settings().policy_file)  # type: ignore[arg-type]


def _where(location: tuple[Any, ...], raw: Any) -> str:
    """'entries[3] (gift_wrap).questions' from pydantic's ('entries', 3, 'questions')."""
    parts: list[str] = []
    node = raw
    for key in location:
        if isinstance(key, int):
            label = f"[{key}]"
            node = node[key] if isinstance(node, list) and key < len(node) else None
            if isinstance(node, dict) and node.get("id"):
                label += f" ({node['id']})"
            parts.append(label)
        else:
            node = node.get(key) if isinstance(node, dict) else None
            parts.append(f".{key}" if parts else str(key))
    return "".join(parts) or "(top level)"


def load_policy(path: Path | str | None = None) -> ShopPolicy:
    """Read and validate a policy file; every problem becomes one :class:`PolicyError`."""
    path = Path(path) if path is not None else policy_file()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} not found (set {POLICY_FILE_ENV} or create "
                          f"{path.name})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyError(f"policy file {path} cannot be read: {error}") from None
    except yaml.YAMLError as error:
        raise PolicyError(f"policy file {path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise PolicyError(f"policy file {path} must be a mapping of sections, "
                          f"got {type(raw).__name__}")
    try:
        return ShopPolicy.model_validate(raw)
    except ValidationError as error:
        problems = "\n".join(f"  - {_where(e['loc'], raw)}: {e['msg']}" for e in error.errors())
        raise PolicyError(f"policy file {path} has {error.error_count()} problem(s):\n"
                          f"{problems}") from None


@dataclass(frozen=True)
class PolicyMatch:
    entry: PolicyEntry
    score: float  # cosine similarity of the closest question variant


class PolicyRetriever:
    """Finds the policy entry whose question variants are closest in meaning to a text."""

    def __init__(self, policy: ShopPolicy, min_score: float = MIN_SCORE,
                 encode: Callable[[list[str]], np.ndarray] | None = None) -> None:
        if encode is None:
            from retrieval.embeddings import encode
        self.policy = policy
        self.min_score = min_score
        self._encode = encode
        questions = [(i, q) for i, e in enumerate(policy.entries) for q in e.questions]
        self._owner = np.array([i for i, _ in questions])
        self._vectors = encode([q for _, q in questions])  # once: ~0.5 s for 100 variants

    def rank(self, text: str, k: int = 3) -> list[PolicyMatch]:
        """The k entries closest to ``text``, best first, each scored by its best variant."""
        if not text.strip():
            return []
        scores = self._vectors @ self._encode([text])[0]
        best = np.full(len(self.policy.entries), -1.0, dtype=np.float32)
        np.maximum.at(best, self._owner, scores)
        order = np.argsort(-best)[:k]
        return [PolicyMatch(self.policy.entries[i], float(best[i])) for i in order]

    def best(self, text: str) -> PolicyMatch | None:
        """The closest entry, or None when it is not close enough to answer with."""
        ranked = self.rank(text, k=1)
        return ranked[0] if ranked and ranked[0].score >= self.min_score else None


@lru_cache(maxsize=1)
def _cached_policy(path: Path, mtime_ns: int) -> ShopPolicy:
    return load_policy(path)


@lru_cache(maxsize=1)
def _cached_retriever(path: Path, mtime_ns: int) -> PolicyRetriever:
    return PolicyRetriever(_cached_policy(path, mtime_ns))


def _stamp(path: Path | None) -> tuple[Path, int]:
    path = (path or policy_file()).resolve()
    try:
        return path, path.stat().st_mtime_ns
    except OSError:
        load_policy(path)  # raises the PolicyError that says what is wrong
        raise


def current_policy(path: Path | None = None) -> ShopPolicy:
    """The policy file, loaded once per process and again only when the file changes."""
    return _cached_policy(*_stamp(path))


def current_retriever(path: Path | None = None) -> PolicyRetriever:
    """A retriever over :func:`current_policy`; its questions are encoded once per version."""
    return _cached_retriever(*_stamp(path))
