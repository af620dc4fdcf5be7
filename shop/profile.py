"""What the shop remembers about a shopper (sizes, gender, budget, favourite brands and
colours), and how it fills what a search leaves open.

What a message teaches comes from :mod:`shop.preferences`; :func:`with_profile_defaults`
turns a profile into the search constraints a fresh search starts from.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, insert, select, update

from retrieval.catalog import Product
from retrieval.query import SearchConstraints
from retrieval.vocab import GENDER_WORDS
from shop.preferences import GENDERS, MAX_BUDGET, MAX_FAVOURITES, ProfileUpdate
from shop.sizes import SIZE_KINDS, normalise_size, size_kind
from shopcore.db import Database, now_utc, profiles
from shopcore.ids import short, valid_id
from shopcore.text import BadInput, clean_text

logger = logging.getLogger(__name__)


class Profile(BaseModel):
    """One shopper's remembered preferences; empty for a shopper the shop doesn't know."""

    model_config = ConfigDict(frozen=True)

    sender_id: str
    sizes: dict[str, str] = {}  # kind (shoe, clothing, waist) -> size as the catalog writes it
    gender: str = ""  # "Men" or "Women"
    budget_max: float | None = None
    brands: list[str] = []  # most recently stated first
    colours: list[str] = []
    updated_at: datetime | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.sizes or self.gender or self.budget_max or self.brands or self.colours)


class ProfileStore:
    """Profiles per shopper; updates merge into what is already known."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def get(self, sender_id: str) -> Profile:
        if not valid_id(sender_id):
            return Profile(sender_id="")
        with self.db.read() as conn:
            return _get(conn, sender_id)

    def update(self, sender_id: str, **fields: Any) -> Profile:
        """Merge fields into the profile: sizes per kind and single values replace, brands and
        colours are added (most recent first). Invalid values are dropped with a log line."""
        if not valid_id(sender_id):
            logger.warning("profile not updated: bad sender id %s", short(sender_id))
            return Profile(sender_id="")
        with self.db.write(sender_id) as conn:
            current = _get(conn, sender_id)
            merged = _merge(current, fields)
            if merged == current:
                return current
            merged = merged.model_copy(update={"updated_at": now_utc()})
            data = merged.model_dump(mode="json", exclude={"sender_id", "updated_at"})
            if current.updated_at is None:
                conn.execute(insert(profiles).values(sender_id=sender_id, data=data,
                                                     updated_at=merged.updated_at))
            else:
                conn.execute(update(profiles).where(profiles.c.sender_id == sender_id)
                             .values(data=data, updated_at=merged.updated_at))
        return merged

    def apply(self, sender_id: str, learned: ProfileUpdate) -> Profile:
        """Store what :func:`shop.preferences.learn_from_text` found."""
        return self.update(sender_id, **learned.fields()) if not learned.is_empty \
            else self.get(sender_id)

    def delete(self, sender_id: str) -> int:
        if not valid_id(sender_id):
            return 0
        with self.db.write(sender_id) as conn:
            return conn.execute(delete(profiles).where(profiles.c.sender_id == sender_id)).rowcount


def _get(conn, sender_id: str) -> Profile:  # noqa: ANN001 - a SQLAlchemy Connection
    row = conn.execute(select(profiles.c.data, profiles.c.updated_at)
                       .where(profiles.c.sender_id == sender_id)).first()
    if row is None:
        return Profile(sender_id=sender_id)
    return Profile(sender_id=sender_id, **row.data, updated_at=row.updated_at)


def _merge(profile: Profile, fields: dict[str, Any]) -> Profile:
    changes: dict[str, Any] = {}
    for name, value in fields.items():
        try:
            if name == "sizes":
                changes["sizes"] = {**profile.sizes, **_valid_sizes(value)}
            elif name == "gender":
                changes["gender"] = _valid_gender(value)
            elif name == "budget_max":
                changes["budget_max"] = _valid_budget(value)
            elif name in ("brands", "colours"):
                changes[name] = _favourites(value, getattr(profile, name))
            else:
                raise BadInput(f"unknown profile field {name!r}")
        except BadInput as error:
            logger.warning("profile field %s for %s not stored: %s", name,
                           short(profile.sender_id), error)
    return profile.model_copy(update=changes)


def _valid_sizes(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise BadInput("sizes must map a kind to a size")
    sizes = {}
    for kind, size in value.items():
        if kind not in SIZE_KINDS:
            raise BadInput(f"unknown size kind {str(kind)[:20]!r}")
        if not isinstance(size, str) or not re.fullmatch(r"[A-Za-z0-9.\- ]{1,10}", size):
            raise BadInput(f"not a size: {str(size)[:20]!r}")
        sizes[kind] = size.strip()
    return sizes


def _valid_gender(value: Any) -> str:
    for gender in GENDERS:
        if isinstance(value, str) and value.strip().lower() in (gender.lower(),
                                                                gender.lower().rstrip("n")):
            return gender
    targets = GENDER_WORDS.get(str(value).strip().lower()[:20], []) if value else []
    if targets and targets[0] in GENDERS:
        return targets[0]
    raise BadInput(f"not a gender the catalog uses: {str(value)[:20]!r}")


def _valid_budget(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 < value <= MAX_BUDGET:
        raise BadInput(f"not a budget: {str(value)[:20]!r}")
    return float(value)


def _favourites(value: Any, current: list[str]) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise BadInput("expected a list of names")
    new = [clean_text(v, what="name", max_chars=60) for v in value]
    merged: list[str] = []
    for name in [*reversed(new), *current]:
        if name.lower() not in {m.lower() for m in merged}:
            merged.append(name)
    return merged[:MAX_FAVOURITES]


# -- using the profile ---------------------------------------------------------------------------


def search_defaults(profile: Profile) -> dict[str, Any]:
    """Profile facts as ``SearchConstraints`` fields: ``genders`` and ``max_price``."""
    defaults: dict[str, Any] = {}
    if profile.gender in GENDERS:
        defaults["genders"] = list(GENDER_WORDS[profile.gender.lower()])
    if profile.budget_max:
        defaults["max_price"] = profile.budget_max
    return defaults


def with_profile_defaults(
    constraints: SearchConstraints, profile: Profile
) -> tuple[SearchConstraints, list[str]]:
    """Fill what the query left open from the profile; returns what was filled
    ("gender", "price") so the reply can say so. A query's own words always win."""
    defaults = search_defaults(profile)
    changes: dict[str, Any] = {}
    if "genders" in defaults and not constraints.genders:
        changes["genders"] = defaults["genders"]
    price_open = constraints.max_price is None and (
        constraints.min_price is None or constraints.min_price < defaults.get("max_price", 0))
    if "max_price" in defaults and price_open:
        changes["max_price"] = defaults["max_price"]
    filled = [{"genders": "gender", "max_price": "price"}[k] for k in changes]
    return replace(constraints, **changes), filled


def preferred_size(profile: Profile, product: Product) -> str | None:
    """The shopper's size for this product when they told us one and the product has it."""
    kind = size_kind(product)
    wanted = profile.sizes.get(kind) if kind else None
    return normalise_size(wanted, product.sizes) if wanted else None
