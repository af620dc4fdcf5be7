"""Training inputs from the catalog's own photos: augmented views, cached features, the split.

The head learns from frozen encoder features of several framings of each catalog photo: as
is, mirrored, then seeded random re-framings that look like a shopper's or another shop's
photo. Encoding is the slow part, so the features are cached on disk by file name, size and
mtime (retraining re-encodes nothing; an interrupted run resumes). ``split_photos`` makes
the deterministic train/validation/test split the head is fitted, calibrated and scored on.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from retrieval.images.encoder import DIMENSIONS, ImageEncoder
from retrieval.images.preprocess import (
    COLOUR_FEATURES,
    PREPROCESS_VERSION,
    border_colour,
    frame,
)
from shopcore.images import ImageRejected, load_image
from shopcore.settings import get_settings

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]
MIN_PHOTOS_PER_CLASS = 5
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)  # train, validation, test


# -- augmented views for training ------------------------------------------------------------------

CANVAS_COLOURS = ((255, 255, 255), (246, 246, 246), (232, 232, 232), (205, 205, 205),
                  (150, 150, 150), (240, 234, 222), (60, 60, 60))


def augment(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One random re-framing of a catalog photo, as a shopper's or another shop's photo looks.

    The catalog's 224 px shots are squashed from 3:4 originals, so the width is rescaled
    (0.65-1.1); then an off-centre crop, a zoom-out onto a plain canvas, a small tilt, a
    mirror, JPEG re-compression and a light brightness/contrast/saturation change (small
    enough to keep the colour label true).
    """
    width, height = image.size
    image = image.resize((max(8, round(width * rng.uniform(0.65, 1.1))), height),
                         Image.Resampling.BILINEAR)
    if rng.random() < 0.6:  # off-centre crop keeping 55-100% of the area
        area = rng.uniform(0.55, 1.0)
        ratio = math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
        crop_w = min(image.width, round(image.width * math.sqrt(area * ratio)))
        crop_h = min(image.height, round(image.height * math.sqrt(area / ratio)))
        left = int(rng.integers(0, image.width - crop_w + 1))
        top = int(rng.integers(0, image.height - crop_h + 1))
        image = image.crop((left, top, left + crop_w, top + crop_h))
    if rng.random() < 0.3:
        fill = border_colour(image)
        image = image.rotate(float(rng.uniform(-8, 8)), Image.Resampling.BILINEAR,
                             expand=True, fillcolor=fill)
    if rng.random() < 0.5:  # zoom out onto a plain canvas, not necessarily centred
        zoom = rng.uniform(1.1, 2.0)
        canvas_w, canvas_h = round(image.width * zoom), round(image.height * zoom)
        colour = CANVAS_COLOURS[int(rng.integers(len(CANVAS_COLOURS)))]
        canvas = Image.new("RGB", (canvas_w, canvas_h), colour)
        canvas.paste(image, (int(rng.integers(0, canvas_w - image.width + 1)),
                             int(rng.integers(0, canvas_h - image.height + 1))))
        image = canvas
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(float(rng.uniform(0.9, 1.1)))
    if rng.random() < 0.3:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(rng.integers(55, 95)))
        image = Image.open(buffer).convert("RGB")
    if rng.random() < 0.15:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.2))))
    return image


def photo_views(image: Image.Image, views: int, seed: int) -> list[Image.Image]:
    """``views`` framed pictures of one photo: as is, mirrored, then seeded random re-framings."""
    out = [frame(image)]
    if views > 1:
        out.append(frame(ImageOps.mirror(image)))
    rng = np.random.default_rng(seed)
    out += [frame(augment(image, rng)) for _ in range(views - 2)]
    return out[:views]


