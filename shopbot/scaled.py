"""The scaled topology on one machine: `shopbot run --scale N` and the scale-out tests.

PostgreSQL (shop tables and Rasa's tracker store), Redis (Rasa's lock store) and a Chroma
server (the product store of record) are the :class:`Backends`; N Rasa replicas and N
action-server replicas sit behind HAProxy, which listens on the ports a single process would
use (``rasa_port``, ``action_port``), so the web server, Rasa's action endpoint and every
tool reach "Rasa" and "the action server" exactly as in the embedded setup.

HAProxy hashes Rasa requests on the shopper (``X-Shopbot-Sender``, set by the web server), so
one conversation normally stays on one replica; the Redis lock store keeps turns in order
when it does not (a replica died, a platform webhook without the header). A replica that
stops answering its health check is taken out within about two seconds and rejoins when it
answers again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from shopbot import servers
from shopbot.stack import (
    APP_VENV,
    READY_LINE,
    Service,
    ServiceGroup,
    Stack,
    StackError,
    action_endpoint_env,
    free_port,
    rasa_env,
    rasa_executable,
    write_endpoints,
)
from shopcore.keys import SENDER_HEADER
from shopcore.settings import PROJECT_ROOT, Settings


@dataclass
class Backends(ServiceGroup):
    """PostgreSQL, Redis and a Chroma server with their data under ``root``: those of the
    three that the settings do not already point at (a shop's own servers are used as
    they are; only the missing ones start here)."""

    root: Path
    log_dir: Path
    with_postgres: bool = True
    with_redis: bool = True
    with_chroma: bool = True
    pg_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    chroma_port: int = field(default_factory=free_port)
    services: list[Service] = field(default_factory=list)

    @classmethod
    def missing_from(cls, settings: Settings, root: Path, log_dir: Path) -> Backends:
        database = settings.database_url or ""
        return cls(root, log_dir, with_postgres=not database.startswith("postgresql"),
                   with_redis=not settings.redis_url, with_chroma=not settings.chroma_host)

    def build(self) -> list[Service]:
        services: list[Service] = []
        if self.with_postgres:
            services.append(servers.postgres(self.root / "postgresql", self.pg_port,
                                             self.log_dir / "postgresql.log"))
        if self.with_redis:
            services.append(servers.redis(self.root / "redis", self.redis_port,
                                          self.log_dir / "redis.log"))
        if self.with_chroma:
            services.append(servers.chroma_server(self.root / "chroma", self.chroma_port,
                                                  self.log_dir / "chroma.log"))
        return services

    def start(self, timeout: float = 90.0, attempts: int = 2) -> None:
        """Start the servers and wait for them; a free port taken by someone else between
        choosing it and binding it (it happens) is chosen again, once."""
        for attempt in range(attempts):
            self.services = self.build()
            for service in self.services:
                service.start()
            try:
                servers.wait_ready(self.services, timeout)
                if self.with_postgres:
                    servers.create_database(self.pg_port)
                return
            except StackError:
                self.stop()
                if attempt + 1 == attempts:
                    raise
                self.pg_port, self.redis_port, self.chroma_port = (
                    free_port(), free_port(), free_port())
            except BaseException:
                self.stop()
                raise

    def restart(self, name: str, down_s: float = 0.0, timeout: float = 60.0) -> None:
        """Stop one backend, keep it down ``down_s`` seconds, start it and wait for it."""
        service = self.service(name)
        service.stop()
        time.sleep(down_s)
        service.start()
        servers.wait_ready([service], timeout)

    def settings_changes(self) -> dict[str, object]:
        """The settings that point at the servers started here."""
        changes: dict[str, object] = {}
        if self.with_postgres:
            changes["database_url"] = servers.postgres_url(self.pg_port)
        if self.with_redis:
            changes["redis_url"] = f"redis://127.0.0.1:{self.redis_port}/1"
        if self.with_chroma:
            changes.update(chroma_host="127.0.0.1", chroma_port=self.chroma_port)
        return changes

    def apply(self, settings: Settings) -> Settings:
        """``settings`` pointed at these servers."""
        return settings.replace(**self.settings_changes())


def haproxy_config(settings: Settings, rasa_ports: list[int], action_ports: list[int],
                   stats_port: int) -> str:
    """HAProxy in front of the replicas, on the ports one process of each would use.

    Only connection failures are retried on another replica: a request that reached a
    replica may have changed a cart, so it is never sent twice."""
    host = settings.host
    rasa = "\n".join(f"    server rasa{i} {host}:{port} check inter 1s fall 2 rise 2"
                     for i, port in enumerate(rasa_ports, 1))
    actions = "\n".join(f"    server actions{i} {host}:{port} check inter 1s fall 2 rise 2"
                        for i, port in enumerate(action_ports, 1))
    return f"""# Written by `shopbot run --scale {len(rasa_ports)}` on each start.
