"""The action server: rasa_sdk's app for the ``actions`` package, warmed up before it serves.

``python -m actions.server --port 5055`` is what the stack runs. It is rasa_sdk's own server
(same ``/webhook``, ``/health`` and ``/actions`` endpoints) with two differences: the
search index, models and shop database are opened before the first request, in the worker
that will serve it, instead of at import time; no browser origin is allowed; and every
request but ``/health`` must carry the internal secret as ``?token=`` (Rasa adds it from
``action_endpoint.token`` in endpoints.yml), so nobody else can run an action for a shopper.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging

from rasa_sdk.endpoint import create_app_for_serve
from rasa_sdk.executor import ActionExecutor
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic.worker.loader import AppLoader

from actions.services import services
from shopcore.keys import internal_secret
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
    secret = internal_secret(get_settings()).encode()

    async def require_token(request: Request) -> HTTPResponse | None:
        if request.path == "/health":
            return None
        shown = (request.args.get("token") or "").encode()
        if hmac.compare_digest(shown, secret):
            return None
        logger.warning("refused %s %s without the action token from %s", request.method,
                       request.path, request.ip)
        return response.json({"error": "not allowed"}, status=401)

    app.register_middleware(require_token, "request")
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
