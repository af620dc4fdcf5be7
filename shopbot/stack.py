"""Train the Rasa model when its inputs change, and run the three processes of the bot.

`make run` and the end-to-end tests start the bot the same way, through :class:`Stack`:
the shop database is made ready (schema, demo orders in demo mode), then the action server,
Rasa and the web server start, each told the same settings through ``SHOPBOT_*`` variables.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values
from sqlalchemy.engine import make_url

from shopcore.keys import internal_secret
from shopcore.settings import PROJECT_ROOT, Settings

logger = logging.getLogger(__name__)

RASA_VENV = PROJECT_ROOT / ".venv-rasa"
APP_VENV = PROJECT_ROOT / ".venv"
# bot/nlu holds the custom NLU components config.yml names: their code shapes the model too.
# retrieval/embeddings.py: the MiniLM NLU featurizer encodes with it.
BOT_INPUTS = ("config.yml", "domain.yml", "bot/data", "bot/nlu", "retrieval/embeddings.py")
READY_LINE = "Rasa server is up and running"


class StackError(RuntimeError):
    """A process of the bot could not be trained or started; the message says why."""


def rasa_executable() -> Path:
    rasa = RASA_VENV / "bin" / "rasa"
    if not rasa.exists():
        raise StackError(f"{rasa} is missing: run `make setup` first")
    return rasa


def process_env(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """This process's environment over the project's ``.env`` file.

    A shop keeps its channel secrets (TELEGRAM_TOKEN, ...) in ``.env`` next to its SHOPBOT_
    settings; Rasa and the action server read them from their environment, so the stack
    hands the file's values on. Exported variables win over the file."""
    path = root / ".env"
    from_file = dotenv_values(path) if path.is_file() else {}
    return {**{k: v for k, v in from_file.items() if v is not None}, **os.environ}


def rasa_env(settings: Settings | None = None,
             extra: dict[str, str] | None = None) -> dict[str, str]:
    """Rasa's environment: the project importable (custom channels and NLU components, the
    shared core), the settings the other processes get, Rasa's own switches."""
    env = process_env()
    env.update(settings.to_env() if settings else {})
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p),
        RASA_TELEMETRY_ENABLED="false",
        SQLALCHEMY_SILENCE_UBER_WARNING="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONWARNINGS="ignore",
    )
    if settings is not None:  # Sanic refuses larger bodies before buffering them
        env["SANIC_REQUEST_MAX_SIZE"] = str(settings.max_webhook_bytes)
    if settings is not None:  # endpoints.yml names them instead of holding the secrets
        env.update(endpoint_secrets(settings))
        env["TICKET_LOCK_LIFETIME"] = str(settings.conversation_lock_s)
    env.update(extra or {})
    return env


def endpoints_config(settings: Settings) -> dict[str, Any]:
    """Rasa's endpoints.yml for these settings: where the action server is, where the
    conversations are kept (SQLite file, or PostgreSQL beside the shop database) and, when
    Redis is set, the lock store that keeps several Rasa replicas' turns in order.

    Secrets stay out of the file: it names environment variables (``${...}``, which Rasa
    expands) that :func:`rasa_env` sets from the settings."""
    config: dict[str, Any] = {"action_endpoint": {"url": "${ACTION_ENDPOINT_URL}",
                                                  "token": "${ACTION_ENDPOINT_TOKEN}"}}
    tracker = make_url(settings.tracker_store_url)
    # Rasa's SQL tracker store, retrying through short outages (bot/trackers.py).
    store_type = "bot.trackers.ResilientSQLTrackerStore"
    if tracker.get_backend_name() == "sqlite":
        config["tracker_store"] = {"type": store_type, "dialect": "sqlite",
                                   "db": tracker.database}
    else:
        config["tracker_store"] = {
            "type": store_type, "dialect": tracker.get_backend_name(), "url": tracker.host,
            "port": tracker.port or 5432, "db": tracker.database,
            "username": tracker.username,
            **({"password": "${SHOPBOT_TRACKER_PASSWORD}"} if tracker.password else {}),
            **({"query": dict(tracker.query)} if tracker.query else {}),
        }
    if settings.redis_url:
        redis = make_url(settings.redis_url)
        config["lock_store"] = {
            "type": "bot.locks.AtomicRedisLockStore", "url": redis.host or "localhost",
            "port": redis.port or 6379, "db": int(redis.database or 0),
            "key_prefix": "shopbot",
            **({"password": "${SHOPBOT_REDIS_PASSWORD}"} if redis.password else {}),
        }
    return config


