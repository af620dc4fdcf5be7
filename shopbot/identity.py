"""Who a web shopper is: decided by the web server, never by the browser.

- An anonymous visitor gets a random session id in a signed cookie (HMAC-SHA256 over kind,
  id and issue time with the shop's session key); the server reads the id back only if the
  signature matches and the cookie is not too old. A tampered, expired or missing cookie
  means a fresh anonymous session, never someone else's.
- A logged-in customer comes with a short-lived token signed by the shop's backend (a JWT,
  HS256, with ``sub`` = customer id and ``exp``); a bad or expired token is refused (401).
- In demo mode the demo page may switch the session to ``demo-shopper`` (the seeded orders).

The sender ids that reach the bot say where they came from: ``web:<session>``,
``customer:<id>``, ``demo-shopper``.

The shop's staff sign in to the web console (:mod:`shopbot.console`) and get a cookie of
their own, signed the same way with a key of its own (``staff-session``), a different
version tag, and a lifetime of hours: a shopper's cookie or a customer token never reads as
a staff session. CSRF tokens are HMACs of the staff session id (or, on the login form, of a
nonce in a short-lived cookie). Pure functions; the web server wires them to requests.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal

import jwt

SESSION_COOKIE = "shopbot_session"
STAFF_COOKIE = "shopbot_staff"
STAFF_MAX_AGE_S = 8 * 3600  # a working day: staff sign in again each morning
SESSION_MAX_AGE_S = 30 * 86_400
DEMO_SENDER = "demo-shopper"
WEB_PREFIX = "web:"
CUSTOMER_PREFIX = "customer:"
CUSTOMER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_COOKIE_VERSION = "v1"
_STAFF_VERSION = "s1"
_STAFF_ID = re.compile(r"^[A-Za-z0-9_-]{8,32}$")

Kind = Literal["anonymous", "demo", "customer"]
_KIND_CODES: dict[str, Kind] = {"a": "anonymous", "d": "demo"}


@dataclass(frozen=True)
class Shopper:
    """One web shopper as the server knows them."""

    kind: Kind
    session: str  # the cookie's session id ('' for customers, who bring a token each time)
    sender: str  # the id the bot keeps their cart, orders and conversation under

    @property
    def authenticated(self) -> bool:
        """Proven by a signature of the shop's backend (may redeem link codes)."""
        return self.kind == "customer"


class TokenRejected(Exception):
    """A customer token that is not valid: the request is refused, not downgraded."""


def anonymous(session: str) -> Shopper:
    return Shopper("anonymous", session, WEB_PREFIX + session)


def demo(session: str) -> Shopper:
    return Shopper("demo", session, DEMO_SENDER)


def new_session_id() -> str:
    return secrets.token_urlsafe(18)


