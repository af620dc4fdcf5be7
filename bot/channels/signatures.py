"""Request signature checks, one per platform, so forged webhooks never reach the bot.

Every comparison is constant-time (``hmac.compare_digest``), and an empty secret never
verifies anything: a channel without its secret is switched off, not left open.

- Telegram: the ``X-Telegram-Bot-Api-Secret-Token`` header equals the ``secret_token`` given
  to ``setWebhook``.
- Meta (Messenger, WhatsApp Cloud): ``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the
  raw body with the app secret.
- Slack: ``X-Slack-Signature: v0=<hex>``, HMAC-SHA256 of ``v0:<timestamp>:<body>`` with the
  signing secret; ``X-Slack-Request-Timestamp`` must be within five minutes (replays).
- Twilio: ``X-Twilio-Signature``, base64 HMAC-SHA1 of the webhook URL followed by the sorted
  form fields (name + value), with the auth token; checked with and without the default
  port, as Twilio's own validator does.
- Shopbot's generic webhook: ``X-Shopbot-Signature: sha256=<hex>``, HMAC-SHA256 of
  ``<timestamp>.<body>`` with the shared secret, ``X-Shopbot-Timestamp`` within five minutes.
  Replies posted to the callback URL are signed the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

REPLAY_WINDOW_S = 300


def _hmac_hex(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def _same(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


def _fresh(timestamp: str | None, now: float | None, window: float) -> bool:
    try:
        moment = int(str(timestamp))
    except ValueError:
        return False
    now = time.time() if now is None else now
    return abs(now - moment) <= window


def verify_telegram(header: str | None, secret_token: str) -> bool:
    return bool(secret_token) and _same(secret_token, header)


def meta_signature(app_secret: str, body: bytes) -> str:
    return "sha256=" + _hmac_hex(app_secret, body)


def verify_meta(body: bytes, header: str | None, app_secret: str) -> bool:
    return bool(app_secret) and _same(meta_signature(app_secret, body), header)


def slack_signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    return "v0=" + _hmac_hex(signing_secret, b"v0:" + timestamp.encode() + b":" + body)


def verify_slack(
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    signing_secret: str,
    now: float | None = None,
    window: float = REPLAY_WINDOW_S,
) -> bool:
    if not signing_secret or not timestamp or not _fresh(timestamp, now, window):
        return False
    return _same(slack_signature(signing_secret, timestamp, body), signature)


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """What Twilio puts in ``X-Twilio-Signature`` for a form POST of ``params`` to ``url``."""
    by_name: dict[str, set[str]] = {}
    for name, value in params:
        by_name.setdefault(name, set()).add(value)
    text = url + "".join(name + value for name in sorted(by_name)
                         for value in sorted(by_name[name]))
    digest = hmac.new(auth_token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _url_variants(url: str) -> list[str]:
    """The URL as given, without its port and with the scheme's default port."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return [url]
    host = parts.netloc.rsplit("@", 1)[-1]
    bare = host.rsplit(":", 1)[0] if port else host
    default = 443 if parts.scheme == "https" else 80
    variants = [url, urlunsplit(parts._replace(netloc=bare))]
    if not port:
        variants.append(urlunsplit(parts._replace(netloc=f"{bare}:{default}")))
    return variants


def verify_twilio(
    url: str, params: Iterable[tuple[str, str]], signature: str | None, auth_token: str
) -> bool:
    if not auth_token or not signature:
        return False
    pairs = list(params)
    return any(_same(twilio_signature(auth_token, variant, pairs), signature)
               for variant in _url_variants(url))


def shopbot_signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + _hmac_hex(secret, timestamp.encode() + b"." + body)


def sign_shopbot(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """Headers for a request to or from the generic webhook (the bot's callbacks use them)."""
    timestamp = str(int(time.time() if now is None else now))
    return {"X-Shopbot-Timestamp": timestamp,
            "X-Shopbot-Signature": shopbot_signature(secret, timestamp, body)}


def verify_shopbot(
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    secret: str,
    now: float | None = None,
    window: float = REPLAY_WINDOW_S,
) -> bool:
    if not secret or not timestamp or not _fresh(timestamp, now, window):
        return False
    return _same(shopbot_signature(secret, timestamp, body), signature)