def endpoint_secrets(settings: Settings) -> dict[str, str]:
    """The passwords :func:`endpoints_config` refers to, for Rasa's environment."""
    secrets = {}
    tracker = make_url(settings.tracker_store_url)
    if tracker.password:
        secrets["SHOPBOT_TRACKER_PASSWORD"] = str(tracker.password)
    if settings.redis_url and make_url(settings.redis_url).password:
        secrets["SHOPBOT_REDIS_PASSWORD"] = str(make_url(settings.redis_url).password)
    return secrets


def write_endpoints(settings: Settings) -> Path:
    """Write :func:`endpoints_config` where Rasa reads it (var_dir/run/endpoints.yml)."""
    path = Path(settings.var_dir) / "run" / "endpoints.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not settings.tracker_store_url.startswith("postgresql"):
        Path(settings.tracker_db).parent.mkdir(parents=True, exist_ok=True)  # type: ignore[arg-type]
    path.write_text("# Written by shopbot from its settings on every start; edit those.\n"
                    + yaml.safe_dump(endpoints_config(settings), sort_keys=False),
                    encoding="utf-8")
    return path


def action_endpoint_env(settings: Settings) -> dict[str, str]:
    """Where Rasa calls the action server, with the token it must show (endpoints.yml)."""
    return {"ACTION_ENDPOINT_URL": f"http://{settings.host}:{settings.action_port}/webhook",
            "ACTION_ENDPOINT_TOKEN": internal_secret(settings)}


def _input_files(root: Path) -> Iterable[Path]:
    for name in BOT_INPUTS:
        path = root / name
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*")
                              if p.is_file() and "__pycache__" not in p.parts)
        elif path.is_file():
            yield path


def bot_fingerprint(root: Path = PROJECT_ROOT) -> str:
    """Hash of everything `rasa train` reads; a new hash means the model must be retrained."""
    digest = hashlib.sha256()
    for path in _input_files(root):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def train_bot(models_dir: Path, force: bool = False, root: Path = PROJECT_ROOT) -> Path:
    """The trained model for the current bot data, training it only when it is missing."""
    name = f"bot-{bot_fingerprint(root)}"
    model = models_dir / f"{name}.tar.gz"
    if model.exists() and not force:
        logger.info("Rasa model is up to date: %s", model)
        return model
    models_dir.mkdir(parents=True, exist_ok=True)
    command = [
        str(rasa_executable()), "train",
        "--config", str(root / "config.yml"),
        "--domain", str(root / "domain.yml"),
        "--data", str(root / "bot" / "data"),
        "--out", str(models_dir),
        "--fixed-model-name", name,
    ]
    logger.info("training the Rasa model (about a minute)...")
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=root, env=rasa_env(), capture_output=True, text=True)
    if completed.returncode != 0 or not model.exists():
        tail = (completed.stdout + completed.stderr)[-3000:]
        raise StackError(f"rasa train failed (exit {completed.returncode}):\n{tail}")
    logger.info("trained %s in %.0f s", model.name, time.perf_counter() - started)
    return model


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except (urllib.error.URLError, OSError):
        return None


@dataclass
class Service:
    """One child process with its log file and readiness check."""

    name: str
    command: list[str]
    health_url: str
    log_path: Path
    env: dict[str, str]
    ready_line: str | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command, cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()

    def is_ready(self) -> bool:
        if _get(self.health_url) != 200:
            return False
        if self.ready_line is None:
            return True
        return self.ready_line in self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if not self.alive():
            return
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout)
        except ProcessLookupError:
            pass


class ServiceGroup:
    """Services started together and stopped in reverse order."""

    services: list[Service]

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)


