"""Insights: what shoppers do with the bot over a date range, as charts and tables.

Every table comes from what the shop already records: Rasa's tracker store (conversations,
messages, fallbacks, recommendations acted on), the search log (top searches, and the
searches that found nothing or needed relaxing: what the catalog lacks), the interaction
log (the funnel shown -> opened -> carted -> bought) and photo searches by predicted type.
The page draws them with the vendored Chart.js (no CDN: the console's CSP allows only its
own files) from a JSON block, shows each as an HTML table, and each downloads as CSV.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from shopbot.console.conversations import BadFilter, csv_cell, csv_response, epoch_range, period
from shopbot.console.render import h, page
from shopbot.console.state import CONSOLE, SESSION, STAFF, Console
from shopbot.identity import csrf_token
from shopcore.conversations import daily_activity, recommendation_clicks

CHART_SCRIPT = "/console/static/vendor/chart-4.6.2.umd.min.js"
MAX_DAYS = 366
TOP = 20
FUNNEL_STEPS = {"shown": "Shown", "opened": "Opened", "added_to_cart": "Carted",
                "purchased": "Bought"}
# name -> (title, what it says, columns as (key, heading))
TABLES: dict[str, tuple[str, str, tuple[tuple[str, str], ...]]] = {
    "daily": ("Conversations and messages per day", "Shoppers who wrote, and their messages.",
              (("day", "Day"), ("conversations", "Conversations"), ("messages", "Messages"),
               ("fallbacks", "Fell back"), ("fallback_rate", "Fallback rate %"))),
    "top_searches": ("Top searches", "What shoppers searched for most.",
                     (("query", "Search"), ("searches", "Searches"),
                      ("nothing_found", "Nothing found"), ("relaxed", "Relaxed"))),
    "catalog_gaps": ("Searches that found nothing or needed relaxing",
                     "What the catalog lacks: no product matched everything asked.",
                     (("query", "Search"), ("searches", "Searches"),
                      ("nothing_found", "Nothing found"), ("relaxed", "Relaxed"))),
    "funnel": ("Funnel", "Products shown, opened, carted and bought, and by how many shoppers.",
               (("step", "Step"), ("events", "Products"), ("shoppers", "Shoppers"))),
    "recommendations": ("Recommendation clicks",
                        "Recommendations shown, and those the shopper then opened, compared "
                        "or carted.",
                        (("day", "Day"), ("shown", "Shown"), ("opened", "Acted on"))),
    "photos": ("Photo uploads by predicted type",
               "Photo searches per product type the photo was taken for, with the "
               "classifier's confidence.",
               (("predicted", "Predicted type"), ("photos", "Photos"),
                ("mean_confidence", "Mean confidence"), ("confident", "Confident (≥ 0.5)"))),
}


def gather(console: Console, start: date, end: date, only: str | None = None
           ) -> dict[str, list[dict[str, Any]]]:
    """Every table (or just ``only``) for the days ``start`` to ``end`` (blocking: run in
    a thread)."""
    since, until = epoch_range(start, end)
    tracker = console.settings.tracker_store_url
    stores = console.open_stores()

    def daily() -> list[dict[str, Any]]:
        activity = daily_activity(tracker, since, until)
        rows = []
        for offset in range((end - start).days + 1):
            day = (start + timedelta(days=offset)).isoformat()
            found = activity.get(day, {"conversations": 0, "messages": 0, "fallbacks": 0})
            rate = round(100 * found["fallbacks"] / found["messages"], 1) \
                if found["messages"] else 0.0
            rows.append({"day": day, **found, "fallback_rate": rate})
        return rows

    builders: dict[str, Any] = {
        "daily": daily,
        "top_searches": lambda: [vars(c) for c in stores.searches.counts(since, until, TOP)],
        "catalog_gaps": lambda: [vars(c) for c in stores.searches.counts(
            since, until, TOP, problems_only=True)],
        "funnel": lambda: [{"step": FUNNEL_STEPS[k], **v}
                           for k, v in stores.events.funnel(since, until).items()],
        "recommendations": lambda: [{"day": d, **v} for d, v in
                                    recommendation_clicks(tracker, since, until).items()],
        "photos": lambda: [{"predicted": p.predicted, "photos": p.searches,
                            "mean_confidence": round(p.mean_confidence, 3),
                            "confident": p.confident}
                           for p in stores.searches.photo_types(since, until)],
    }
    return {name: build() for name, build in builders.items() if only in (None, name)}


def _range(request: web.Request) -> tuple[date, date]:
    start, end = period(request.query)
    if (end - start).days >= MAX_DAYS:
        raise BadFilter(f"Pick at most {MAX_DAYS} days.")
    return start, end


def _table_html(name: str, rows: list[dict[str, Any]], query: str) -> str:
    title, about, columns = TABLES[name]
    head = "".join(f"<th>{h(heading)}</th>" for _, heading in columns)
    body = "".join("<tr>" + "".join(f"<td>{h(row[key])}</td>" for key, _ in columns) + "</tr>"
                   for row in rows)
    csv_link = f"/console/insights.csv?table={name}" + (f"&{query}" if query else "")
    shown = (f'<table class="numbers" id="table-{name}"><thead><tr>{head}</tr></thead>'
             f"<tbody>{body}</tbody></table>" if rows else
             '<p class="empty">Nothing in this period.</p>')
    chart = "" if name == "daily" else f'<canvas id="chart-{name}"></canvas>'
    extra = ('<canvas id="chart-daily"></canvas><canvas id="chart-fallback"></canvas>'
             if name == "daily" else "")
    return (f'<section class="insight" id="{name}"><h2>{h(title)}</h2><p class="meta">'
            f'{h(about)} <a href="{h(csv_link)}">CSV</a></p>{extra}{chart}{shown}</section>')


def chart_data(tables: dict[str, list[dict[str, Any]]]) -> str:
    """The tables as JSON safe inside a <script type="application/json"> element: shoppers'
    search words may hold "</script>", so <, > and & are escaped."""
    text = json.dumps(tables, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


async def insights_page(request: web.Request) -> web.Response:
    """GET /console/insights?from=&to=: charts and tables for the period."""
    console = request.app[CONSOLE]
    problem = ""
    try:
        start, end = _range(request)
    except BadFilter as bad:
        start, end = period({})
        problem = f'<p class="error" role="alert">{h(bad)}</p>'
    tables = await asyncio.to_thread(gather, console, start, end)
    query = f"from={start.isoformat()}&to={end.isoformat()}"
    sections = "".join(_table_html(name, tables[name], query) for name in TABLES)
    body = f"""<h1>Insights <small>{start.isoformat()} to {end.isoformat()}</small></h1>
