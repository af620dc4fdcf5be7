"""Who a web shopper is: the signed session cookie, customer tokens, the client address
behind a trusted proxy, the stored keys (pure functions, no server)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import jwt
import pytest

from shopbot.identity import (
    TokenRejected,
    anonymous,
    client_address,
    demo,
    mint_cookie,
    new_session_id,
    read_cookie,
    verify_customer_token,
)
from shopcore.keys import internal_secret, session_key
from shopcore.settings import Settings

KEY = b"k" * 32
SECRET = "shop-backend-secret-of-32-bytes-at-least"
NOW = 1_800_000_000.0


def test_a_cookie_reads_back_only_as_it_was_signed() -> None:
    shopper = anonymous(new_session_id())
    cookie = mint_cookie(KEY, shopper, NOW)
    assert read_cookie(KEY, cookie, demo_mode=False, now=NOW + 10) == shopper
    assert shopper.sender.startswith("web:") and not shopper.authenticated
    body, _, signature = cookie.rpartition(".")
    version, kind, session, issued = body.split(".")
    forged = [
        f"{version}.{kind}.{'A' * 24}.{issued}.{signature}",  # another session id
        f"{version}.d.{session}.{issued}.{signature}",  # promoted to the demo shopper
        f"{version}.{kind}.{session}.{int(NOW) + 999}.{signature}",  # made younger
        f"{body}.{'0' * 64}",
        f"{body}.{signature[:-1]}",
        cookie.replace(".", "|"),
        "",
        "x" * 5000,
        "v1.a.../../etc.1.2",
    ]
    for value in forged:
        assert read_cookie(KEY, value, demo_mode=True, now=NOW) is None, value
    assert read_cookie(b"another key", cookie, demo_mode=False, now=NOW) is None


def test_a_cookie_expires_and_demo_cookies_need_demo_mode() -> None:
    cookie = mint_cookie(KEY, anonymous(new_session_id()), NOW)
    assert read_cookie(KEY, cookie, demo_mode=False, now=NOW + 100, max_age_s=50) is None
    assert read_cookie(KEY, cookie, demo_mode=False, now=NOW - 3600) is None, "from the future"
    demo_cookie = mint_cookie(KEY, demo(new_session_id()), NOW)
    assert read_cookie(KEY, demo_cookie, demo_mode=True, now=NOW).sender == "demo-shopper"
    assert read_cookie(KEY, demo_cookie, demo_mode=False, now=NOW) is None


def _token(claims: dict[str, object], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def test_customer_tokens_are_verified_not_believed() -> None:
    good = _token({"sub": "ann-42", "exp": int(NOW) + 600})
    shopper = verify_customer_token(good, SECRET, max_lifetime_s=3600, now=NOW)
    assert shopper.sender == "customer:ann-42" and shopper.authenticated
    refused = {
        "expired": _token({"sub": "ann", "exp": int(NOW) - 1}),
        "wrong key": _token({"sub": "ann", "exp": int(NOW) + 600}, secret="g" * 40),
        "no expiry": _token({"sub": "ann"}),
        "no subject": _token({"exp": int(NOW) + 600}),
        "lives a year": _token({"sub": "ann", "exp": int(NOW) + 365 * 86400}),
        "odd id": _token({"sub": "ann/../bob", "exp": int(NOW) + 600}),
        "numeric id": _token({"sub": 42, "exp": int(NOW) + 600}),
        "text expiry": _token({"sub": "ann", "exp": "never"}),
        "alg none": jwt.encode({"sub": "ann", "exp": int(NOW) + 600}, None, algorithm="none"),
        "garbage": "not.a.token",
        "huge": "x" * 10_000,
    }
    for why, token in refused.items():
        with pytest.raises(TokenRejected):
            verify_customer_token(token, SECRET, max_lifetime_s=3600, now=NOW)
            pytest.fail(why)
    with pytest.raises(TokenRejected, match="does not accept"):
        verify_customer_token(good, None, max_lifetime_s=3600, now=NOW)


def test_client_address_believes_only_trusted_proxies() -> None:
    proxies = ["10.0.0.5"]
    assert client_address("203.0.113.9", "1.2.3.4", proxies) == "203.0.113.9"
    assert client_address("10.0.0.5", "1.2.3.4", proxies) == "1.2.3.4"
    # The client may send its own X-Forwarded-For; the proxy appends the real address.
    assert client_address("10.0.0.5", "6.6.6.6, 198.51.100.7", proxies) == "198.51.100.7"
    assert client_address("10.0.0.5", None, proxies) == "10.0.0.5"
    assert client_address(None, None, []) == "unknown"


def test_keys_are_made_once_and_kept_private(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    first = session_key(settings)
    assert session_key(settings) == first and len(first) == 64
    key_file = tmp_path / "secrets" / "session.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert internal_secret(settings) != first.decode()
    assert session_key(Settings(var_dir=tmp_path, session_secret="set")) == b"set"