global
    maxconn 4096
    log stdout format raw local0 warning

defaults
    mode http
    log global
    timeout connect 2s
    timeout client 180s
    timeout server 180s
    timeout queue 30s
    retries 2
    option redispatch
    retry-on conn-failure

frontend rasa
    bind {host}:{settings.rasa_port}
    default_backend rasa_replicas

backend rasa_replicas
    balance hdr({SENDER_HEADER})
    hash-type consistent
    option httpchk GET /
{rasa}

frontend actions
    bind {host}:{settings.action_port}
    default_backend action_replicas

backend action_replicas
    balance leastconn
    option httpchk GET /health
{actions}

# Which replicas are up, for people and tests: /stats (page) and /stats;csv.
listen stats
    bind {host}:{stats_port}
    stats enable
    stats uri /stats
    stats refresh 5s
"""


@dataclass
class ScaledStack(Stack):
    """N Rasa and N action-server replicas behind HAProxy, and the web server.

    The settings must already point at shared servers (:meth:`Backends.apply`): replicas
    of one kind share nothing but the database, Redis and the Chroma server."""

    replicas: int = 2
    rasa_ports: list[int] = field(default_factory=list)
    action_ports: list[int] = field(default_factory=list)
    stats_port: int = field(default_factory=free_port)

    def build(self) -> list[Service]:
        s = self.settings
        assert self.log_dir is not None
        if not self.rasa_ports:
            self.rasa_ports = [free_port() for _ in range(self.replicas)]
            self.action_ports = [free_port() for _ in range(self.replicas)]
        python = str(APP_VENV / "bin" / "python")
        endpoints = write_endpoints(s)
        services: list[Service] = []
        for i, port in enumerate(self.action_ports, 1):
            services.append(Service(
                f"action server {i}", [python, "-m", "actions.server", "--port", str(port)],
                f"http://{s.host}:{port}/health", self.log_dir / f"actions-{i}.log",
                self._app_env()))
        for i, port in enumerate(self.rasa_ports, 1):
            services.append(Service(
                f"rasa server {i}",
                [str(rasa_executable()), "run", "--model", str(self.model),
                 "--endpoints", str(endpoints),
                 "--credentials", str(PROJECT_ROOT / "credentials.yml"),
                 "--interface", s.host, "--port", str(port)],
                f"http://{s.host}:{port}/", self.log_dir / f"rasa-{i}.log",
                rasa_env(s, action_endpoint_env(s)), ready_line=READY_LINE))
        config = Path(s.var_dir) / "run" / "haproxy.cfg"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(haproxy_config(s, self.rasa_ports, self.action_ports,
                                         self.stats_port), encoding="utf-8")
        services.append(servers.haproxy(config, s.rasa_port, self.log_dir / "haproxy.log"))
        if self.with_web:
            services.append(self.web_service())
        return services

    def start(self, timeout: float = 240.0) -> None:
        """Start everything, then wait until HAProxy has seen every replica answer its
        health check (it marks them down while they start, and up again only after two
        good checks): only then does a shopper's first message find a replica."""
        super().start(timeout)
        deadline = time.monotonic() + 30
        while True:
            try:
                states = self.replica_states()
            except OSError:
                states = {}
            if states and all(state == "UP" for state in states.values()):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise StackError(f"HAProxy does not see every replica up: {states}")
            time.sleep(0.3)

    @property
    def stats_url(self) -> str:
        return f"http://{self.settings.host}:{self.stats_port}/stats"

    def replica_states(self) -> dict[str, str]:
        """HAProxy's view of each replica: ``{"rasa1": "UP", "actions2": "DOWN", ...}``."""
        import csv
        import io
        import urllib.request

        with urllib.request.urlopen(self.stats_url + ";csv", timeout=5) as answer:
            rows = csv.DictReader(io.StringIO(answer.read().decode().lstrip("# ")))
            return {row["svname"]: row["status"].split()[0] for row in rows
                    if row["svname"] not in ("FRONTEND", "BACKEND")}