<p class="meta">How well the bot's parts do on the benchmarks:
<a href="/console/report">evaluation report</a>.</p>
<form class="filters" method="get" action="/console/insights">
<label>From <input type="date" name="from" value="{start.isoformat()}"></label>
<label>To <input type="date" name="to" value="{end.isoformat()}"></label>
<button type="submit">Show</button>
</form>
{problem}
<div class="insights">{sections}</div>
<script type="application/json" id="insights-data">{chart_data(tables)}</script>
<script src="{CHART_SCRIPT}"></script>
<script src="/console/static/insights.js"></script>"""
    return page("Insights", body, staff_email=request[STAFF].email, section="Insights",
                csrf=csrf_token(console.key, request[SESSION].session),
                status=400 if problem else 200)


# The report is one file with its images inline (data: URIs) and its own <style>; it runs
# no script at all.
REPORT_POLICY = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                 "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


async def report_page(request: web.Request) -> web.StreamResponse:
    """GET /console/report: the latest `shopbot report` (<var>/report/report.html)."""
    console = request.app[CONSOLE]
    path = Path(console.settings.var_dir) / "report" / "report.html"
    if not path.is_file():
        return page("Evaluation report", "<h1>Evaluation report</h1><p>No report yet: run "
                    "<code>shopbot report</code> on the server (after the benchmarks, see "
                    "the README) and reload.</p>", staff_email=request[STAFF].email,
                    section="Insights", status=404,
                    csrf=csrf_token(console.key, request[SESSION].session))
    html = await asyncio.to_thread(path.read_text, encoding="utf-8")
    return web.Response(text=html, content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": REPORT_POLICY})


async def insights_csv(request: web.Request) -> web.Response:
    """GET /console/insights.csv?table=<name>&from=&to=: one table as CSV."""
    name = request.query.get("table", "")
    if name not in TABLES:
        return web.Response(status=400, text="table must be one of: " + ", ".join(TABLES))
    try:
        start, end = _range(request)
    except BadFilter as bad:
        return web.Response(status=400, text=str(bad))
    rows = (await asyncio.to_thread(gather, request.app[CONSOLE], start, end, name))[name]
    columns = TABLES[name][2]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([key for key, _ in columns])
    for row in rows:
        writer.writerow([csv_cell(v) if isinstance(v := row[key], str) else v
                         for key, _ in columns])
    return csv_response(out.getvalue(), f"{name}-{start}-{end}.csv")
