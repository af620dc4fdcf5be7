"""The action server: rasa_sdk's app for the ``actions`` package, warmed up before it serves.

``python -m actions.server --port 5055`` is what the stack runs. It is rasa_sdk's own server
(same ``/webhook``, ``/health`` and ``/actions`` endpoints) with two differences: the
search index, models and shop database are opened before the first request, in the worker
that will serve it, instead of at import time; and no browser origin is allowed (the action
server is called by Rasa, never by a page).
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from rasa_sdk.endpoint import create_app_for_serve
from rasa_sdk.executor import ActionExecutor
from sanic import Sanic
from sanic.worker.loader import AppLoader

from actions.services import services
from shopcore.logs import setup_logging
from shopcore.settings import get_settings

logger = logging.getLogger(__name__)


async def _warm_up(app: Sanic) -> None:
    await asyncio.to_thread(services().warm_up)


def build_app() -> Sanic:
    """The app, made again in the worker process by Sanic's loader (so: module level)."""
    executor = ActionExecutor()
    executor.register_package("actions")
    app = create_app_for_serve(executor, cors_origins=[])
    app.register_listener(_warm_up, "before_server_start")
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run shopbot's action server.")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    setup_logging(True)
    settings = get_settings()
    loader = AppLoader(factory=build_app)
    app = loader.load()
    app.prepare(host=settings.host, port=args.port or settings.action_port, workers=1,
                access_log=False)
    Sanic.serve(primary=app, app_loader=loader)


if __name__ == "__main__":
    main()
