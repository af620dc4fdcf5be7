"""Photos: bad uploads are refused clearly, framing is stable, the real encoder and a head
trained on real catalog photos classify and find look-alikes (no mocks)."""

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
from retrieval.images import (
    COLOUR_FEATURES,
    DIMENSIONS,
    MLP,
    Encoded,
    ImageClassifier,
    ImageEncoder,
    ImageHead,
    ImageRejected,
    find_similar,
    frame,
    index_catalog_images,
    load_image,
    split_photos,
)
from retrieval.store import ProductStore
from tests.conftest import PROJECT_ROOT, REAL_CATALOG, REAL_IMAGES, needs_shared_data


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The photo commands as a real subprocess (``shopbot.cli_images`` runs on its own too)."""
    return subprocess.run([sys.executable, "-m", "shopbot.cli_images", *args],
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


@needs_shared_data
def test_visual_search_finds_the_same_kind_within_the_shoppers_terms(photo_catalog: dict) -> None:
    store = ProductStore(photo_catalog["store"])
    train: list[Product] = photo_catalog["train"]
    images: Path = photo_catalog["images"]
    assert index_catalog_images(store, train, images) == len(train)
    assert index_catalog_images(store, train, images) == 0  # incremental: nothing changed
    by_id = {p.id: p for p in train}
    for product in photo_catalog["held_out"][::HELD_OUT][:4]:
        photo = REAL_IMAGES / f"{product.id}.jpg"
        result = find_similar(store, photo, k=10)
        assert len(result.ids) == 10 and product.id not in result.ids
        same = np.mean([by_id[i].article_type == product.article_type for i in result.ids])
        assert same >= 0.8, (product.article_type, result.classification)
        black = find_similar(store, photo, k=5, constraints={"colours": ["Black"]})
        assert black.ids and all(by_id[i].base_colour == "Black" for i in black.ids)
        cheap = find_similar(store, photo, k=5, constraints={"prefer_cheap": True})
        prices = [by_id[i].final_price for i in cheap.ids]
        assert prices == sorted(prices)
    nothing = find_similar(store, REAL_IMAGES / f"{train[0].id}.jpg", k=5,
                           constraints={"max_price": 1.0})
    assert nothing.ids and "price" in nothing.relaxed
