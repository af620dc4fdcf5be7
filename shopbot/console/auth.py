"""Who may use the console: staff sign-in and sign-out, the guard on every console request,
CSRF checks, and the response headers every console page gets.

- The guard lets through only the sign-in page and the static files; everything else needs
  a ``shopbot_staff`` cookie signed with the staff key, of an account that still exists
  and is not disabled (asked on every request). Pages without one redirect to the sign-in
  page (302), ``/console/api/*`` answers 401 JSON. The shoppers' cookie and customer tokens
  are never looked at here.
- Every request that changes something (any method but GET/HEAD/OPTIONS) must carry the
  session's CSRF token in ``X-CSRF-Token`` or the form field ``csrf``: 403 otherwise. The
  sign-in form instead carries a token tied to a nonce cookie of the same browser.
- Sign-in: 5 failed attempts per email or 20 per client address within 15 minutes, and the
  next ones get 429 until the oldest leaves the window. Unknown emails cost an argon2 check
  too (shop.staff). Failures are logged with the email and address, never the password.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from shop.staff import MAX_EMAIL_CHARS, StaffMember, normal_email
from shopbot.console.render import h, page
from shopbot.console.state import CONSOLE, SESSION, STAFF
from shopbot.identity import (
    STAFF_COOKIE,
    STAFF_MAX_AGE_S,
    StaffSession,
    csrf_token,
    login_form_token,
    mint_staff_cookie,
    new_session_id,
    read_staff_cookie,
    tokens_match,
)

logger = logging.getLogger("shopbot.console")

LOGIN_PATH = "/console/login"
HOME_PATH = "/console"
API_PREFIX = "/console/api"
COOKIE_PATH = "/console"
LOGIN_COOKIE = "shopbot_staff_login"  # the sign-in form's nonce
LOGIN_COOKIE_MAX_AGE_S = 3600
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}
# What the browser may do with console pages: our own stylesheet and scripts, forms posted
# to ourselves, never framed (clickjacking), nothing cached or sent on as a referrer.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; "
                               "img-src 'self'; connect-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def json_error(status: int, message: str) -> web.Response:
    """The same shape as the shoppers' API errors (``shopbot.web.error``)."""
    return web.json_response({"error": message}, status=status)


def is_api(request: web.Request) -> bool:
    return request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/")


async def signed_in(request: web.Request) -> tuple[StaffMember, StaffSession] | None:
    """The active staff member whose session cookie this request carries, else None (no
    cookie, a bad or expired one, or an account since disabled)."""
    console = request.app[CONSOLE]
    session = read_staff_cookie(console.key, request.cookies.get(STAFF_COOKIE))
    if session is None:
        return None
    staff = await console.staff()
    member = await asyncio.to_thread(staff.active, session.staff_id)
    return (member, session) if member is not None else None


def refuse(request: web.Request) -> web.Response:
    """No staff session: pages go to the sign-in page, the API says 401."""
    if request.cookies.get(STAFF_COOKIE):
        logger.info("console: refused staff cookie for %s %s from %s (bad, expired, or the "
                    "account is disabled)", request.method, request.path[:100],
                    request.app[CONSOLE].address(request))
    if is_api(request):
        return json_error(401, "Sign in to the staff console first.")
    response = web.Response(status=302, headers={"Location": LOGIN_PATH})
    if request.cookies.get(STAFF_COOKIE):  # expired, tampered or disabled: drop it
        response.del_cookie(STAFF_COOKIE, path=COOKIE_PATH)
    return response


async def given_csrf(request: web.Request) -> str | None:
    """The CSRF token a request brings: the header, else the form field."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    value = (await read_form(request)).get(CSRF_FIELD)
    return value if isinstance(value, str) else None


async def read_form(request: web.Request) -> Mapping[str, object]:
    """The posted form; empty when the body is no form or a malformed one (then the token
    check fails and says so, instead of a 500)."""
    if request.content_type not in FORM_TYPES:
        return {}
    try:
        return await request.post()
    except ValueError:
        return {}


@web.middleware
async def security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every console response, errors included, gets :data:`SECURITY_HEADERS`; pages and
    the API are never cached (they show shoppers' messages)."""
    extra = dict(SECURITY_HEADERS)
    if not request.path.startswith("/console/static/"):
        extra["Cache-Control"] = "no-store"
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(extra)
        raise
    if "Content-Security-Policy" in response.headers:  # a page with a narrower policy of
        extra.pop("Content-Security-Policy")           # its own (the evaluation report)
    response.headers.update(extra)
    return response


