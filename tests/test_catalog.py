"""Catalog loaders: the bundled sample, Myntra JSONL (plain and gzipped), CSV, bad rows."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from retrieval.catalog import SAMPLE_CATALOG, Product, load_catalog
from tests.conftest import REAL_CATALOG, needs_shared_data

RECORD = {
    "id": 1, "name": "Roadster Men Black Tshirt", "brand": "Roadster", "price": 999,
    "discounted_price": 499, "gender": "Men", "article_type": "Tshirts", "base_colour": "Black",
    "colour1": "NA", "attributes": {"Fabric": "Cotton", "Fit": ""}, "sizes": ["S", "M"],
}


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def test_sample_catalog_is_realistic_and_complete() -> None:
    products, report = load_catalog(None)
    assert report.skipped == 0
    assert 150 <= len(products) <= 300
    ids = [p.id for p in products]
    assert len(ids) == len(set(ids))
    masters = {p.master_category for p in products}
    assert {"Apparel", "Footwear", "Accessories"} <= masters
    red_dresses = [p for p in products if p.article_type == "Dresses" and p.base_colour == "Red"]
    assert len(red_dresses) >= 5
    assert SAMPLE_CATALOG.is_file()


def test_jsonl_fields_are_normalised(tmp_path: Path) -> None:
    products, _ = load_catalog(write_jsonl(tmp_path / "c.jsonl", [RECORD]))
    (product,) = products
    assert product.id == "1"
    assert product.colour1 == ""  # "NA" means missing
    assert product.attributes == {"Fabric": "Cotton"}
    assert product.final_price == 499 and product.discount_percent == 50


def test_gzipped_jsonl_loads(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps(RECORD) + "\n")
    products, _ = load_catalog(path)
    assert [p.id for p in products] == ["1"]


def test_bad_rows_are_skipped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(
        json.dumps(RECORD) + "\n"
        "{not json\n"
        + json.dumps({"id": 2, "price": 10}) + "\n"            # no name, nothing to make one
        + json.dumps({**RECORD, "id": 3, "price": -4}) + "\n"   # negative price
        + "[1, 2]\n\n"
        + json.dumps({**RECORD, "id": 4}) + "\n",
        encoding="utf-8",
    )
    products, report = load_catalog(path)
    assert [p.id for p in products] == ["1", "4"]
    assert report.skipped == 4
    assert any("name" in e for e in report.errors)


def test_missing_name_is_composed_from_facets(tmp_path: Path) -> None:
    record = {**RECORD, "name": "NA", "brand": "Issey Miyake", "gender": "Women",
              "base_colour": "NA", "article_type": "Perfume and Body Mist"}
    products, report = load_catalog(write_jsonl(tmp_path / "c.jsonl", [record]))
    assert products[0].name == "Issey Miyake Women Perfume and Body Mist"
    assert report.skipped == 0


def test_duplicate_ids_keep_the_last_record(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [RECORD, {**RECORD, "name": "Renamed Tshirt"}])
    products, _ = load_catalog(path)
    assert [p.name for p in products] == ["Renamed Tshirt"]


def test_csv_catalog(tmp_path: Path) -> None:
    path = tmp_path / "shop.csv"
    path.write_text(
        "id,name,brand,price,discounted_price,gender,article_type,base_colour,sizes,attributes\n"
        "A1,Blue Denim Jacket,Levis,3999,2999,Men,Jackets,Blue,S|M|L,Fabric=Denim; Fit=Regular\n"
        "A2,Green Jacket,Levis,abc,,Men,Jackets,Green,,\n"
        "A3,Red Scarf,,499,,Women,Scarves,Red,,\n",
        encoding="utf-8",
    )
    products, report = load_catalog(path)
    assert [p.id for p in products] == ["A1", "A3"]
    assert products[0].sizes == ["S", "M", "L"]
    assert products[0].attributes == {"Fabric": "Denim", "Fit": "Regular"}
    assert products[1].discounted_price == 0 and products[1].final_price == 499
    assert report.skipped == 1


def test_csv_without_required_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("sku,title\n1,x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="required columns"):
        load_catalog(path)


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "c.xml").write_text("<x/>")
    with pytest.raises(ValueError, match="unsupported"):
        load_catalog(tmp_path / "c.xml")
    with pytest.raises(FileNotFoundError):
        load_catalog(tmp_path / "missing.jsonl")


def test_content_hash_changes_with_content() -> None:
    a = Product.model_validate(RECORD)
    b = Product.model_validate({**RECORD, "price": 1099})
    assert a.content_hash() == Product.model_validate(RECORD).content_hash()
    assert a.content_hash() != b.content_hash()


@needs_shared_data
def test_real_catalog_loads_every_product() -> None:
    products, report = load_catalog(REAL_CATALOG)
    assert len(products) == 44441
    assert report.skipped == 0
    assert len({p.article_type for p in products}) > 100
