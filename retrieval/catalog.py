"""The product model and catalog loaders (Myntra-format JSON Lines and a simple CSV).

Loaders are forgiving about the file and strict about each record: a malformed row is
skipped with a log line and counted, never allowed to stop a 44k-product ingest.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

logger = logging.getLogger(__name__)

SAMPLE_CATALOG = Path(__file__).resolve().parent / "sample_catalog.jsonl"

# Values the Myntra export uses for "unknown"; treated as missing everywhere.
_MISSING = {"", "na", "n/a", "none", "null", "nan"}


def _clean(value: Any) -> str:
    text = "" if value is None else str(value).strip()
    return "" if text.lower() in _MISSING else text


class Product(BaseModel):
    """One sellable product, as every part of shopbot sees it."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    brand: str = ""
    price: float = Field(ge=0)
    discounted_price: float = Field(default=0, ge=0)
    gender: str = ""
    master_category: str = ""
    sub_category: str = ""
    article_type: str = ""
    base_colour: str = ""
    colour1: str = ""
    season: str = ""
    year: str = ""
    usage: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)
    sizes: list[str] = Field(default_factory=list)
    description: str = ""
    image: str = ""

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> str:
        text = _clean(value)
        if not text:
            raise ValueError("product id is missing")
        return text

    @model_validator(mode="before")
    @classmethod
    def _name_or_facets(cls, data: Any) -> Any:
        """A missing name is composed from brand and facets (real catalogs have a few)."""
        if isinstance(data, dict) and not _clean(data.get("name")):
            keys = ("brand", "gender", "base_colour", "article_type")
            parts = [_clean(data.get(k)) for k in keys]
            name = " ".join(p for p in parts if p)
            if not _clean(data.get("article_type")) or not name:
                raise ValueError("product name is missing")
            data = {**data, "name": name}
        return data

    @field_validator(
        "brand", "gender", "master_category", "sub_category", "article_type", "base_colour",
        "colour1", "season", "year", "usage", "description", "image", mode="before",
    )
    @classmethod
    def _text(cls, value: Any) -> str:
        return _clean(value)

    @field_validator("discounted_price", mode="before")
    @classmethod
    def _no_discount_is_zero(cls, value: Any) -> float:
        return 0 if value in (None, "") else value

    @field_validator("attributes", mode="before")
    @classmethod
    def _attributes(cls, value: Any) -> dict[str, str]:
        if not value:
            return {}
        if not isinstance(value, dict):
            raise ValueError("attributes must be a mapping")
        return {str(k).strip(): _clean(v) for k, v in value.items() if _clean(v)}

    @field_validator("sizes", mode="before")
    @classmethod
    def _sizes(cls, value: Any) -> list[str]:
        if not value:
            return []
        if isinstance(value, str):
            value = value.split("|")
        return [_clean(s) for s in value if _clean(s)]

    @property
    def final_price(self) -> float:
        """What the shopper pays: the discounted price when there is a real discount."""
        if 0 < self.discounted_price < self.price:
            return self.discounted_price
        return self.price

    @property
    def discount_percent(self) -> int:
        if self.final_price < self.price and self.price > 0:
            return round(100 * (self.price - self.final_price) / self.price)
        return 0

    def embedding_text(self) -> str:
        """Short text for the dense model: name and key facets (long text costs ~4x encode time)."""
        parts = [self.name, self.gender, self.article_type, self.base_colour, self.usage]
        return " ".join(p for p in parts if p)

    def search_text(self) -> str:
        """Everything worth matching a word against, for lexical search and Chroma documents."""
        parts = [self.name, self.brand, self.gender, self.article_type, self.base_colour]
        if self.colour1:
            parts.append(self.colour1)
        parts += [self.usage, self.season, self.sub_category]
        parts += [f"{k} {v}" for k, v in self.attributes.items()]
        return " ".join(p for p in parts if p)

    def content_hash(self) -> str:
        """Fingerprint of the whole record; unchanged products skip re-embedding."""
        raw = json.dumps(self.model_dump(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha1(raw.encode("utf-8")).hexdigest()


@dataclass
class LoadReport:
    """What a load saw: how many products were read and which rows were skipped."""

    loaded: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def skip(self, where: str, why: str) -> None:
        self.skipped += 1
        if len(self.errors) < 20:
            self.errors.append(f"{where}: {why}")
        logger.warning("skipping catalog record %s: %s", where, why)


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8", newline="")


def _validation_message(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "record"
    return f"{where}: {first.get('msg', 'invalid')}"


def iter_jsonl(path: Path, report: LoadReport | None = None) -> Iterator[Product]:
    """Products from a Myntra-format JSON Lines file (optionally gzipped)."""
    report = report if report is not None else LoadReport()
    with _open_text(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("line is not a JSON object")
                product = Product.model_validate(record)
            except ValidationError as error:
                report.skip(f"{path.name}:{line_no}", _validation_message(error))
                continue
            except ValueError as error:
                report.skip(f"{path.name}:{line_no}", str(error))
                continue
            report.loaded += 1
            yield product


def _parse_csv_attributes(cell: str) -> dict[str, str]:
    """``Fabric=Cotton; Fit=Slim Fit`` -> ``{"Fabric": "Cotton", "Fit": "Slim Fit"}``."""
    pairs = (part.split("=", 1) for part in cell.split(";") if "=" in part)
    return {k.strip(): v.strip() for k, v in pairs if k.strip() and v.strip()}


def iter_csv(path: Path, report: LoadReport | None = None) -> Iterator[Product]:
    """Products from a CSV with a header row using the JSONL field names.

    Only ``id``, ``name`` and ``price`` are required. ``sizes`` is ``S|M|L`` and
    ``attributes`` is ``Key=Value; Key=Value`` so the file stays spreadsheet-friendly.
    """
    report = report if report is not None else LoadReport()
    with _open_text(path) as handle:
        reader = csv.DictReader(handle)
        missing = {"id", "name", "price"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path.name}: CSV header lacks required columns {sorted(missing)}")
        for row_no, row in enumerate(reader, start=2):
            record: dict[str, Any] = {k.strip(): v for k, v in row.items() if k}
            record["attributes"] = _parse_csv_attributes(record.get("attributes") or "")
            try:
                product = Product.model_validate(record)
            except ValidationError as error:
                report.skip(f"{path.name}:{row_no}", _validation_message(error))
                continue
            report.loaded += 1
            yield product


def iter_catalog(path: Path | None = None, report: LoadReport | None = None) -> Iterator[Product]:
    """Products from any supported catalog file; the bundled sample when no path is given."""
    path = Path(path) if path else SAMPLE_CATALOG
    if not path.is_file():
        raise FileNotFoundError(f"catalog file not found: {path}")
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return iter_jsonl(path, report)
    if name.endswith(".csv"):
        return iter_csv(path, report)
    raise ValueError(f"unsupported catalog format: {path.name} (use .jsonl, .jsonl.gz or .csv)")


def load_catalog(path: Path | None = None) -> tuple[list[Product], LoadReport]:
    """The whole catalog in memory, with duplicates resolved (the last record of an id wins)."""
    report = LoadReport()
    by_id: dict[str, Product] = {}
    for product in iter_catalog(path, report):
        by_id[product.id] = product
    return list(by_id.values()), report
