"""Photos shoppers send on a messaging platform, fetched and stored like web uploads.

The platform gives us a URL (Messenger, Twilio) or a file id that turns into one
(Telegram). :func:`download` fetches it only from the platform's own hosts (an allow-list per
channel, redirects checked hop by hop, credentials sent to the first host only) and stops
reading past the size limit. :class:`PhotoSaver` then does what ``shopbot.uploads`` does for
the web widget - which the Rasa side cannot import (Python 3.11 code): refuse what is not a
still JPEG/PNG/WebP/GIF within the byte and pixel limits, re-encode as a JPEG of at most
1024 px a side under a random name (``<32 hex>.jpg``), never keep a bad file. The bot then
gets ``/photo_upload`` with ``{"upload": {"ref": ..., "text": caption}}`` in the metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
from PIL import Image, ImageOps, UnidentifiedImageError

from bot.channels.config import host_allowed, host_of

logger = logging.getLogger(__name__)

PHOTO_MESSAGE = "/photo_upload"  # the intent a photo turns into; the ref rides in metadata
ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF"})
STORED_SIDE = 1024
JPEG_QUALITY = 90
MIN_SIDE = 16
MAX_REDIRECTS = 3
DOWNLOAD_TIMEOUT_S = 30
READ_CHUNK = 64 * 1024
NOT_FETCHED = "I couldn't fetch that photo - please send it again."


class PhotoRejected(ValueError):
    """A photo the bot won't use; ``message`` is fit to show the shopper as is."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def too_large(max_bytes: int) -> PhotoRejected:
    return PhotoRejected("too_large", f"That photo is too large (the limit is "
                         f"{max_bytes / (1024 * 1024):.0f} MB) - please send a smaller photo.")


async def download(
    session: aiohttp.ClientSession,
    url: str,
    hosts: tuple[str, ...],
    max_bytes: int,
    auth: aiohttp.BasicAuth | None = None,
) -> bytes:
    """The bytes at ``url``, or PhotoRejected: host not allowed, too large, or not fetched."""
    first_host = host_of(url)
    for _ in range(MAX_REDIRECTS + 1):
        if not host_allowed(url, hosts):
            logger.warning("refused photo download from %r (allowed: %s)",
                           host_of(url) or url[:80], ", ".join(hosts) or "none")
            raise PhotoRejected("host_not_allowed", NOT_FETCHED)
        try:
            async with session.get(
                url, allow_redirects=False, auth=auth if host_of(url) == first_host else None,
                timeout=aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT_S),
            ) as response:
                if response.status in (301, 302, 303, 307, 308):
                    location = response.headers.get("Location", "")
                    if not location:
                        raise PhotoRejected("bad_redirect", NOT_FETCHED)
                    url = urljoin(url, location)
                    continue
                if response.status != 200:
                    logger.warning("photo download from %s answered HTTP %d",
                                   host_of(url), response.status)
                    raise PhotoRejected("download_failed", NOT_FETCHED)
                if (response.content_length or 0) > max_bytes:
                    raise too_large(max_bytes)
                data = bytearray()
                async for chunk in response.content.iter_chunked(READ_CHUNK):
                    data.extend(chunk)
                    if len(data) > max_bytes:
                        raise too_large(max_bytes)
                return bytes(data)
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:  # noqa: UP041 - 3.10
            logger.warning("photo download from %s failed: %r", host_of(url), error)
            raise PhotoRejected("download_failed", NOT_FETCHED) from error
    logger.warning("photo download gave up after %d redirects", MAX_REDIRECTS)
    raise PhotoRejected("too_many_redirects", NOT_FETCHED)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode as RGB; transparent parts become white (like catalog backgrounds)."""
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def _decode(data: bytes, max_bytes: int, max_pixels: int) -> Image.Image:
    if not data:
        raise PhotoRejected("empty", "That file is empty - please send the photo again.")
    if len(data) > max_bytes:
        raise too_large(max_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in ACCEPTED_FORMATS:
                raise PhotoRejected("unsupported_format", f"I can't use {image.format or 'that'}"
                                    " pictures - please send a JPEG, PNG, WebP or GIF photo.")
            width, height = image.size
            if width * height > max_pixels:
                raise PhotoRejected("too_many_pixels", "That picture is far too large "
                                    f"({width}x{height} pixels) - please send a normal photo.")
            if min(width, height) < MIN_SIDE:
                raise PhotoRejected("too_small", "That picture is too small to see anything - "
                                    "please send a bigger photo.")
            if getattr(image, "is_animated", False) and image.format != "MPO":
                raise PhotoRejected("animated", "Animated pictures aren't supported - "
                                    "please send a still photo.")
            if image.format in {"JPEG", "MPO"}:
                image.draft("RGB", (STORED_SIDE, STORED_SIDE))
            image.load()
    except PhotoRejected:
        raise
    except UnidentifiedImageError as error:
        raise PhotoRejected("not_an_image", "That file isn't a picture I can read - "
                            "please send a JPEG, PNG or WebP photo.") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise PhotoRejected("too_many_pixels", "That picture is far too large - "
                            "please send a normal photo.") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:  # truncated or corrupt
        raise PhotoRejected("corrupt", "That picture seems damaged or incomplete - "
                            "could you send it again?") from error
    try:
        image = ImageOps.exif_transpose(image) or image
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the photo
        logger.info("ignoring unreadable EXIF orientation in a channel photo")
    return _to_rgb(image)


@dataclass(frozen=True)
class PhotoSaver:
    """The uploads folder shared with the action server, and the limits every photo passes."""

    directory: Path
    max_bytes: int
    max_pixels: int

    def save(self, data: bytes) -> str:
        """Validate, re-encode and store ``data``; return its ref, or raise PhotoRejected.

        Written under a temporary name and renamed, so the action server never sees half a
        file; nothing is left behind when the picture is refused."""
        image = _decode(data, self.max_bytes, self.max_pixels)
        image.thumbnail((STORED_SIDE, STORED_SIDE), Image.Resampling.LANCZOS)
        self.directory.mkdir(parents=True, exist_ok=True)
        ref = f"{secrets.token_hex(16)}.jpg"
        partial = self.directory / f".{ref}.part"
        try:
            image.save(partial, "JPEG", quality=JPEG_QUALITY, optimize=True)
            os.replace(partial, self.directory / ref)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        return ref


def photo_metadata(ref: str, caption: str) -> dict[str, dict[str, str]]:
    """The message metadata ``action_photo_search`` reads."""
    return {"upload": {"ref": ref, "text": caption[:500]}}
