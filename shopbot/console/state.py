"""What the console's handlers share: settings, the staff key, the sign-in limiter, and the
stores, opened on first use so a web server nobody signs in to never touches the database."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from aiohttp.web_urldispatcher import AbstractResource

from retrieval.store import ProductStore
from shop.cart import CartStore
from shop.events import EventLog
from shop.orders import OrderStore
from shop.searches import SearchLog
from shop.staff import StaffMember, StaffStore
from shop.teaching import ReviewStore
from shop.tickets import TicketStore
from shopbot.identity import StaffSession, client_address
from shopcore.db import open_database
from shopcore.settings import Settings

LOGIN_FAILURES_PER_EMAIL = 5
LOGIN_FAILURES_PER_ADDRESS = 20
LOGIN_WINDOW_S = 15 * 60
CHECKS_AT_ONCE = 2  # argon2 checks take 64 MiB and ~50 ms each: bound them like photo decodes


class FailureCounter:
    """Failed sign-ins per key in the last ``window`` seconds, in this process's memory (like
    the shoppers' rate limits); a key with ``limit`` of them is blocked until the oldest one
    leaves the window. Attempts refused while blocked are not checked, so not counted."""

    def __init__(self, limit: int, window: float = LOGIN_WINDOW_S) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key, deque())
        while failures and now - failures[0] >= self.window:
            failures.popleft()
        return failures

    def blocked(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return len(self._recent(key, now)) >= self.limit

    def failed(self, key: str, now: float | None = None) -> int:
        """Count one failure; returns how many ``key`` has in the window now."""
        now = time.monotonic() if now is None else now
        if len(self._failures) > 10_000:  # forget quiet keys so memory stays bounded
            self._failures = {k: v for k, v in self._failures.items()
                              if v and now - v[-1] < self.window}
        failures = self._failures.setdefault(key, self._recent(key, now))
        failures.append(now)
        return len(failures)

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)


@dataclass
class LoginLimits:
    """At most 5 failed sign-ins per email and 20 per client address in 15 minutes."""

    emails: FailureCounter = field(
        default_factory=lambda: FailureCounter(LOGIN_FAILURES_PER_EMAIL))
    addresses: FailureCounter = field(
        default_factory=lambda: FailureCounter(LOGIN_FAILURES_PER_ADDRESS))

    def blocked(self, email: str, address: str, now: float | None = None) -> bool:
        return self.emails.blocked(email, now) or self.addresses.blocked(address, now)

    def failed(self, email: str, address: str, now: float | None = None) -> int:
        self.addresses.failed(address, now)
        return self.emails.failed(email, now)

    def succeeded(self, email: str) -> None:
        """The right password ends that email's run of failures (the address keeps its)."""
        self.emails.clear(email)


@dataclass(frozen=True)
class Stores:
    """The shop stores the console reads and changes."""

    staff: StaffStore
    tickets: TicketStore
    carts: CartStore
    orders: OrderStore
    searches: SearchLog
    events: EventLog
    reviews: ReviewStore


class Console:
    """One console app's state."""

    def __init__(self, settings: Settings, key: bytes,
                 products: ProductStore | None = None) -> None:
        self.settings = settings
        self.key = key
        self.products = products  # names for the shopper's cart lines
        self.limits = LoginLimits()
        self.checking = asyncio.Semaphore(CHECKS_AT_ONCE)
        self.public: set[AbstractResource] = set()  # sign-in page and static files
        self.http: aiohttp.ClientSession | None = None  # to Rasa (set while the app runs)
        self._stores: Stores | None = None
        self._lock = threading.Lock()

    def open_stores(self) -> Stores:
        """The stores, opened on first use (blocking: call from a thread)."""
        with self._lock:
            if self._stores is None:
                database = open_database(self.settings.shop_database_url)
                self._stores = Stores(StaffStore(database), TicketStore(database),
                                      CartStore(database), OrderStore(database),
                                      SearchLog(database), EventLog(database),
                                      ReviewStore(database))
            return self._stores

    async def stores(self) -> Stores:
        """The stores (the first call opens the database, maybe migrating it: a thread)."""
        return self._stores or await asyncio.to_thread(self.open_stores)

    async def staff(self) -> StaffStore:
        return (await self.stores()).staff

    async def tickets(self) -> TicketStore:
        return (await self.stores()).tickets

    def address(self, request: web.Request) -> str:
        """The client's address (through a trusted proxy, the one it reports), as
        :func:`shopbot.web.remote_address` has it."""
        return client_address(request.remote, request.headers.get("X-Forwarded-For"),
                              self.settings.trusted_proxies)

    def https(self, request: web.Request) -> bool:
        """Whether cookies get ``Secure``: the setting, or the request (or a trusted proxy)
        says https, the same rule as the shoppers' cookie."""
        if self.settings.secure_cookies or request.secure:
            return True
        return (request.remote in self.settings.trusted_proxies
                and request.headers.get("X-Forwarded-Proto", "").lower() == "https")


CONSOLE: web.AppKey[Console] = web.AppKey("console", Console)
# The signed-in member and their session, set on the request by the guard.
STAFF: web.RequestKey[StaffMember] = web.RequestKey("staff", StaffMember)
SESSION: web.RequestKey[StaffSession] = web.RequestKey("staff_session", StaffSession)
