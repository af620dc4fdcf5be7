"""Channel credentials with ``${VAR:-default}`` references, and which hosts may be fetched.

Rasa substitutes *unquoted* ``${VAR}`` in credentials.yml itself and refuses to start when
the variable is unset, which would make every optional channel mandatory. The channels
here therefore take *quoted* references (``"${SHOPBOT_TELEGRAM_TOKEN}"``, which Rasa leaves
alone) and expand them on their own, with shell-style defaults: a channel whose required
values are empty stays off (its webhook answers 404) instead of stopping the server.

The shop-wide settings (uploads, limits, public URL, database) are :mod:`shopcore.settings`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

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
