"""Photos: bad uploads are refused clearly, framing is stable, the real encoder and a head
trained on real catalog photos classify, and the product search finds look-alikes under the
shopper's terms, relaxed exactly as a text search is (no mocks)."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from retrieval.catalog import Product, load_catalog
from retrieval.images.classifier import Classification, ImageClassifier, predicted_types
from retrieval.images.encoder import DIMENSIONS, Encoded, ImageEncoder
from retrieval.images.features import split_photos
from retrieval.images.head import MLP, ImageHead
from retrieval.images.index import PHOTO_VECTORS_FILE, catalog_photos, index_catalog_images
from retrieval.images.preprocess import COLOUR_FEATURES, frame
from retrieval.ingest import ingest_products
from retrieval.query import SearchConstraints
from retrieval.search import PhotoQuery, ProductSearch
from retrieval.store import ProductStore
from shopcore.images import ImageRejected, load_image
from tests.conftest import PROJECT_ROOT, REAL_CATALOG, REAL_IMAGES, needs_shared_data

SHOPBOT = Path(sys.executable).parent / "shopbot"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The photo commands as a real subprocess, the way evaluations run them."""
    return subprocess.run([str(SHOPBOT), *args],
                          capture_output=True, text=True, timeout=600, cwd=PROJECT_ROOT)


