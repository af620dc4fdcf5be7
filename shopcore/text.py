"""Shopper text made safe to store and show: control characters, bidi tricks, lengths."""

from __future__ import annotations

import unicodedata
from datetime import datetime

# Invisible characters that reorder text on screen ("trojan source"); never worth keeping.
_BIDI_CONTROLS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


class BadInput(ValueError):
    """Shopper input that is refused; ``str(error)`` is a shopper-facing explanation."""


def clean_text(value: object, *, what: str, max_chars: int, min_chars: int = 1) -> str:
    """Shopper text made safe to store, or BadInput saying what to fix.

    Control characters (NUL included), lone surrogates and bidi overrides are dropped,
    whitespace runs (newlines too) become one space; emoji and any script are kept. Text
    still too long after that is refused, not truncated: a cut address would be wrong.
    """
    if not isinstance(value, str):
        raise BadInput(f"Please type the {what} as text.")
    kept = []
    for ch in value:
        category = unicodedata.category(ch)
        if ch in _BIDI_CONTROLS or category in ("Cs", "Co", "Cn"):
            continue
        kept.append(" " if category == "Cc" or ch.isspace() else ch)
    text = " ".join("".join(kept).split())
    if len(text) < min_chars:
        if not text:
            raise BadInput(f"The {what} is empty; please type it again.")
        raise BadInput(f"The {what} looks too short; please give at least {min_chars} characters.")
    if len(text) > max_chars:
        raise BadInput(
            f"The {what} is too long ({len(text):,} characters); "
            f"please keep it under {max_chars:,}."
        )
    return text


def clip(text: str, max_chars: int) -> str:
    """Shorten text where losing the tail is fine (transcripts, titles, logs)."""
    return text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "…"


def day_text(moment: datetime | None) -> str:
    """'5 Mar 2025' - the date format every shop reply uses."""
    return f"{moment.day} {moment:%b %Y}" if moment else "-"
