"""The bot's own secrets when the shop sets none: random keys made once, kept in
``var_dir/secrets`` (0600), so every process of one installation (and a restart, and
`make shell` beside `make run`) reads the same key. A shop running several machines sets
them in the environment instead (``SHOPBOT_SESSION_SECRET``, ``SHOPBOT_INTERNAL_SECRET``,
``SHOPBOT_STAFF_SESSION_SECRET``)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from shopcore.settings import Settings


def stored_key(settings: Settings, name: str) -> str:
    """The key in ``var_dir/secrets/<name>.key``, made on first use (first writer wins)."""
    path = Path(settings.var_dir) / "secrets" / f"{name}.key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(temp, path)  # atomic and never replaces: a racing process reads ours
        except FileExistsError:
            pass
        finally:
            temp.unlink()
    return path.read_text().strip()


def session_key(settings: Settings) -> bytes:
    """Signs the web shoppers' session cookies."""
    return (settings.session_secret or stored_key(settings, "session")).encode()


def staff_session_key(settings: Settings) -> bytes:
    """Signs the staff console's session cookies and CSRF tokens: a key of its own, so no
    shopper cookie (signed with :func:`session_key`) can ever pass for a staff session."""
    return (settings.staff_session_secret or stored_key(settings, "staff-session")).encode()


def internal_secret(settings: Settings) -> str:
    """What the web server shows Rasa's REST channel and Rasa shows the action server."""
    return settings.internal_secret or stored_key(settings, "internal")

# Who a Rasa request is about, set by the web server: a balancer in front of several Rasa
# replicas hashes on it so one conversation stays on one replica (shopbot.scaled).
SENDER_HEADER = "X-Shopbot-Sender"
# The internal secret Rasa's REST channel asks of its callers (the web server, the console).
INTERNAL_HEADER = "X-Shopbot-Internal"