@dataclass
class Stack(ServiceGroup):
    """Action server, Rasa server and demo web server on loopback ports."""

    settings: Settings
    model: Path
    log_dir: Path | None = None  # default: the settings' logs_dir
    with_web: bool = True
    services: list[Service] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.log_dir = Path(self.log_dir or self.settings.logs_dir)  # type: ignore[arg-type]
        if not self.settings.internal_secret:  # every child gets the same one (to_env)
            self.settings = self.settings.replace(
                internal_secret=internal_secret(self.settings))

    @property
    def rasa_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.rasa_port}"

    @property
    def action_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.action_port}"

    @property
    def web_url(self) -> str:
        host = self.settings.web_host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:" \
               f"{self.settings.web_port}"

    def _app_env(self) -> dict[str, str]:
        env = process_env()
        env.update(self.settings.to_env())
        env.update(
            TOKENIZERS_PARALLELISM="false",
            PYTHONUNBUFFERED="1",
            SANIC_REQUEST_MAX_SIZE=str(self.settings.max_webhook_bytes),
        )
        return env

    def build(self) -> list[Service]:
        s = self.settings
        assert self.log_dir is not None
        python = str(APP_VENV / "bin" / "python")
        services = [
            Service(
                "action server",
                [python, "-m", "actions.server", "--port", str(s.action_port)],
                f"{self.action_url}/health", self.log_dir / "actions.log", self._app_env(),
            ),
            Service(
                "rasa server",
                [str(rasa_executable()), "run", "--model", str(self.model),
                 "--endpoints", str(write_endpoints(s)),
                 "--credentials", str(PROJECT_ROOT / "credentials.yml"),
                 "--interface", s.host, "--port", str(s.rasa_port)],
                f"{self.rasa_url}/", self.log_dir / "rasa.log",
                rasa_env(s, action_endpoint_env(s)),
                ready_line=READY_LINE,
            ),
        ]
        if self.with_web:
            services.append(self.web_service())
        return services

    def web_service(self) -> Service:
        assert self.log_dir is not None
        return Service(
            "web demo",
            [str(APP_VENV / "bin" / "python"), "-m", "shopbot.web",
             "--port", str(self.settings.web_port)],
            f"{self.web_url}/healthz", self.log_dir / "web.log", self._app_env(),
        )

    def prepare(self) -> None:
        """The shop database ready before any process opens it: migrated to the newest
        schema (here, once, not by each replica), and in demo mode the demo shoppers' orders
        (idempotent; from the store's first products)."""
        from shopcore.db import open_database
        from shopcore.migrations import upgrade

        upgrade(self.settings.shop_database_url)
        database = open_database(self.settings.shop_database_url)
        if not self.settings.demo:
            return
        from retrieval.store import ProductStore
        from shop.demo import DEMO_PRODUCT_POOL, seed_demo_orders
        from shop.orders import OrderStore
        from shop.records import policy_terms

        store = ProductStore.from_settings(self.settings)
        products = store.get(sorted(store.all_ids())[:DEMO_PRODUCT_POOL])
        seed_demo_orders(OrderStore(database, policy_terms()[0]), products)

    def start(self, timeout: float = 240.0) -> None:
        """Start every service and wait until each answers; stop all if one fails."""
        self.prepare()
        self.services = self.build()
        for service in self.services:
            service.start()
        deadline = time.monotonic() + timeout
        pending = list(self.services)
        try:
            while pending:
                for service in list(pending):
                    if not service.alive():
                        raise StackError(
                            f"{service.name} exited during start-up; its log "
                            f"({service.log_path}) ends with:\n{service.log_tail()}"
                        )
                    if service.is_ready():
                        logger.info("%s is ready", service.name)
                        pending.remove(service)
                if time.monotonic() > deadline:
                    names = ", ".join(s.name for s in pending)
                    raise StackError(f"timed out waiting for {names}")
                time.sleep(0.5)
        except BaseException:
            self.stop()
            raise

    def restart(self, name: str, timeout: float = 240.0) -> None:
        """Stop one service (if it still runs) and start it again; back when it answers."""
        service = self.service(name)
        service.stop()
        service.start()
        deadline = time.monotonic() + timeout
        while not service.is_ready():
            if not service.alive():
                raise StackError(f"{name} exited during restart:\n{service.log_tail()}")
            if time.monotonic() > deadline:
                raise StackError(f"timed out waiting for {name} to restart")
            time.sleep(0.5)

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt, so every way of stopping the bot stops
    its children too. Set explicitly: a process started from a script's background job
    inherits SIGINT *ignored*, and Python then never raises KeyboardInterrupt."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for which in (signal.SIGINT, signal.SIGTERM):
        signal.signal(which, interrupt)


def wait_forever(stack: Stack) -> None:
    """Block until Ctrl-C or a child dies, then stop every child."""
    try:
        while all(s.alive() for s in stack.services):
            time.sleep(1)
        dead = [s for s in stack.services if not s.alive()]
        for service in dead:
            print(f"{service.name} stopped unexpectedly; log tail:\n{service.log_tail()}",
                  file=sys.stderr)
    except KeyboardInterrupt:
        print("\nstopping...", file=sys.stderr)
    finally:
        stack.stop()
