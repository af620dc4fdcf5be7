"""Channel settings: credentials with ``${VAR:-default}`` references and the shop-wide env.

Rasa substitutes *unquoted* ``${VAR}`` in credentials.yml itself and refuses to start when
the variable is unset, which would make every optional channel mandatory. The channels
here therefore take *quoted* references (``"${SHOPBOT_TELEGRAM_TOKEN}"``, which Rasa leaves
alone) and expand them on their own, with shell-style defaults: a channel whose required
values are empty stays off (its webhook answers 404) instead of stopping the server.

Runs in both virtualenvs (Python 3.10 and 3.11): standard library only.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VAR_DIR = PROJECT_ROOT / "var"
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand(value: object, env: Mapping[str, str] | None = None) -> str:
    """``${VAR}`` and ``${VAR:-default}`` inside a credential, replaced from ``env``.

    An unset or empty variable without a default becomes ``""``; the caller decides
    whether an empty value switches its channel off.
    """
    if value is None:
        return ""
    env = os.environ if env is None else env

    def substitute(match: re.Match[str]) -> str:
        return env.get(match.group(1)) or (match.group(2) or "")

    return ENV_REFERENCE.sub(substitute, str(value)).strip()


def expand_credentials(
    raw: Mapping[str, object] | None, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Every scalar value of one credentials.yml block, expanded (nested values are dropped)."""
    expanded: dict[str, str] = {}
    for key, value in (raw or {}).items():
        if isinstance(value, str | int | float | bool):
            expanded[str(key)] = expand(value, env)
    return expanded


def missing(credentials: Mapping[str, str], required: Iterable[str]) -> list[str]:
    """The required keys that are empty after expansion."""
    return [key for key in required if not credentials.get(key)]


def parse_hosts(text: str) -> tuple[str, ...]:
    """'api.telegram.org, *.fbcdn.net' -> ('api.telegram.org', '*.fbcdn.net')."""
    return tuple(h.strip().lower() for h in re.split(r"[,\s]+", text or "") if h.strip())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_allowed(url: str, hosts: Iterable[str]) -> bool:
    """Whether ``url`` may be fetched: https to an allow-listed host (``*.`` matches any
    subdomain), or plain http only to a loopback host (tests, a gateway on this machine).
    URLs carrying a user name or password are never fetched."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return False
    if not host or parts.username is not None or parts.password is not None:
        return False
    if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(host)):
        return False
    for pattern in hosts:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def host_of(url: str) -> str:
    """The host name of a URL ('' when there is none), for default allow-lists."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        logger.warning("%s=%r is not a whole number; using %d", name, text[:40], default)
        return default
    return value if value > 0 else default


@dataclass(frozen=True)
class ShopEnv:
    """What the channels share with the rest of the shop, read from the same SHOPBOT_ variables
    as ``shopbot.settings`` (which the Rasa side cannot import: it is Python 3.11 code)."""

    public_url: str
    product_url: str
    uploads_dir: Path
    max_upload_bytes: int
    max_image_pixels: int
    shop_db: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ShopEnv:
        env = os.environ if env is None else env
        public_url = env.get("SHOPBOT_PUBLIC_URL", "").strip().rstrip("/")
        default_product = f"{public_url}/?product={{id}}" if public_url else ""
        return cls(
            public_url=public_url,
            product_url=env.get("SHOPBOT_PRODUCT_URL", "").strip() or default_product,
            uploads_dir=Path(env.get("SHOPBOT_UPLOADS_DIR") or VAR_DIR / "uploads"),
            max_upload_bytes=_int_env(env, "SHOPBOT_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES),
            max_image_pixels=_int_env(env, "SHOPBOT_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS),
            shop_db=Path(env.get("SHOPBOT_SHOP_DB") or VAR_DIR / "shop.db"),
        )