@web.middleware
async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Staff only, and CSRF-checked changes: see the module's docstring."""
    console = request.app[CONSOLE]
    if request.match_info.route.resource in console.public:
        return await handler(request)
    found = await signed_in(request)
    if found is None:
        return refuse(request)
    member, session = found
    if request.method not in SAFE_METHODS and \
            not tokens_match(csrf_token(console.key, session.session), await given_csrf(request)):
        logger.warning("console: refused %s %s by %s from %s: CSRF token missing or wrong",
                       request.method, request.path[:100], member.email,
                       console.address(request))
        if is_api(request):
            return json_error(403, "Missing or wrong CSRF token - reload the page.")
        return page("Refused", "<h1>Refused</h1><p>This form has expired or did not come "
                    "from the console. Reload the page and try again.</p>", status=403)
    request[STAFF] = member
    request[SESSION] = session
    return await handler(request)


def set_staff_cookie(request: web.Request, response: web.StreamResponse,
                     member: StaffMember) -> None:
    """The staff session cookie: HttpOnly, SameSite=Strict (never sent from another site's
    page), Secure over https, only for /console, 8 hours."""
    console = request.app[CONSOLE]
    value = mint_staff_cookie(console.key, member.staff_id, new_session_id())
    response.set_cookie(STAFF_COOKIE, value, max_age=STAFF_MAX_AGE_S, path=COOKIE_PATH,
                        httponly=True, secure=console.https(request), samesite="Strict")


def _text(value: object) -> str:
    """A form field's text ('' for a missing field or a file)."""
    return value if isinstance(value, str) else ""


def login_form(request: web.Request, *, message: str = "", email: str = "",
               status: int = 200) -> web.Response:
    """The sign-in page, with a fresh nonce cookie and the form token tied to it."""
    console = request.app[CONSOLE]
    nonce = secrets.token_urlsafe(18)
    notice = f'<p class="notice" role="alert">{h(message)}</p>' if message else ""
    body = f"""<section class="login">
<h1>Staff sign-in</h1>
{notice}
<form method="post" action="{LOGIN_PATH}">
<input type="hidden" name="{CSRF_FIELD}" value="{h(login_form_token(console.key, nonce))}">
<label>Email <input type="email" name="email" value="{h(email)}" autocomplete="username"
 required autofocus></label>
<label>Password <input type="password" name="password" autocomplete="current-password"
 required></label>
<button type="submit">Sign in</button>
</form>
</section>"""
    response = page("Sign in", body, status=status)
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=LOGIN_COOKIE_MAX_AGE_S, path=LOGIN_PATH,
                        httponly=True, secure=console.https(request), samesite="Strict")
    return response


async def login_page(request: web.Request) -> web.Response:
    """GET /console/login: the form (or the console, for someone signed in already)."""
    if await signed_in(request) is not None:
        return web.Response(status=302, headers={"Location": HOME_PATH})
    return login_form(request)


async def log_in(request: web.Request) -> web.Response:
    """POST /console/login (form: email, password, csrf): on success a staff session
    cookie and 303 to the console; else the form again with 401, 403 or 429."""
    console = request.app[CONSOLE]
    address = console.address(request)
    form = await read_form(request)
    email = normal_email(_text(form.get("email")))[:MAX_EMAIL_CHARS]
    password = _text(form.get("password"))
    given = _text(form.get(CSRF_FIELD))
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not tokens_match(login_form_token(console.key, nonce), given):
        logger.warning("console: sign-in form without a valid form token from %s", address)
        return login_form(request, message="The sign-in form expired - please try again.",
                          email=email, status=403)
    if console.limits.blocked(email, address):
        logger.warning("console: sign-in for %r from %s refused: too many failures",
                       email[:80], address)
        return login_form(request, message="Too many failed sign-ins - please wait 15 "
                          "minutes and try again.", email=email, status=429)
    staff = await console.staff()
    async with console.checking:  # argon2 is slow and memory-hungry on purpose
        member = await asyncio.to_thread(staff.verify, email, password)
    if member is None:
        failures = console.limits.failed(email, address)
        logger.warning("console: failed sign-in for %r from %s (%d in 15 min for that email)",
                       email[:80], address, failures)
        return login_form(request, message="Wrong email or password.", email=email,
                          status=401)
    console.limits.succeeded(email)
    logger.info("console: %s signed in from %s", member.email, address)
    response = web.Response(status=303, headers={"Location": HOME_PATH})
    set_staff_cookie(request, response, member)
    response.del_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    return response


async def log_out(request: web.Request) -> web.Response:
    """POST /console/logout (CSRF-checked by the guard): drop the cookie, back to sign-in."""
    logger.info("console: %s signed out", request[STAFF].email)
    response = web.Response(status=303, headers={"Location": LOGIN_PATH})
    response.del_cookie(STAFF_COOKIE, path=COOKIE_PATH)
    return response
