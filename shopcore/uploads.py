"""Shopper photos on disk: validated, re-encoded, stored under random names.

The web server (widget uploads) and the messaging channels (photos fetched from a platform)
save a photo here and hand the bot only its *ref* (``<32 hex>.jpg``); the action server
resolves the ref in the same folder. Nothing the client sent is kept as is: the picture is
decoded by :func:`shopcore.images.load_image` (which refuses empty, oversized, truncated,
non-image and decompression-bomb files) and re-encoded as a JPEG of at most ``STORED_SIDE``
pixels a side, so EXIF data (GPS position) and anything smuggled after the image data are
dropped, and a ref can never name a file the shopper chose.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from shopcore.images import load_image
from shopcore.settings import Settings

logger = logging.getLogger(__name__)

REF_PATTERN = re.compile(r"^[0-9a-f]{32}\.jpg$")
ACCEPTED_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")
# Pillow format names of ACCEPTED_TYPES (MPO: multi-picture JPEGs from phone cameras).
ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF"})
STORED_SIDE = 1024  # the classifier looks at 224 px; 1024 keeps detail for a person to see
JPEG_QUALITY = 90
MAX_AGE_S = 24 * 3600  # uploads are used right after they arrive; a day is plenty
PHOTO_MESSAGE = "/photo_upload"  # the intent a photo turns into; the ref rides in metadata


def photo_metadata(ref: str, caption: str) -> dict[str, dict[str, str]]:
    """The message metadata ``action_photo_search`` reads: the ref and what was typed."""
    return {"upload": {"ref": ref, "text": caption[:500]}}


def too_large_message(max_bytes: int) -> str:
    return (f"That photo is too large (the limit is {max_bytes / (1024 * 1024):.0f} MB) - "
            "please send a smaller one.")


@dataclass(frozen=True)
class UploadStore:
    """The uploads folder and the limits every stored photo has passed."""

    directory: Path
    max_bytes: int
    max_pixels: int

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadStore:
        return cls(Path(settings.uploads_dir), settings.max_upload_bytes,  # type: ignore[arg-type]
                   settings.max_image_pixels)

    def save(self, data: bytes) -> str:
        """Validate ``data`` as a photo, store it re-encoded, return its ref.

        Raises ``ImageRejected`` (with a message for the shopper) and stores nothing when the
        bytes are not an accepted picture. Written to a temporary name first and renamed, so
        a reader never sees half a file.
        """
        image = load_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels,
                           decode_side=STORED_SIDE, formats=ACCEPTED_FORMATS)
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

    def path(self, ref: object) -> Path | None:
        """The stored file for ``ref``; None for a malformed ref or one not (or no longer) here."""
        if not isinstance(ref, str) or not REF_PATTERN.match(ref):
            return None
        path = self.directory / ref
        return path if path.is_file() else None

    def delete(self, ref: str) -> bool:
        """Remove a stored upload (e.g. one the classifier could not use); False if absent."""
        path = self.path(ref)
        if path is None:
            return False
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return True

    def prune(self, max_age_s: float = MAX_AGE_S) -> int:
        """Delete uploads (and stray partial files) older than ``max_age_s``; returns how many."""
        if not self.directory.is_dir():
            return 0
        cutoff = time.time() - max_age_s
        removed = 0
        for path in self.directory.iterdir():
            name = path.name
            ours = REF_PATTERN.match(name) or (name.startswith(".") and name.endswith(".part"))
            if not ours:
                continue
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        if removed:
            logger.info("pruned %d uploads older than %.0f h from %s",
                        removed, max_age_s / 3600, self.directory)
        return removed
