"""The shop's staff accounts, who sign in to the web console (:mod:`shopbot.console`).

Passwords are kept only as argon2id hashes (``argon2.PasswordHasher``); a hash made with
older parameters is replaced on the next successful sign-in, so raising the cost later needs
no migration. Emails are kept lower-case, so ``Ann@Shop.example`` and ``ann@shop.example``
are one account. An unknown email is checked against a dummy hash, so a wrong email takes
as long as a wrong password and the timing does not say which accounts exist. Accounts are
disabled, never deleted: a disabled member's sessions stop at their next request.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from shopcore.db import Database, as_utc, now_utc, staff

logger = logging.getLogger(__name__)

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024  # longer is not a password someone types; refused before hashing
MAX_EMAIL_CHARS = 254
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class StaffError(Exception):
    """An account change refused; the message says why, for the person at the terminal."""


class BadEmail(StaffError):
    pass


class WeakPassword(StaffError):
    pass


class DuplicateEmail(StaffError):
    pass


@dataclass(frozen=True)
class StaffMember:
    """One staff account as the console shows it (never the hash)."""

    staff_id: str
    email: str
    created_at: datetime
    disabled: bool
    last_login_at: datetime | None


def display_name(email: str) -> str:
    """What shoppers see of a staff member: 'Ann' for ann.lee@shop.example (never the
    address itself)."""
    local = email.partition("@")[0]
    first = next((p for p in local.replace("_", ".").replace("-", ".").split(".") if p), "")
    return first[:30].capitalize() or "Our team"


def normal_email(email: str) -> str:
    """The form an email is kept and looked up in: trimmed, lower-case."""
    return email.strip().lower()


def check_email(email: str) -> str:
    """The email as kept; raises BadEmail for anything that is not one address."""
    address = normal_email(email)
    if len(address) > MAX_EMAIL_CHARS or not address.isprintable() or not _EMAIL.match(address):
        raise BadEmail(f"{email[:80]!r} is not an email address")
    return address


def check_password(password: str) -> None:
    """Raises WeakPassword for passwords too short (or too long) to accept."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise WeakPassword(f"password too short: use at least {MIN_PASSWORD_CHARS} characters "
                           "(a few unrelated words make a good one)")
    if len(password) > MAX_PASSWORD_CHARS:
        raise WeakPassword(f"password too long: at most {MAX_PASSWORD_CHARS} characters")


class StaffStore:
    """Staff accounts in the shop database: add, verify a sign-in, disable, list."""

    def __init__(self, database: Database, hasher: PasswordHasher | None = None) -> None:
        """``hasher``: argon2 parameters (default argon2-cffi's, RFC 9106's low-memory
        profile); hashes made with other parameters are upgraded at sign-in."""
        self.db = database
        self.hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    def add(self, email: str, password: str, *, now: datetime | None = None) -> StaffMember:
        """A new account; raises BadEmail, WeakPassword or DuplicateEmail."""
        address = check_email(email)
        check_password(password)
        if self.find(address) is not None:
            raise DuplicateEmail(f"{address} already has an account")
        hashed = self.hasher.hash(password)  # slow on purpose: outside the transaction
        staff_id = secrets.token_urlsafe(12)
        moment = as_utc(now) or now_utc()
        try:
            with self.db.write(f"staff {address}") as conn:
                conn.execute(insert(staff).values(
                    staff_id=staff_id, email=address, password_hash=hashed,
                    created_at=moment, disabled=False))
        except IntegrityError as exc:  # added by someone else since the check above
            raise DuplicateEmail(f"{address} already has an account") from exc
        logger.info("staff account %s added for %s", staff_id, address)
        member = self.get(staff_id)
        assert member is not None
        return member

    def verify(self, email: str, password: str, *,
               now: datetime | None = None) -> StaffMember | None:
        """The member whose email and password these are, or None (unknown email, wrong
        password, disabled account: the caller can't tell which, the log can). On success
        the last sign-in is recorded and an outdated hash replaced."""
        address = normal_email(email)[:MAX_EMAIL_CHARS]
        if len(password) > MAX_PASSWORD_CHARS:  # never hashed: no one sets such a password
            logger.info("staff sign-in refused for %r: overlong password", address[:80])
            return None
        with self.db.read() as conn:
            row = conn.execute(select(staff).where(staff.c.email == address)).first()
        if row is None:
            self._matches(self._dummy(), password)  # as slow as a real check
            logger.info("staff sign-in refused for %r: no such account", address[:80])
            return None
        if not self._matches(row.password_hash, password):
            logger.info("staff sign-in refused for %s: wrong password", address)
            return None
        if row.disabled:
            logger.info("staff sign-in refused for %s: account disabled", address)
            return None
        changes: dict[str, object] = {"last_login_at": as_utc(now) or now_utc()}
        if self.hasher.check_needs_rehash(row.password_hash):
            changes["password_hash"] = self.hasher.hash(password)
            logger.info("staff password hash of %s upgraded to current parameters", address)
        with self.db.write(f"staff {address}") as conn:
            conn.execute(update(staff).where(staff.c.staff_id == row.staff_id).values(changes))
        return self.get(row.staff_id)

    def get(self, staff_id: str) -> StaffMember | None:
        with self.db.read() as conn:
            row = conn.execute(select(staff).where(staff.c.staff_id == staff_id)).first()
        return _member(row) if row is not None else None

    def active(self, staff_id: str) -> StaffMember | None:
        """The member if the account exists and is not disabled: asked on every console
        request, so disabling takes effect at once."""
        member = self.get(staff_id)
        return member if member is not None and not member.disabled else None

    def find(self, email: str) -> StaffMember | None:
        with self.db.read() as conn:
            row = conn.execute(select(staff).where(staff.c.email == normal_email(email))).first()
        return _member(row) if row is not None else None

    def disable(self, email: str) -> bool:
        """Disable an account (its sessions end at their next request); False if unknown."""
        address = normal_email(email)
        with self.db.write(f"staff {address}") as conn:
            changed = conn.execute(update(staff).where(staff.c.email == address)
                                   .values(disabled=True)).rowcount == 1
        if changed:
            logger.info("staff account of %s disabled", address)
        return changed

    def all(self) -> list[StaffMember]:
        with self.db.read() as conn:
            return [_member(row) for row in conn.execute(select(staff).order_by(staff.c.email))]

    def _matches(self, hashed: str, password: str) -> bool:
        try:
            return self.hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    def _dummy(self) -> str:
        """A hash nobody knows the password of, with this hasher's parameters."""
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(24))
        return self._dummy_hash


def _member(row: Row) -> StaffMember:
    return StaffMember(staff_id=row.staff_id, email=row.email, created_at=row.created_at,
                       disabled=bool(row.disabled), last_login_at=row.last_login_at)
