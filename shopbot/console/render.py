"""The console's HTML: one layout, and every value escaped on the way in.

Ticket reasons and transcripts are what shoppers typed, so anything interpolated goes
through :func:`h`; pages load only the console's own stylesheet (no CDN, no inline script),
and the Content-Security-Policy set by the console forbids anything else.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

STATIC = "/console/static"
SECTIONS = (("/console", "Inbox"), ("/console/conversations", "Conversations"),
            ("/console/insights", "Insights"), ("/console/teach", "Teach the bot"))


def h(value: object) -> str:
    """``value`` as HTML text, quotes included (safe in element content and attributes)."""
    return escape(str(value), quote=True)


def page(title: str, body: str, *, status: int = 200, staff_email: str = "",
         csrf: str = "", section: str = "") -> web.Response:
    """A whole console page; with ``staff_email``, the header has the sign-out button
    (a form carrying the session's CSRF token)."""
    account = nav = ""
    if staff_email:
        current = ' aria-current="page"'
        links = "".join(f'<a href="{href}"{current if label == section else ""}>{label}</a>'
                        for href, label in SECTIONS)
        nav = f'<nav class="sections">{links}</nav>'
        account = (
            f'<form class="account" method="post" action="/console/logout">'
            f'<span>{h(staff_email)}</span>'
            f'<input type="hidden" name="csrf" value="{h(csrf)}">'
            f'<button type="submit">Sign out</button></form>')
    html = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
{f'<meta name="csrf-token" content="{h(csrf)}">' if csrf else ''}
<title>{h(title)} - shopbot console</title>
<link rel="stylesheet" href="{STATIC}/console.css">
</head>
<body>
<header><a class="brand" href="/console">shopbot console</a>{nav}{account}</header>
<main>
{body}
</main>
</body>
</html>
"""
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