def _sign(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def _signed_fields(key: bytes, value: str | None, version: str,
                   now: float | None, max_age_s: int) -> tuple[str, str, int] | None:
    """``(a, b, issued)`` of ``version.a.b.issued.signature`` when we signed it with ``key``
    and it is not expired (shopper and staff cookies share the shape); else None."""
    if not value or len(value) > 256:
        return None
    body, _, signature = value.rpartition(".")
    if not hmac.compare_digest(_sign(key, body), signature):
        return None
    parts = body.split(".")
    if len(parts) != 4 or parts[0] != version or not parts[3].isdigit():
        return None
    age = (now or time.time()) - int(parts[3])
    if age < -60 or age > max_age_s:
        return None
    return parts[1], parts[2], int(parts[3])


def mint_cookie(key: bytes, shopper: Shopper, now: float | None = None) -> str:
    """The cookie value for an anonymous or demo session."""
    code = next(c for c, kind in _KIND_CODES.items() if kind == shopper.kind)
    body = f"{_COOKIE_VERSION}.{code}.{shopper.session}.{int(now or time.time())}"
    return f"{body}.{_sign(key, body)}"


def read_cookie(key: bytes, value: str | None, *, demo_mode: bool,
                now: float | None = None, max_age_s: int = SESSION_MAX_AGE_S) -> Shopper | None:
    """The session in a cookie we signed, or None (missing, tampered, expired, demo off)."""
    fields = _signed_fields(key, value, _COOKIE_VERSION, now, max_age_s)
    if fields is None:
        return None
    code, session, _ = fields
    if code not in _KIND_CODES or not _SESSION_ID.match(session):
        return None
    kind = _KIND_CODES[code]
    if kind == "demo":
        return demo(session) if demo_mode else None
    return anonymous(session)


@dataclass(frozen=True)
class StaffSession:
    """A signed-in staff member's session as its cookie says (the account is checked too)."""

    staff_id: str
    session: str  # random per sign-in; CSRF tokens are tied to it
    issued: int


def mint_staff_cookie(key: bytes, staff_id: str, session: str,
                      now: float | None = None) -> str:
    """The ``shopbot_staff`` cookie value for one sign-in of one staff member."""
    if not _STAFF_ID.match(staff_id) or not _SESSION_ID.match(session):
        raise ValueError("staff id or session id not in the expected form")
    body = f"{_STAFF_VERSION}.{staff_id}.{session}.{int(now or time.time())}"
    return f"{body}.{_sign(key, body)}"


def read_staff_cookie(key: bytes, value: str | None, *, now: float | None = None,
                      max_age_s: int = STAFF_MAX_AGE_S) -> StaffSession | None:
    """The staff session in a cookie we signed with the staff key, or None (missing,
    tampered, expired, or any other cookie)."""
    fields = _signed_fields(key, value, _STAFF_VERSION, now, max_age_s)
    if fields is None:
        return None
    staff_id, session, issued = fields
    if not _STAFF_ID.match(staff_id) or not _SESSION_ID.match(session):
        return None
    return StaffSession(staff_id, session, issued)


def csrf_token(key: bytes, session: str) -> str:
    """The token a staff session's state-changing requests must carry: only pages we served
    to that session know it (another site can send the cookie, never read the token)."""
    return _sign(key, f"csrf.{session}")


def login_form_token(key: bytes, nonce: str) -> str:
    """The login form's token, tied to a nonce in a cookie of the same browser, so another
    site cannot sign a browser in to an account of its choosing."""
    return _sign(key, f"login.{nonce}")


def tokens_match(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a token we made with one a request brought."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def verify_customer_token(token: str, secret: str | None, *, max_lifetime_s: int,
                          now: float | None = None) -> Shopper:
    """The customer a backend-signed token names; raises TokenRejected with the reason."""
    if not secret:
        raise TokenRejected("this shop does not accept customer tokens")
    if len(token) > 4096:
        raise TokenRejected("customer token too long")
    now = time.time() if now is None else now
    try:  # expiry is checked below against ``now`` (one clock for every check)
        claims = jwt.decode(token, secret, algorithms=["HS256"],
                            options={"require": ["sub", "exp"], "verify_exp": False})
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"customer token invalid: {exc}") from exc
    expires = claims["exp"]
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise TokenRejected("customer token expiry (exp) must be a number")
    if expires <= now:
        raise TokenRejected("customer token expired")
    if expires - now > max_lifetime_s:
        raise TokenRejected("customer token lives too long; issue short-lived tokens")
    customer = claims["sub"]
    if not isinstance(customer, str) or not CUSTOMER_ID.match(customer):
        raise TokenRejected("customer id (sub) must be 1-64 letters, digits or _.@-")
    return Shopper("customer", "", CUSTOMER_PREFIX + customer)


def client_address(remote: str | None, forwarded_for: str | None,
                   trusted_proxies: list[str]) -> str:
    """The shopper's address: the peer, or behind a trusted proxy the last hop it added
    (earlier hops in X-Forwarded-For are the client's word, so not believed)."""
    peer = remote or "unknown"
    if peer not in trusted_proxies or not forwarded_for:
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop not in trusted_proxies:
            return hop[:64]
    return peer
