"""What the shopper rules out ("but not white", "no leather", "not Nike") and how a message
moves the active search (refine it, start a new one, or leave it to the dialogue)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from retrieval.catalog import Product, load_catalog
from retrieval.lexical import FacetTable, LexicalIndex, is_excluded, product_words, word_forms
from retrieval.query import SearchConstraints, parse_query, ranking_text
from retrieval.refine import follow_up_kind, new_search_constraints, refine_constraints
from retrieval.search import ProductSearch, SearchResult, build_where, without_excluded
from retrieval.store import CatalogVersion, ProductStore
from retrieval.vocab import CatalogVocabulary
from tests.conftest import REAL_CATALOG, needs_shared_data

HEELS = "black heels under 1500 for a party"
WHITE = {"White", "Off White", "Cream"}


@pytest.fixture(scope="module")
def products() -> list[Product]:
    return load_catalog(None)[0]


@pytest.fixture(scope="module")
def vocab(products: list[Product]) -> CatalogVocabulary:
    return CatalogVocabulary.from_products(products)


# -- parsing ----------------------------------------------------------------------------------


def test_the_issue_query_excludes_white_instead_of_wanting_it(vocab: CatalogVocabulary) -> None:
    c = parse_query("formal shirts for men but not white", vocab)
    assert c.article_types == ["Shirts"] and c.genders == ["Men", "Unisex"]
    assert c.usages == ["Formal"]
    assert c.colours == [] and "White" in c.excluded_colours
    assert c.text == ""
    assert c.describe() == "formal shirts for men, not white"
    assert "white" not in ranking_text("formal shirts for men but not white", c)


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("shoes, not nike", "excluded_brands", ["Nike"]),
        ("anything but black", "excluded_colours", ["Black"]),
        ("no leather", "excluded_words", ["leather"]),
        ("don't want leather", "excluded_words", ["leather"]),
        ("I do not want white", "excluded_colours", sorted(WHITE)),
        ("not white or black", "excluded_colours", sorted(WHITE | {"Black"})),
        ("no red, no pink", "excluded_colours", ["Pink", "Red"]),
        ("dresses except blue and pink", "excluded_colours", ["Blue", "Navy Blue", "Pink"]),
        ("except adidas", "excluded_brands", ["Adidas"]),
        ("other than red tape", "excluded_brands", ["Red Tape"]),
        ("apart from nike", "excluded_brands", ["Nike"]),
        ("not adiddas", "excluded_brands", ["Adidas"]),
        ("avoid printed", "excluded_words", ["printed"]),
        ("non-leather bags", "excluded_words", ["leather"]),
        ("tshirts but no sleeveless", "excluded_words", ["sleeveless"]),
        ("not in black", "excluded_colours", ["Black"]),
        ("nothing in red", "excluded_colours", ["Red"]),
        ("any colour but black", "excluded_colours", ["Black"]),
        ("no shirts", "excluded_article_types", ["Shirts"]),
    ],
)
def test_negation_cues(vocab: CatalogVocabulary, text: str, field: str,
                       expected: list[str]) -> None:
    c = parse_query(text, vocab)
    assert sorted(getattr(c, field)) == sorted(expected)
    excluded = set(getattr(c, field))
    assert not excluded & {*c.colours, *c.brands, *c.article_types}, "excluded, never wanted"


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [("shoes no more than 2000", None, 2000), ("not more than 1500", None, 1500),
     ("nothing above 2000", None, 2000), ("jeans not under 500", 500, None),
     ("no less than 800", 800, None), ("I don't want to pay more than 2000", None, 2000),
     ("not willing to spend over 1500", None, 1500), ("more than 500", 500, None)],
)
def test_negated_price_phrases_are_prices_not_exclusions(
    vocab: CatalogVocabulary, text: str, low: float | None, high: float | None
) -> None:
    c = parse_query(text, vocab)
    assert (c.min_price, c.max_price) == (low, high)
    assert not c.has_exclusions()


@pytest.mark.parametrize(
    "text", ["no", "no thanks", "not too expensive", "not sure", "no, the black ones",
             "not now", "no problem", "no more", "not for now"],
)
def test_a_no_that_rules_nothing_out(vocab: CatalogVocabulary, text: str) -> None:
    c = parse_query(text, vocab)
    assert not c.has_exclusions()
    assert c.colours == (["Black"] if "black" in text else [])


def test_exclusions_survive_the_slot_round_trip(vocab: CatalogVocabulary) -> None:
    c = parse_query("shoes not nike, no leather", vocab)
    stored = c.to_dict()
    assert stored["excluded_brands"] == ["Nike"] and stored["excluded_words"] == ["leather"]
    back = SearchConstraints.from_dict(stored)
    assert back == c
    assert back.describe() == "shoes, not Nike or leather"
    assert SearchConstraints.from_dict({"excluded_colours": ["Red"]}).describe() == (
        "products, not red")


def test_a_colour_word_is_a_colour_even_when_tagged_a_brand() -> None:
    vocab = CatalogVocabulary(article_types={"Heels": 3}, colours={"Red": 2, "Black": 2},
                              brands={"Red": 1, "Red Rose": 1, "Red Tape": 1})
    brand_red = [{"entity": "brand", "value": "red"}]
    in_red = parse_query("in red", vocab, brand_red)
    assert in_red.colours == ["Red"] and in_red.brands == []
    assert parse_query("in red", vocab, [{"entity": "brand", "value": "Red Rose"}]).brands == []
    assert parse_query("red rose heels", vocab).brands == ["Red Rose"]
    assert parse_query("red tape heels", vocab).colours == []
    assert parse_query("brand red", vocab).brands == ["Red"]
    assert parse_query("not red", vocab, brand_red).excluded_colours == ["Red"]


def test_in_red_after_party_heels_is_the_colour(vocab: CatalogVocabulary) -> None:
    previous = parse_query(HEELS, vocab)
    red = refine_constraints(previous, "in red", vocab,
                             entities=[{"entity": "brand", "value": "red"}])
    assert red.colours == ["Red"] and red.brands == []
    assert red.article_types == ["Heels"] and red.max_price == 1500


# -- refining ---------------------------------------------------------------------------------


def test_refine_rules_out_and_drops_from_what_was_wanted(vocab: CatalogVocabulary) -> None:
    red = parse_query("red dresses", vocab)
    not_red = refine_constraints(red, "not red", vocab)
    assert not_red.colours == [] and not_red.excluded_colours == ["Red"]
    assert not_red.article_types == ["Dresses"]
    assert not_red.describe() == "dresses, not red"
    assert red.colours == ["Red"] and not red.has_exclusions(), "the previous turn is untouched"

    shoes = refine_constraints(parse_query("nike shoes", vocab), "not Nike", vocab)
    assert shoes.brands == [] and shoes.excluded_brands == ["Nike"]
    assert shoes.describe() == "shoes, not Nike"
    bags = refine_constraints(parse_query("bags under 3000", vocab), "no leather", vocab)
    assert bags.excluded_words == ["leather"] and bags.max_price == 3000


def test_refine_asking_again_lifts_the_exclusion(vocab: CatalogVocabulary) -> None:
    heels = refine_constraints(parse_query(HEELS, vocab), "anything but black", vocab)
    assert heels.colours == [] and heels.excluded_colours == ["Black"]
    assert heels.max_price == 1500
    back = refine_constraints(heels, "in black after all", vocab)
    assert back.colours == ["Black"] and back.excluded_colours == []
    assert back.describe() == "black party heels under ₹1,500"
    bags = refine_constraints(parse_query("bags no leather", vocab), "leather is fine", vocab)
    assert bags.excluded_words == [] and not bags.excluded_mentions


def test_refine_exclusions_add_up(vocab: CatalogVocabulary) -> None:
    c = refine_constraints(parse_query("shoes not nike", vocab), "not puma either", vocab)
    assert c.excluded_brands == ["Nike", "Puma"]
    assert c.describe() == "shoes, not Nike or Puma"


def test_any_and_other_colours_and_brands(vocab: CatalogVocabulary) -> None:
    shirts = parse_query("formal shirts not white", vocab)
    assert not refine_constraints(shirts, "any colour is fine", vocab).excluded_colours
    other = refine_constraints(parse_query("nike shoes", vocab), "other brands", vocab)
    assert other.brands == [] and other.excluded_brands == ["Nike"]
    dresses = refine_constraints(parse_query("red dresses", vocab), "any colour but black",
                                 vocab)
    assert dresses.colours == [] and dresses.excluded_colours == ["Black"]


# -- follow-up or not -------------------------------------------------------------------------

PREVIOUS = ["running shoes", "sunglasses", "casio watches", "backpacks", HEELS]

REFINES = [
    "in black", "brown", "something under 2000", "what about something under 1500", "in red",
    "cheaper ones", "for women instead", "not Nike", "any in size 9?", "show me blue ones",
    "do you have it in white",
]


@pytest.mark.parametrize("previous", PREVIOUS)
@pytest.mark.parametrize("text", REFINES)
def test_follow_ups_from_the_issue_refine(vocab: CatalogVocabulary, previous: str,
                                          text: str) -> None:
    assert follow_up_kind(text, vocab, parse_query(previous, vocab)) == "refine"


# (previous search, message, what it does to the search)
FOLLOW_UPS: list[tuple[str | None, str, str]] = [
    # only adds or changes constraints: refine
    ("running shoes", "no leather", "refine"),
    ("running shoes", "anything but black", "refine"),
    ("running shoes", "not white or black", "refine"),
    ("sunglasses", "below 1k", "refine"),
    (HEELS, "for a party", "refine"),
    (HEELS, "more premium please", "refine"),
    ("casio watches", "not casio", "refine"),
    ("backpacks", "other brands", "refine"),
    ("sunglasses", "any colour is fine", "refine"),
    ("running shoes", "running shoes in white", "refine"),
    ("shoes", "running shoes", "refine"),
    ("nike", "shoes", "refine"),
    ("running shoes", "only nike ones", "refine"),
    ("backpacks", "for him", "refine"),
    ("sunglasses", "women", "refine"),
    ("backpacks", "in xl", "refine"),
    ("sunglasses", "I'll go with black", "refine"),
    ("sunglasses", "forget the budget", "refine"),
    ("running shoes", "I don't want to pay more than 2000", "refine"),
    ("running shoes", "tshirts with lace detail", "new_search"),
    ("running shoes", "show me track pants", "new_search"),
    # another kind of product: a new search
    ("running shoes", "show me watches", "new_search"),
    ("running shoes", "now some red dresses", "new_search"),
    ("sunglasses", "backpacks please", "new_search"),
    ("casio watches", "what about sunglasses", "new_search"),
    (HEELS, "show me handbags instead", "new_search"),
    (None, "in black", "new_search"),
    (None, "red dresses", "new_search"),
    (None, "not Nike", "new_search"),
    (None, "something under 2000", "new_search"),
    ("", "black heels", "new_search"),
    # not about finding products: the dialogue's
    ("running shoes", "where is my order", "none"),
    ("running shoes", "hello", "none"),
    ("running shoes", "thanks", "none"),
    ("running shoes", "what is your return policy", "none"),
    ("running shoes", "asdfgh", "none"),
    ("running shoes", "I want to cancel an order", "none"),
    ("running shoes", "tell me about the second one", "none"),
    ("running shoes", "show me more", "none"),
    ("running shoes", "no thanks", "none"),
    ("running shoes", "no", "none"),
    ("running shoes", "ok", "none"),
    ("running shoes", "yes please", "none"),
    ("running shoes", "compare the first two", "none"),
    ("running shoes", "I want to return the black shoes", "none"),
    ("running shoes", "track my nike order", "none"),
    ("running shoes", "is the second one available in black?", "none"),
    ("running shoes", "add the red one to my cart", "none"),
    ("running shoes", "can I pay by card", "none"),
    ("running shoes", "does it work?", "none"),
    ("running shoes", "my wife likes it", "none"),
    ("running shoes", "how much is the black one", "none"),
    ("running shoes", "I wear size 9", "none"),
    ("running shoes", "I like nike", "none"),
    ("running shoes", "recommend something for men", "none"),
    ("running shoes", "who are you", "none"),
    ("running shoes", "not sure", "none"),
    ("running shoes", "what are your store timings?", "none"),
    ("running shoes", "when will my black shoes arrive", "none"),
    ("running shoes", "what goes with this?", "none"),
    ("running shoes", "more details on the black one please", "none"),
    ("running shoes", "something similar in red", "none"),
    (None, "hello", "none"),
    (None, "where is my order", "none"),
    (None, "", "none"),
]


@pytest.mark.parametrize(("previous", "text", "expected"), FOLLOW_UPS)
def test_follow_up_kind(vocab: CatalogVocabulary, previous: str | None, text: str,
                        expected: str) -> None:
    before = None if previous is None else parse_query(previous, vocab)
    assert follow_up_kind(text, vocab, before) == expected


@pytest.fixture(scope="module")
def real_vocab() -> CatalogVocabulary:
    return CatalogVocabulary.from_products(load_catalog(REAL_CATALOG)[0])


@needs_shared_data
def test_follow_up_kind_on_the_real_catalog(real_vocab: CatalogVocabulary) -> None:
    """The same table over 44k products' vocabulary (423 brands, 46 colours, more typos to
    fall into: "store" is no "stole")."""
    cases = FOLLOW_UPS + [(previous, text, "refine") for previous in PREVIOUS
                          for text in REFINES]
    wrong = [(previous, text, expected, got) for previous, text, expected in cases
             if (got := follow_up_kind(text, real_vocab, None if previous is None
                                       else parse_query(previous, real_vocab))) != expected]
    assert wrong == []
    shirts = parse_query("formal shirts for men but not white", real_vocab)
    assert shirts.article_types == ["Shirts"] and shirts.colours == []
    assert "White" in shirts.excluded_colours


def test_a_new_product_keeps_who_it_is_for(vocab: CatalogVocabulary) -> None:
    previous = parse_query("black running shoes for women under 3000 not nike", vocab)
    watches = new_search_constraints(previous, parse_query("show me watches", vocab))
    assert watches.article_types == ["Watches"] and watches.genders == ["Women", "Unisex"]
    assert watches.describe() == "watches for women"
    assert watches.colours == [] and watches.max_price is None and not watches.has_exclusions()
    men = new_search_constraints(previous, parse_query("watches for men", vocab))
    assert men.genders == ["Men", "Unisex"]
    assert new_search_constraints(None, parse_query("watches", vocab)).genders == []


# -- search: exclusions are hard filters, never relaxed ---------------------------------------


def assert_none_excluded(result: SearchResult, constraints: SearchConstraints) -> None:
    assert not [p.name for p in result.products if is_excluded(p, constraints)]


def test_excluded_colour_never_shown(sample_search: ProductSearch) -> None:
    result = sample_search.search("formal shirts for men but not white", k=5)
    assert result.products
    assert not {p.base_colour for p in result.products} & WHITE
    assert all(p.article_type == "Shirts" for p in result.products[:result.exact_matches])


@pytest.mark.parametrize("page", [0, 1, 2])
def test_excluded_brand_never_shown_on_any_page(sample_search: ProductSearch,
                                                page: int) -> None:
    result = sample_search.search("shoes not nike", k=5, offset=5 * page)
    assert len(result.products) == 5, "the page still fills up"
    assert "Nike" not in {p.brand for p in result.products}


def test_excluded_word_never_shown(sample_search: ProductSearch,
                                   products: list[Product]) -> None:
    assert [p for p in products if p.article_type == "Dresses" and "printed" in p.name.lower()]
    for page in (0, 1):
        result = sample_search.search("dresses, nothing printed", k=5, offset=5 * page)
        assert len(result.products) == 5
        assert_none_excluded(result, result.constraints)
        assert not any("print" in product_words(p) for p in result.products)


def test_exclusions_survive_relaxing(sample_search: ProductSearch,
                                     vocab: CatalogVocabulary) -> None:
    impossible = sample_search.search("dresses not red, no floral under 10", k=10)
    assert "price" in impossible.relaxed and impossible.products
    assert_none_excluded(impossible, impossible.constraints)
    assert "Red" not in {p.base_colour for p in impossible.products}

    mustard = sample_search.search("mustard shoes not nike", k=10)  # no mustard shoes at all
    assert "colour" in mustard.relaxed and mustard.products
    assert "Nike" not in {p.brand for p in mustard.products}

    # Few exact matches: the page is filled with the closest, still without what was refused.
    few = sample_search.search("red heels not catwalk", k=10)
    assert few.exact_matches is not None and few.exact_matches < 10 and few.relaxed
    assert "Catwalk" not in {p.brand for p in few.products}

    # Nothing but what was refused: nothing at all, rather than the refused.
    refused = replace(parse_query("shirts", vocab), excluded_article_types=["Shirts"])
    nothing = sample_search.search("shirts", k=5, constraints=refused)
    assert nothing.products == []


def test_refined_search_respects_exclusions(sample_search: ProductSearch,
                                            vocab: CatalogVocabulary) -> None:
    heels = parse_query(HEELS, vocab)
    refined = refine_constraints(heels, "anything but black", vocab)
    result = sample_search.search(HEELS, k=5, constraints=refined)
    assert result.products and "Black" not in {p.base_colour for p in result.products}
    assert result.constraints.describe().endswith(", not black")


def test_chroma_where_rules_out(vocab: CatalogVocabulary) -> None:
    c = parse_query("shoes not nike or puma, not white", vocab)
    where = build_where(c)
    assert where is not None
    clauses = where["$and"]
    assert {"brand": {"$nin": ["Nike", "Puma"]}} in clauses
    assert {"base_colour": {"$nin": ["White", "Off White", "Cream"]}} in clauses


class _ChromaOnly(ProductStore):
    """The sample store as one ingested before the local index existed: Chroma only."""

    def current(self) -> CatalogVersion:
        return _over(super().current(), None)


def _over(version: CatalogVersion, lexical: LexicalIndex | None) -> CatalogVersion:
    """The same catalog version served with other local indexes."""
    return CatalogVersion(version.number, version.collection, version.index_dir,
                          build_missing=False, indexes=(version.vocab, lexical))


def test_chroma_only_store_still_excludes(sample_store_dir: Path) -> None:
    search = ProductSearch(_ChromaOnly(sample_store_dir))
    for page in (0, 1):
        result = search.search("dresses without floral, not red", k=5, offset=5 * page)
        assert len(result.products) == 5
        assert_none_excluded(result, result.constraints)
        assert "Red" not in {p.base_colour for p in result.products}


def test_index_without_words_still_excludes(sample_store_dir: Path) -> None:
    store = ProductStore(sample_store_dir)
    lexical = store.lexical
    assert lexical is not None and lexical.facets.has_words
    old = replace(lexical.facets, word_list=np.array([], dtype=object),
                  word_starts=np.zeros(0, dtype=np.int64), word_rows=np.zeros(0, np.int32))
    version = _over(store.current(), LexicalIndex(lexical.retriever, old, lexical.vectors))
    store.current = lambda: version  # type: ignore[method-assign]
    assert not old.has_words
    result = ProductSearch(store).search("dresses, no floral", k=5)
    assert len(result.products) == 5
    assert_none_excluded(result, result.constraints)


def test_without_excluded_asks_for_more_until_the_page_is_full(
        products: list[Product]) -> None:
    c = SearchConstraints(excluded_colours=["Black"])
    black_first = sorted(products, key=lambda p: p.base_colour != "Black")
    asked: list[int] = []

    def fetch(size: int) -> list[tuple[Product, float]]:
        asked.append(size)
        return [(p, 1.0) for p in black_first[:size]]

    kept = without_excluded(fetch, 10, c)
    assert len(kept) == 10 and all(p.base_colour != "Black" for p, _ in kept)
    assert asked[0] == 10 and len(asked) >= 2
    assert len(without_excluded(fetch, 10_000, c)) == sum(
        p.base_colour != "Black" for p in products)


# -- the word index ---------------------------------------------------------------------------


def test_words_match_whole_words_in_name_attributes_and_description(
        products: list[Product]) -> None:
    assert word_forms("Printed") == {"printed", "print", "printe"}
    assert word_forms("sleeves") == {"sleeve"}
    dress = next(p for p in products if p.id == "900001")  # "... Floral Print ... Dress"
    assert is_excluded(dress, SearchConstraints(excluded_words=["printed"]))
    assert is_excluded(dress, SearchConstraints(excluded_words=["FLORAL"]))
    assert not is_excluded(dress, SearchConstraints(excluded_words=["flor"]))


def test_styling_tips_do_not_count() -> None:
    chinos = Product(id="1", name="Slim Chinos", price=999, article_type="Trousers",
                     description="Cotton twill chinos. Pair them with leather loafers.")
    assert "leather" not in product_words(chinos) and "cotton" in product_words(chinos)


def test_non_compounds_are_kinds_of_products_not_refusals() -> None:
    vocab = CatalogVocabulary(article_types={"Bra": 2},
                              attribute_words={"padded": 2, "non padded": 2, "leather": 2})
    assert not parse_query("non-padded bra", vocab).has_exclusions()
    assert parse_query("non leather bra", vocab).excluded_words == ["leather"]
    bra = Product(id="1", name="Non-Padded Bra", price=499, article_type="Bra",
                  attributes={"Padding": "Non-Padded"})
    assert not is_excluded(bra, parse_query("no padded bras", vocab))
    assert CatalogVocabulary.from_products([bra, bra]).attribute_words == {
        "non": 2, "padded": 2, "non padded": 2}


def test_facet_mask_rules_out_and_saves(tmp_path: Path, products: list[Product]) -> None:
    facets = FacetTable.from_products(products)
    everything = facets.mask(SearchConstraints())
    no_leather = facets.mask(SearchConstraints(excluded_words=["leather"]))
    assert 0 < no_leather.sum() < everything.sum()
    expected = [not is_excluded(p, SearchConstraints(excluded_words=["leather"]))
                for p in products]
    assert no_leather.tolist() == expected
    facets.save(tmp_path / "facets.npz")
    loaded = FacetTable.load(tmp_path / "facets.npz")
    assert loaded.mask(SearchConstraints(excluded_words=["leather"])).tolist() == expected
    np.savez_compressed(tmp_path / "old.npz", **{  # a table saved before the word index
        k: np.load(tmp_path / "facets.npz")[k] for k in
        ("ids", "article_type", "colour", "gender", "brand", "usage", "price")})
    assert not FacetTable.load(tmp_path / "old.npz").has_words


def test_nlu_entities_do_not_turn_exclusions_into_wishes(vocab: CatalogVocabulary) -> None:
    c = parse_query("shoes but not nike", vocab, [{"entity": "brand", "value": "nike"}])
    assert c.brands == [] and c.excluded_brands == ["Nike"]
