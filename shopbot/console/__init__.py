"""The staff console at ``/console``: a sub-application of the public web server, for the
shop's own people only.

Staff accounts live in the shop database (:mod:`shop.staff`, added with ``shopbot staff
add``). :mod:`shopbot.console.auth` guards every console route (sign-in page and static
files aside): a signed staff session cookie of an active account, CSRF tokens on every
change, rate-limited sign-in. Its middlewares apply to the console only, unknown paths
under ``/console`` included, so a new route is guarded the moment it is added.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from retrieval.store import ProductStore
from shopbot.console import auth, conversations, inbox, insights, pages, teach
from shopbot.console.state import CONSOLE, Console
from shopcore.keys import staff_session_key
from shopcore.settings import Settings

PREFIX = "/console"
STATIC_DIR = Path(__file__).resolve().parent / "static"


def console_app(settings: Settings, products: ProductStore | None = None) -> web.Application:
    """The console, to be mounted at :data:`PREFIX` (``app.add_subapp``); ``products`` names
    the products in shoppers' carts."""
    app = web.Application(middlewares=[auth.security_headers, auth.guard])
    console = app[CONSOLE] = Console(settings, staff_session_key(settings), products)
    app.cleanup_ctx.append(_rasa_client)
    login = app.router.add_resource("/login")
    login.add_route("GET", auth.login_page)
    login.add_route("POST", auth.log_in)
    app.router.add_post("/logout", auth.log_out)
    app.router.add_get("", pages.index)
    app.router.add_get("/", pages.home)
    app.router.add_get("/api/tickets", pages.tickets_api)
    app.router.add_get("/api/tickets/{ticket_id}", inbox.ticket_api)
    app.router.add_get("/tickets/{ticket_id}", inbox.ticket_page)
    app.router.add_post("/tickets/{ticket_id}/take", inbox.take)
    app.router.add_post("/tickets/{ticket_id}/reply", inbox.send_reply)
    app.router.add_post("/tickets/{ticket_id}/hand-back", inbox.hand_back)
    app.router.add_get("/conversations", conversations.conversations_page)
    app.router.add_get("/conversations.csv", conversations.conversations_csv)
    app.router.add_get("/conversations/{key}", conversations.conversation_page)
    app.router.add_get("/insights", insights.insights_page)
    app.router.add_get("/insights.csv", insights.insights_csv)
    app.router.add_get("/report", insights.report_page)
    teaching = app.router.add_resource("/teach")
    teaching.add_route("GET", teach.teach_page)
    teaching.add_route("POST", teach.label)
    static = app.router.add_static("/static/", STATIC_DIR)
    console.public = {login, static}
    return app


async def _rasa_client(app: web.Application) -> AsyncIterator[None]:
    """The console's connection to Rasa (staff replies), for as long as the app runs."""
    console = app[CONSOLE]
    console.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    yield
    await console.http.close()
    console.http = None
