"""Query understanding against the sample catalog's own vocabulary."""

from __future__ import annotations

import pytest

from retrieval.catalog import load_catalog
from retrieval.query import parse_query
from retrieval.vocab import CatalogVocabulary


@pytest.fixture(scope="module")
def vocab() -> CatalogVocabulary:
    products, _ = load_catalog(None)
    return CatalogVocabulary.from_products(products)


def test_colour_and_article_type(vocab: CatalogVocabulary) -> None:
    c = parse_query("show me red dresses", vocab)
    assert c.colours == ["Red"] and c.article_types == ["Dresses"]
    assert c.text == ""


def test_heels_under_price_for_party(vocab: CatalogVocabulary) -> None:
    c = parse_query("black heels under 1500 for a party", vocab)
    assert c.article_types == ["Heels"] and c.colours == ["Black"]
    assert c.max_price == 1500 and c.min_price is None
    assert "Party" in c.usages


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("shoes under 2k", None, 2000),
        ("tshirts below rs 1500", None, 1500),
        ("jeans between 500 and 1000", 500, 1000),
        ("watches above 3000", 3000, None),
        ("bags from ₹1,000 to ₹2,500", 1000, 2500),
        ("kurtas 800-1200", 800, 1200),
        ("heels less than 999/-", None, 999),
        ("dress around 2000", 1600, 2400),
        ("shoes under -5", None, None),
        ("shoes under abc", None, None),
    ],
)
def test_price_phrases(vocab: CatalogVocabulary, text: str, low: float | None,
                       high: float | None) -> None:
    c = parse_query(text, vocab)
    assert (c.min_price, c.max_price) == (low, high)


def test_synonyms_and_plurals(vocab: CatalogVocabulary) -> None:
    assert set(parse_query("white sneakers", vocab).article_types) == {
        "Casual Shoes", "Sports Shoes"}
    assert parse_query("a tee", vocab).article_types == ["Tshirts"]
    assert parse_query("shades", vocab).article_types == ["Sunglasses"]
    assert parse_query("a dress", vocab).article_types == ["Dresses"]
    assert parse_query("navy jeans", vocab).colours == ["Navy Blue"]
    assert "Navy Blue" in parse_query("blue shirt", vocab).colours


def test_gender_words(vocab: CatalogVocabulary) -> None:
    assert parse_query("watch for my husband", vocab).genders == ["Men", "Unisex"]
    assert parse_query("kurtas for women", vocab).genders == ["Women", "Unisex"]
    assert set(parse_query("kids shoes", vocab).genders) == {"Boys", "Girls"}


def test_brands_beat_colours_and_ambiguous_brands_need_a_hint(vocab: CatalogVocabulary) -> None:
    c = parse_query("red tape shoes", vocab)
    assert c.brands == ["Red Tape"] and c.colours == []
    assert parse_query("only dresses", vocab).brands == []
    hinted = parse_query("only dresses", vocab, [{"entity": "brand", "value": "Only"}])
    assert hinted.brands == ["Only"]


def test_cheap_is_a_preference_not_a_filter(vocab: CatalogVocabulary) -> None:
    c = parse_query("cheap tshirts", vocab)
    assert c.prefer_cheap and c.max_price is None


@pytest.mark.parametrize("text", ["", "   ", "😀😀😀", "x" * 10_000, "'; DROP TABLE products; --",
                                  "红色连衣裙", "\x00\x01"])
def test_odd_input_never_raises(vocab: CatalogVocabulary, text: str) -> None:
    c = parse_query(text, vocab)
    assert c.article_types == [] and c.max_price is None


@pytest.mark.parametrize(
    ("text", "article_types", "colours"),
    [
        ("snekers", {"Casual Shoes", "Sports Shoes"}, set()),
        ("tshrit", {"Tshirts"}, set()),
        ("jeens", {"Jeans"}, set()),
        ("blak heels", {"Heels"}, {"Black"}),
    ],
)
def test_typos_in_product_words(vocab: CatalogVocabulary, text: str, article_types: set[str],
                                colours: set[str]) -> None:
    c = parse_query(text, vocab)
    assert set(c.article_types) == article_types
    assert set(c.colours) == colours


def test_typo_pass_leaves_ordinary_words_alone(vocab: CatalogVocabulary) -> None:
    c = parse_query("something nice please", vocab)
    assert not (c.article_types or c.colours or c.brands)