def stable_seed(*parts: object) -> int:
    """A seed from ``parts`` that is the same in every process (``hash()`` is salted)."""
    digest = hashlib.sha1("|".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


# -- cached features of catalog photos -------------------------------------------------------------

AUGMENT_VERSION = "aug-v1"


@dataclass
class PhotoFeatures:
    """Encoded views of catalog photos: ``features[i, v]`` is view ``v`` of photo ``ids[i]``."""

    ids: list[str]
    features: np.ndarray  # [N, V, 1280] float16, unit length
    colour: np.ndarray  # [N, V, COLOUR_FEATURES] float16

    def subset(self, keep: Sequence[int]) -> PhotoFeatures:
        rows = np.asarray(keep, dtype=int)
        return PhotoFeatures([self.ids[i] for i in rows], self.features[rows], self.colour[rows])


def photo_fingerprint(path: Path) -> str:
    """Name, size and mtime: a photo file changed when this does."""
    stat = path.stat()
    return f"{path.name}|{stat.st_size}|{stat.st_mtime_ns}"


def default_cache_dir() -> Path:
    return Path(get_settings().var_dir) / "images"


def photo_features(
    paths: Sequence[Path],
    views: int,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    save_every: int = 1000,
) -> PhotoFeatures:
    """Features of ``views`` framings of each photo, cached by file name, size and mtime.

    Retraining the head re-encodes nothing that is already cached, and an interrupted run
    resumes where it stopped. Unreadable photos are logged and left out.
    """
    cache_dir = cache_dir or default_cache_dir()
    cache_file = cache_dir / f"views-{views}-{PREPROCESS_VERSION}-{AUGMENT_VERSION}.npz"
    cached = _read_cache(cache_file)
    keys = [photo_fingerprint(p) for p in paths]
    todo = [i for i, key in enumerate(keys) if key not in cached]
    if progress and len(paths) - len(todo):
        progress(len(paths) - len(todo))
    if todo:
        encoder = ImageEncoder.get()
        from concurrent.futures import ThreadPoolExecutor

        def framed_views(i: int) -> list[Image.Image] | None:
            try:
                image = load_image(paths[i], decode_side=None)
            except ImageRejected:
                return None
            return photo_views(image, views, stable_seed(paths[i].stem, AUGMENT_VERSION))

        done_since_save = 0
        with ThreadPoolExecutor(max_workers=2) as pool:
            for start in range(0, len(todo), 16):
                chunk = todo[start:start + 16]
                for i, framed in zip(chunk, pool.map(framed_views, chunk), strict=True):
                    if framed is None:
                        continue
                    encoded = encoder.encode_framed(framed, batch_size=views)
                    cached[keys[i]] = (encoded.features.astype(np.float16),
                                       encoded.colour.astype(np.float16))
                done_since_save += len(chunk)
                if progress:
                    progress(len(chunk))
                if done_since_save >= save_every:
                    _write_cache(cache_file, cached)
                    done_since_save = 0
        _write_cache(cache_file, cached)
    rows = [i for i, key in enumerate(keys) if key in cached]
    if len(rows) < len(paths):
        logger.warning("%d of %d photos could not be read", len(paths) - len(rows), len(paths))
    empty = (np.zeros((0, views, DIMENSIONS), np.float16),
             np.zeros((0, views, COLOUR_FEATURES), np.float16))
    features = np.stack([cached[keys[i]][0] for i in rows]) if rows else empty[0]
    colour = np.stack([cached[keys[i]][1] for i in rows]) if rows else empty[1]
    return PhotoFeatures([paths[i].stem for i in rows], features, colour)


def _read_cache(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            return {str(k): (f, c) for k, f, c in
                    zip(data["keys"], data["features"], data["colour"], strict=True)}
    except (OSError, ValueError, KeyError):
        logger.warning("feature cache %s is unreadable; starting afresh", path)
        return {}


def _write_cache(path: Path, cached: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(cached)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, keys=np.array(keys), features=np.stack([cached[k][0] for k in keys]),
             colour=np.stack([cached[k][1] for k in keys]))
    tmp.replace(path)


# -- deterministic split ---------------------------------------------------------------------------

Part = Literal["train", "val", "test", "rare"]


def split_photos(
    ids: Sequence[str], labels: Sequence[str], min_photos: int = MIN_PHOTOS_PER_CLASS
) -> list[Part]:
    """Train/val/test per photo, stratified by label; labels with too few photos are "rare".

    Deterministic: photos of a label are ordered by a hash of their id, so the split does
    not depend on file order and a new photo does not reshuffle the others.
    """
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    parts: list[Part] = ["rare"] * len(ids)
    for members in by_label.values():
        if len(members) < min_photos:
            continue
        members = sorted(members, key=lambda i: stable_seed("split", ids[i]))
        n_test = max(1, round(SPLIT_FRACTIONS[2] * len(members)))
        n_val = max(1, round(SPLIT_FRACTIONS[1] * len(members)))
        for rank, i in enumerate(members):
            parts[i] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return parts
