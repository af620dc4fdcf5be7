"""Framing and colour statistics: how every picture is prepared before the encoder sees it.

Photos are framed the same way for training, indexing and serving: a uniform background is
trimmed, then the picture is fitted (aspect kept) onto a square padded with the background
colour, so a product shot zoomed out on a big white or grey canvas looks like the catalog's
tight 224 px shots. ``colour_histogram`` describes the foreground's colours for the colour
head (and for the colour guess when there is no head).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from shopcore.images import to_rgb

INPUT_SIZE = 224
# Bump when the framing (trim, fit, normalisation) changes: cached features depend on it.
PREPROCESS_VERSION = "trimfit-v2"


# -- framing: trim the background, fit onto a square -----------------------------------------------

BACKGROUND_TOLERANCE = 28  # max channel difference still counted as background (JPEG noise)


def border_colour(image: Image.Image, inset: int = 0) -> tuple[int, int, int]:
    """Median colour of the pixels ``inset`` in from the edge: the backdrop of product shots."""
    pixels = np.asarray(image)
    inset = min(inset, (min(pixels.shape[:2]) - 1) // 2)
    frame = np.concatenate([pixels[inset], pixels[-1 - inset],
                            pixels[:, inset], pixels[:, -1 - inset]])
    return tuple(int(v) for v in np.median(frame, axis=0))  # type: ignore[return-value]


def backdrop_colour(image: Image.Image) -> tuple[int, int, int]:
    """The border colour when the border is mostly one colour, else white (catalog style)."""
    small = image.copy()
    small.thumbnail((128, 128), Image.Resampling.BOX)
    pixels = np.asarray(small, dtype=np.int16)
    inset = min(2, (min(pixels.shape[:2]) - 1) // 2)
    ring = np.concatenate([pixels[inset], pixels[-1 - inset],
                           pixels[:, inset], pixels[:, -1 - inset]])
    median = np.median(ring, axis=0)
    if (np.abs(ring - median).max(axis=1) <= BACKGROUND_TOLERANCE).mean() >= 0.6:
        return tuple(int(v) for v in median)  # type: ignore[return-value]
    return (255, 255, 255)


@dataclass
class _Foreground:
    box: tuple[int, int, int, int]
    pasted_photo: bool  # a solid rectangle with a light, plain inner edge: a photo on a canvas


def _foreground(image: Image.Image) -> _Foreground | None:
    """Where the picture differs from its border colour; None when nothing (or all) does.

    Found on a box-filtered small copy, so JPEG speckle is averaged out.
    """
    small = image.copy()
    small.thumbnail((128, 128), Image.Resampling.BOX)
    pixels = np.asarray(small, dtype=np.int16)
    # The outermost pixels blend with whatever was cut off before (a canvas edge): skip them.
    background = np.array(border_colour(small, inset=2), dtype=np.int16)
    mask = np.abs(pixels - background).max(axis=2) > BACKGROUND_TOLERANCE
    mask[:2], mask[-2:], mask[:, :2], mask[:, -2:] = False, False, False, False
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0 or cols.size == 0:
        return None
    scale_x, scale_y = image.width / small.width, image.height / small.height
    box = (int(cols[0] * scale_x), int(rows[0] * scale_y),
           min(image.width, math.ceil((cols[-1] + 1) * scale_x)),
           min(image.height, math.ceil((rows[-1] + 1) * scale_y)))
    area = (box[2] - box[0]) * (box[3] - box[1])
    if area >= 0.97 * image.width * image.height or area < 0.005 * image.width * image.height:
        return None
    top, bottom, left, right = rows[0], rows[-1], cols[0], cols[-1]
    inner = pixels[top + 1:bottom, left + 1:right]
    pasted = False
    if min(inner.shape[:2]) > 6:
        edges = np.concatenate([mask[top, left:right + 1], mask[bottom, left:right + 1],
                                mask[top:bottom + 1, left], mask[top:bottom + 1, right]])
        ring = np.concatenate([inner[1], inner[-2], inner[:, 1], inner[:, -2]])
        median = np.median(ring, axis=0)
        plain = (np.abs(ring - median).max(axis=1) <= BACKGROUND_TOLERANCE).mean() >= 0.6
        light = median.min() >= 190 and median.max() - median.min() <= 30
        pasted = bool(edges.mean() >= 0.9 and plain and light)
    return _Foreground(box, pasted)


def trim_background(image: Image.Image, margin: float = 0.03) -> Image.Image:
    """Crop a uniform backdrop away, so framing and zoom-out stop mattering.

    A product shot pasted on a bigger canvas (a solid rectangle with a light, plain inner
    edge) loses the canvas first, then its own backdrop. A photo whose "foreground" is
    nearly everything or nearly nothing is left as it is.
    """
    found = _foreground(image)
    if found is None:
        return image
    outer, box = image, found.box
    if found.pasted_photo:
        inner = image.crop(box)
        nested = _foreground(inner)
        if nested is not None:
            outer, box = inner, nested.box
    # A little air around the product, from the picture the box was found in.
    pad = round(margin * max(box[2] - box[0], box[3] - box[1]))
    return outer.crop((max(0, box[0] - pad), max(0, box[1] - pad),
                       min(outer.width, box[2] + pad), min(outer.height, box[3] + pad)))


def fit_square(image: Image.Image, size: int = INPUT_SIZE,
               fill: tuple[int, int, int] | None = None) -> Image.Image:
    """Resize keeping the aspect ratio and pad to ``size`` x ``size`` with the backdrop colour."""
    fill = fill or border_colour(image)
    scale = size / max(image.width, image.height)
    width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    resized = image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
    canvas = Image.new("RGB", (size, size), fill)
    canvas.paste(resized, ((size - width) // 2, (size - height) // 2))
    return canvas


def frame(image: Image.Image, size: int = INPUT_SIZE) -> Image.Image:
    """The one framing used for training, indexing and serving."""
    trimmed = trim_background(to_rgb(image))
    return fit_square(trimmed, size, backdrop_colour(trimmed))


# -- colour statistics of the foreground -----------------------------------------------------------

HUE_BINS = 12
GREY_BINS = 5
COLOUR_FEATURES = 2 * (2 * HUE_BINS + GREY_BINS)


def colour_histogram(framed: Image.Image) -> np.ndarray:
    """Foreground colour histogram (whole, and weighted to the centre), ``COLOUR_FEATURES`` long.

    Chromatic pixels fall in 12 hue x 2 lightness bins, the rest in 5 grey levels; the
    backdrop (the framed picture's border colour) is left out. The centre-weighted half
    helps the colour head find the garment on a model rather than her jeans or skin.
    """
    small = framed.resize((64, 64), Image.Resampling.BOX)
    rgb = np.asarray(small, dtype=np.int16)
    background = np.array(border_colour(small), dtype=np.int16)
    foreground = np.abs(rgb - background).max(axis=2) > BACKGROUND_TOLERANCE
    if foreground.mean() < 0.03:  # nothing stands out: describe the whole picture
        foreground = np.ones_like(foreground)
    hsv = np.asarray(small.convert("HSV"), dtype=np.float32) / 255.0
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    chromatic = (sat > 0.25) & (val > 0.2)
    hue_bin = np.minimum((hue * HUE_BINS).astype(int), HUE_BINS - 1) * 2 + (val > 0.6)
    grey_bin = 2 * HUE_BINS + np.minimum((val * GREY_BINS).astype(int), GREY_BINS - 1)
    bins = np.where(chromatic, hue_bin, grey_bin)
    yy, xx = np.mgrid[0:64, 0:64]
    centre = np.exp(-(((xx - 31.5) / 20) ** 2 + ((yy - 31.5) / 20) ** 2))
    size = 2 * HUE_BINS + GREY_BINS
    out = np.zeros(2 * size, dtype=np.float32)
    for half, weights in enumerate((np.ones_like(centre), centre)):
        w = weights * foreground
        hist = np.bincount(bins.ravel(), weights=w.ravel(), minlength=size)
        out[half * size:(half + 1) * size] = hist / max(hist.sum(), 1e-6)
    return out