def jpeg_bytes(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def noise(size: tuple[int, int] = (64, 64), seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    return Image.fromarray(pixels, "RGB")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


# -- bad uploads -----------------------------------------------------------------------------------


def rejected_reason(source: Path | bytes) -> str:
    with pytest.raises(ImageRejected) as caught:
        load_image(source)
    assert caught.value.message and "Traceback" not in caught.value.message
    return caught.value.reason


def test_every_bad_upload_gets_its_own_clear_refusal(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo\n" * 20)
    truncated = tmp_path / "cut.jpg"
    whole = jpeg_bytes(noise((256, 256)), quality=95)
    truncated.write_bytes(whole[: len(whole) // 2])
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(10_000, 10_000))  # 100 megapixels claimed
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as handle:
        handle.truncate(30 * 1024 * 1024)  # a 30 MB file (sparse: nothing is really written)
    animated = tmp_path / "moving.gif"
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "green", "blue")]
    frames[0].save(animated, save_all=True, append_images=frames[1:], duration=80, loop=0)

    assert rejected_reason(empty) == "empty"
    assert rejected_reason(b"") == "empty"
    assert rejected_reason(text) == "not_an_image"
    assert rejected_reason(truncated) == "corrupt"
    assert rejected_reason(bomb) == "too_many_pixels"
    assert rejected_reason(bomb.read_bytes()) == "too_many_pixels"
    assert rejected_reason(huge) == "too_large"
    assert rejected_reason(animated) == "animated"
    assert rejected_reason(tmp_path / "missing.jpg") == "not_found"
    assert rejected_reason(tmp_path) == "not_a_file"
    with pytest.raises(ImageRejected):
        load_image(whole, max_bytes=len(whole) - 1)
    with pytest.raises(ImageRejected):
        load_image(jpeg_bytes(noise((400, 300))), max_pixels=100_000)
    # Nothing was written beside the uploads.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["empty.jpg", "notes.jpg", "cut.jpg", "bomb.png", "huge.jpg", "moving.gif"])


def test_still_gif_cmyk_rgba_grayscale_and_16_bit_become_rgb(tmp_path: Path) -> None:
    still = tmp_path / "still.gif"
    Image.new("P", (32, 32), 3).save(still)
    cmyk = jpeg_bytes(Image.new("CMYK", (32, 32), (0, 255, 255, 0)))  # pure red in ink
    rgba = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (8, 8, 24, 24))
    rgba_png = io.BytesIO()
    rgba.save(rgba_png, "PNG")
    deep = io.BytesIO()
    Image.fromarray(np.full((32, 32), 40_000, np.uint16)).save(deep, "PNG")
    grey = io.BytesIO()
    Image.new("L", (32, 32), 128).save(grey, "PNG")

    assert load_image(still).mode == "RGB"
    red = load_image(cmyk).getpixel((16, 16))
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    flattened = load_image(rgba_png.getvalue())
    assert flattened.getpixel((0, 0)) == (255, 255, 255)  # transparent -> white backdrop
    assert flattened.getpixel((16, 16)) == (255, 0, 0)
    assert load_image(deep.getvalue()).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(grey.getvalue()).getpixel((5, 5)) == (128, 128, 128)


def test_exif_orientation_is_applied() -> None:
    picture = Image.new("RGB", (40, 20), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    loaded = load_image(jpeg_bytes(picture, exif=exif.tobytes()))
    assert loaded.size == (20, 40)


def test_large_jpegs_decode_reduced_but_never_below_the_encoder_size() -> None:
    big = jpeg_bytes(noise((3000, 2000)), quality=80)
    loaded = load_image(big)
    assert 512 <= min(loaded.size) < 2000
    assert load_image(big, decode_side=None).size == (3000, 2000)


# -- framing and the encoder ---------------------------------------------------------------------


def product_shot() -> Image.Image:
    shot = Image.new("RGB", (224, 224), (255, 255, 255))
    shot.paste((30, 60, 200), (60, 40, 164, 190))
    shot.paste((230, 200, 40), (90, 80, 134, 120))
    return shot


def test_zoomed_out_and_off_centre_shots_frame_like_the_tight_one() -> None:
    tight = frame(product_shot())
    canvas = Image.new("RGB", (700, 560), (210, 210, 210))
    canvas.paste(product_shot().resize((300, 300)), (40, 230))  # off-centre on grey
    reframed = frame(canvas)
    assert tight.size == reframed.size == (224, 224)
    difference = np.abs(np.asarray(tight, np.int16) - np.asarray(reframed, np.int16)).mean()
    assert difference < 12
    plain = frame(noise((300, 200)))  # nothing to trim: kept whole, padded to a square
    assert plain.size == (224, 224)


def test_encoder_gives_unit_vectors_and_batches_agree_with_singles() -> None:
    encoder = ImageEncoder.get()
    pictures = [product_shot(), noise((180, 240), seed=1), noise((300, 300), seed=2)]
    batch = encoder.encode(pictures)
    assert batch.shape == (3, DIMENSIONS)
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-4)
    single = encoder.encode(pictures[1])
    assert np.allclose(single[0], batch[1], atol=1e-3)
    assert float(batch[0] @ batch[1]) < 0.95  # different pictures, different vectors


def random_mlp(rng: np.random.Generator, inputs: int, outputs: int) -> MLP:
    return MLP(np.zeros(inputs, np.float32), np.ones(inputs, np.float32),
               rng.normal(size=(16, inputs)).astype(np.float32), np.zeros(16, np.float32),
               rng.normal(size=(outputs, 16)).astype(np.float32), np.zeros(outputs, np.float32))


def test_a_photo_and_its_mirror_image_get_the_same_answer() -> None:
    """The mirror view is encoded in the same batch, and the head averages both answers."""
    encoder = ImageEncoder.get()
    picture = frame(product_shot())
    both = encoder.encode_framed([picture], mirror=True)
    plain = encoder.encode_framed([picture])
    alone = encoder.encode_framed([ImageOps.mirror(picture)])
    assert both.mirror_features is not None and plain.mirror_features is None
    assert np.allclose(both.mirror_features[0], alone.features[0], atol=1e-3)
    assert np.allclose(both.features, plain.features, atol=1e-3)

    rng = np.random.default_rng(0)
    head = ImageHead(random_mlp(rng, DIMENSIONS, 3),
                     random_mlp(rng, DIMENSIONS + COLOUR_FEATURES, 2),
                     ["Tshirts", "Tops", "Shirts"], ["Black", "White"])
    seen, flipped = rng.normal(size=(4, DIMENSIONS)), rng.normal(size=(4, DIMENSIONS))
    colour, logits = rng.random((4, COLOUR_FEATURES)), np.zeros((4, 0))
    one_side = head.predict(Encoded(seen, logits, colour))[0]
    other_side = head.predict(Encoded(flipped, logits, colour))[0]
    assert not np.allclose(one_side, other_side, atol=1e-2)
    averaged = head.predict(Encoded(seen, logits, colour, flipped))
    assert np.allclose(averaged[0], (one_side + other_side) / 2)
    mirrored = head.predict(Encoded(flipped, logits, colour, seen))
    assert np.allclose(averaged[0], mirrored[0]) and np.allclose(averaged[1], mirrored[1])


def test_split_is_stratified_deterministic_and_leaves_rare_types_out() -> None:
    ids = [str(i) for i in range(230)]
    labels = ["Tshirts"] * 200 + ["Watches"] * 27 + ["Bracelet"] * 3
    parts = split_photos(ids, labels)
    order = np.random.default_rng(0).permutation(len(ids))
    shuffled = split_photos([ids[i] for i in order], [labels[i] for i in order])
    assert {ids[i]: part for i, part in zip(order, shuffled, strict=True)} == dict(
        zip(ids, parts, strict=True))
    by_label = {label: Counter(p for p, lab in zip(parts, labels, strict=True) if lab == label)
                for label in set(labels)}
    assert by_label["Bracelet"] == {"rare": 3}
    assert by_label["Tshirts"] == {"train": 140, "val": 30, "test": 30}
    assert by_label["Watches"]["test"] == 4 and by_label["Watches"]["val"] == 4


# -- real catalog photos -------------------------------------------------------------------------

TRAIN_TYPES = ("Tshirts", "Watches", "Sunglasses", "Casual Shoes", "Handbags", "Jeans")
PER_TYPE = 45
HELD_OUT = 8


@pytest.fixture(scope="session")
def photo_catalog(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A few hundred real catalog photos of six article types, as a small shop of their own."""
    if not (REAL_CATALOG.is_file() and REAL_IMAGES.is_dir()):
        pytest.skip(f"real catalog photos not found at {REAL_IMAGES}")
    root = tmp_path_factory.mktemp("photo-shop")
    present = {p.stem for p in REAL_IMAGES.glob("*.jpg")}
    products, _ = load_catalog(REAL_CATALOG)
    chosen: dict[str, list[Product]] = {t: [] for t in TRAIN_TYPES}
    for product in sorted(products, key=lambda p: int(p.id)):
        group = chosen.get(product.article_type)
        if group is not None and product.id in present and len(group) < PER_TYPE + HELD_OUT:
            group.append(product)
    train = [p for group in chosen.values() for p in group[:PER_TYPE]]
    held_out = [p for group in chosen.values() for p in group[PER_TYPE:]]
    images = root / "images"
    images.mkdir()
    for product in train:
        (images / f"{product.id}.jpg").symlink_to(REAL_IMAGES / f"{product.id}.jpg")
    catalog = root / "catalog.jsonl"
    catalog.write_text("".join(p.model_dump_json() + "\n" for p in train), encoding="utf-8")
    store = root / "store"
    trained = run_cli("images", "train", "--images", str(images), "--catalog", str(catalog),
                      "--store", str(store), "--views", "2", "--cache", str(root / "cache"))
    assert trained.returncode == 0, trained.stderr
    return {"store": store, "images": images, "train": train, "held_out": held_out,
            "stderr": trained.stderr}


@needs_shared_data
def test_trained_head_classifies_held_out_catalog_photos(photo_catalog: dict) -> None:
    store: Path = photo_catalog["store"]
    assert (store / "image_head.npz").is_file() and "trained" in photo_catalog["stderr"]
    meta = json.loads((store / "image_head.json").read_text())
    assert sorted(meta["article_types"]) == sorted(TRAIN_TYPES)
    held_out: list[Product] = photo_catalog["held_out"]
    paths = [str(REAL_IMAGES / f"{p.id}.jpg") for p in held_out]
    done = run_cli("classify", *paths, "--json", "--store", str(store))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["path"] for row in rows] == paths
    for row in rows:
        assert {"path", "article_type", "colour", "score", "top"} <= set(row)
        assert 0.0 <= row["score"] <= 1.0 and row["top"][0] == [row["article_type"], row["score"]]
        assert row["source"] == "head"
    right = [row["article_type"] == p.article_type for row, p in zip(rows, held_out, strict=True)]
    assert np.mean(right) >= 0.8
    confident = [r for r, row in zip(right, rows, strict=True) if row["confident"]]
    assert confident and np.mean(confident) >= np.mean(right)


@needs_shared_data
def test_classify_reports_bad_files_in_line_and_keeps_going(
    photo_catalog: dict, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a photo")
    good = REAL_IMAGES / f"{photo_catalog['held_out'][0].id}.jpg"
    done = run_cli("classify", str(broken), str(good), "--json",
                   "--store", str(photo_catalog["store"]))
    assert done.returncode == 0, done.stderr
    bad_row, good_row = (json.loads(line) for line in done.stdout.splitlines())
    assert bad_row["reason"] == "not_an_image" and "picture" in bad_row["error"]
    assert good_row["article_type"] in TRAIN_TYPES
    only_bad = run_cli("classify", str(broken), "--json", "--store", str(photo_catalog["store"]))
    assert only_bad.returncode == 1 and json.loads(only_bad.stdout)["reason"] == "not_an_image"


@needs_shared_data
def test_without_a_head_imagenet_is_mapped_onto_article_types(tmp_path: Path) -> None:
    products, _ = load_catalog(REAL_CATALOG)
    sunglasses = [p for p in sorted(products, key=lambda p: int(p.id))
                  if p.article_type == "Sunglasses" and (REAL_IMAGES / f"{p.id}.jpg").is_file()]
    classifier = ImageClassifier.load(tmp_path / "empty-store")
    assert classifier.source == "imagenet"
    results = classifier.classify_many(
        [load_image(REAL_IMAGES / f"{p.id}.jpg") for p in sunglasses[:6]])
    assert sum(r.article_type == "Sunglasses" for r in results) >= 4
    assert all(r.source == "imagenet" and r.colour for r in results)


@pytest.fixture(scope="session")
def photo_search(photo_catalog: dict[str, object]) -> dict[str, object]:
    """The photo shop's products in its store (held-out ones too, but only the trained ones'
    photos indexed), its product search and the trained classifier."""
    store = ProductStore(photo_catalog["store"])
    train: list[Product] = photo_catalog["train"]
    held_out: list[Product] = photo_catalog["held_out"]
    ingest_products(store, train + held_out)
    indexed = (index_catalog_images(store, train, photo_catalog["images"]),
               index_catalog_images(store, train, photo_catalog["images"]))
    return {"store": store, "search": ProductSearch(store), "indexed": indexed,
            "classifier": ImageClassifier.load(store.store_dir),
            "by_id": {p.id: p for p in train + held_out}}


def photo_of(shop: dict, product: Product) -> PhotoQuery:
    image = load_image(REAL_IMAGES / f"{product.id}.jpg")
    return PhotoQuery.from_image(image, shop["classifier"])


def types_of(shop: dict, ids: list[str]) -> set[str]:
    return {shop["by_id"][i].article_type for i in ids}


@needs_shared_data
def test_visual_search_finds_the_same_kind_within_the_shoppers_terms(
    photo_catalog: dict, photo_search: dict
) -> None:
    train: list[Product] = photo_catalog["train"]
    assert photo_search["indexed"] == (len(train), 0)  # incremental: nothing changed
    assert len(catalog_photos(photo_search["store"])) == len(train)
    assert (photo_search["store"].store_dir / PHOTO_VECTORS_FILE).is_file()
    search: ProductSearch = photo_search["search"]
    by_id = photo_search["by_id"]
    for product in photo_catalog["held_out"][::HELD_OUT][:4]:
        photo = photo_of(photo_search, product)
        result = search.search("", k=10, photo=photo)
        # The held-out product is in the store, but without an indexed photo it never shows.
        assert len(result.ids) == 10 and product.id not in result.ids
        assert result.classification is photo.classification and not result.relaxed
        same = np.mean([by_id[i].article_type == product.article_type for i in result.ids])
        assert same >= 0.8, (product.article_type, result.classification)
        assert result.scores == sorted(result.scores, reverse=True)
        black = search.search("in black", k=5, photo=photo)
        assert black.constraints.colours == ["Black"] and black.exact_matches
        assert all(by_id[i].base_colour == "Black" for i in black.ids[:black.exact_matches])
        assert black.relaxed in ([], ["colour"])  # any other colour after them is flagged
        cheap = search.search("cheaper", k=5, photo=photo)
        assert cheap.constraints.prefer_cheap
        prices = [by_id[i].final_price for i in cheap.ids]
        assert len(prices) == 5 and prices == sorted(prices)
    nothing = search.search("", k=5, photo=photo_of(photo_search, train[0]),
                            constraints=SearchConstraints(max_price=1.0))
    assert nothing.ids and "price" in nothing.relaxed


@needs_shared_data
def test_photo_from_image_encodes_once_with_the_classifiers_answer(
    photo_catalog: dict, photo_search: dict
) -> None:
    image = load_image(REAL_IMAGES / f"{photo_catalog['held_out'][0].id}.jpg")
    photo = PhotoQuery.from_image(image, photo_search["classifier"])
    assert photo.vector.shape == (DIMENSIONS,)
    assert np.allclose(photo.vector, ImageEncoder.get().encode(image)[0], atol=1e-3)
    assert photo.classification == photo_search["classifier"].classify(image)


@needs_shared_data
def test_photo_and_text_relax_an_impossible_price_the_same_way(
    photo_catalog: dict, photo_search: dict
) -> None:
    search: ProductSearch = photo_search["search"]
    photo = photo_of(photo_search, photo_catalog["held_out"][0])  # a t-shirt
    guessed = set(predicted_types(photo.classification))
    for constraints in (SearchConstraints(max_price=1.0),
                        SearchConstraints(article_types=["Watches"], max_price=1.0)):
        text = search.search("something like this", constraints=constraints)
        by_photo = search.search("something like this", constraints=constraints, photo=photo)
        assert text.relaxed == by_photo.relaxed == ["price"]
        assert by_photo.exact_matches == 0 and len(by_photo.ids) == 10
        # The type stays: the shopper's when named, else the photo's guess.
        assert types_of(photo_search, by_photo.ids) <= set(constraints.article_types or guessed)


@needs_shared_data
def test_a_shopper_named_article_type_is_never_relaxed(
    photo_catalog: dict, photo_search: dict
) -> None:
    search: ProductSearch = photo_search["search"]
    photo = photo_of(photo_search, photo_catalog["held_out"][0])  # a t-shirt
    jeans = search.search("", k=10, photo=photo, constraints=SearchConstraints(
        article_types=["Jeans"], colours=["Fluorescent Green"]))
    assert jeans.relaxed == ["colour"] and types_of(photo_search, jeans.ids) == {"Jeans"}
    # A type the shop has no photo of: nothing, rather than something else.
    dresses = SearchConstraints(article_types=["Dresses"], max_price=500.0)
    text = search.search("", constraints=dresses)
    by_photo = search.search("", constraints=dresses, photo=photo)
    assert by_photo.ids == [] and text.ids == []
    assert by_photo.relaxed == text.relaxed == ["price"]


@needs_shared_data
def test_the_predicted_type_is_relaxed_last(photo_catalog: dict, photo_search: dict) -> None:
    search: ProductSearch = photo_search["search"]
    by_id: dict[str, Product] = photo_search["by_id"]
    photo = photo_of(photo_search, photo_catalog["held_out"][0])  # a t-shirt
    guessed = set(predicted_types(photo.classification))
    # A brand that sells only another type: the brand goes, the photo's type stays.
    brand_types: dict[str, set[str]] = {}
    for product in by_id.values():
        brand_types.setdefault(product.brand, set()).add(product.article_type)
    brand = sorted(b for b, types in brand_types.items() if not types & guessed)[0]
    result = search.search("", photo=photo, constraints=SearchConstraints(brands=[brand]))
    assert result.relaxed == ["brand"] and types_of(photo_search, result.ids) <= guessed

    # A guess the shop has no photos of goes, after every term of the shopper's.
    dress = Classification("Dresses", "Blue", 0.97, [("Dresses", 0.97)], 0.9, "head", True)
    misread = PhotoQuery(photo.vector, dress)
    assert search.search("", photo=misread).relaxed == ["predicted_type"]
    cheap = search.search("", photo=misread, constraints=SearchConstraints(max_price=1.0))
    assert cheap.relaxed == ["price", "predicted_type"] and len(cheap.ids) == 10
    assert cheap.classification is dress

    # Fewer photos of the guessed type than asked for: those first, then the closest others.
    tshirts = Classification("Tshirts", "Black", 0.97, [("Tshirts", 0.97)], 0.9, "head", True)
    many = search.search("", k=PER_TYPE + 5, photo=PhotoQuery(photo.vector, tshirts))
    assert many.exact_matches == PER_TYPE and many.relaxed == ["predicted_type"]
    assert types_of(photo_search, many.ids[:PER_TYPE]) == {"Tshirts"}
    assert len(many.ids) == PER_TYPE + 5 and "Tshirts" not in types_of(
        photo_search, many.ids[PER_TYPE:])
