"""Untrusted pictures into RGB images: shopper uploads, channel photos and catalog photos.

``load_image`` turns a file or raw bytes into an RGB picture, or raises ``ImageRejected``
with a message fit for the shopper (empty, too big, not an image, truncated, decompression
bomb, animated). Nothing is written anywhere. Every way a picture enters the bot - the web
upload, a messaging platform's photo, the catalog's own photos - goes through it.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Collection
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

MAX_BYTES = 20 * 1024 * 1024  # phone photos are 2-12 MB; a 30 MB upload is refused
MAX_PIXELS = 50_000_000  # 50 MP phones exist; a 100 MP decompression bomb is refused
MIN_SIDE = 16
DECODE_SIDE = 512  # JPEGs are decoded at 1/2..1/8 scale down to this: all the encoder needs
ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF"})


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
    formats: Collection[str] = ALLOWED_FORMATS,
) -> Image.Image:
    """An RGB picture from a file or raw bytes, or ``ImageRejected`` saying why not.

    Handles EXIF orientation, transparency (flattened on white), palette, grayscale, CMYK
    and 16-bit images. Animated GIF/PNG/WebP are refused (a still photo is asked for); a
    multi-picture phone JPEG (MPO) uses its main picture. ``decode_side`` lets large JPEGs
    decode at a reduced scale (never below that side), which is 5-20x faster for phone
    photos and loses nothing the 224 px encoder could see; None decodes at full size.
    ``formats`` are the Pillow format names accepted (uploads take fewer than the catalog).
    """
    data = _read_limited(source, max_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_header(image, max_pixels, formats)
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


def _check_header(image: Image.Image, max_pixels: int, formats: Collection[str]) -> None:
    """Refuse by what the header says, before any pixel is decoded."""
    if image.format not in formats:
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
