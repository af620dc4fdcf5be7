"""The servers a scaled shop runs beside the bot, started from Debian and PyPI packages.

`shopbot run --scale N` and the tests start PostgreSQL, Redis, a Chroma server and HAProxy
on one machine the same way: each is a :class:`shopbot.stack.Service` (its own log, a
readiness check, stopped with its process group), with its data in a folder of its own.
In production the same settings point at servers run elsewhere and none of this starts.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

from shopbot.stack import APP_VENV, Service, StackError

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
POSTGRES_USER = "postgres"  # PostgreSQL refuses to run as root: as root, run it as this user
DATABASE = "shopbot"


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class TcpService(Service):
    """A service that is ready when its port accepts connections (no HTTP health page)."""

    host: str = "127.0.0.1"
    port: int = 0

    def is_ready(self) -> bool:
        return port_open(self.host, self.port)


def _tcp_service(name: str, command: list[str], port: int, log_path: Path,
                 env: dict[str, str] | None = None) -> TcpService:
    service = TcpService(name, command, "", log_path, env or dict(os.environ))
    service.port = port
    return service


def _postgres_tool(name: str) -> str:
    path = POSTGRES_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        raise StackError(f"PostgreSQL's {name} is missing: apt-get install postgresql")
    return found


def _as_postgres_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", POSTGRES_USER, "--", *command]


def _hand_to_postgres_user(path: Path) -> None:
    if os.geteuid() != 0:
        return
    user = pwd.getpwnam(POSTGRES_USER)
    for parent in [path, *path.parents]:  # the user must be able to reach the folder
        if parent == Path("/"):
            break
        if parent == path:
            os.chown(parent, user.pw_uid, user.pw_gid)
        elif not os.stat(parent).st_mode & 0o001:
            os.chmod(parent, os.stat(parent).st_mode | 0o001)


def postgres(data_dir: Path, port: int, log_path: Path) -> TcpService:
    """A PostgreSQL server on loopback with database ``shopbot`` (cluster made on first use,
    trust authentication on loopback only: it listens nowhere else)."""
    data_dir = Path(data_dir).resolve()
    if not (data_dir / "PG_VERSION").exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o700)
        _hand_to_postgres_user(data_dir)
        done = subprocess.run(
            _as_postgres_user([_postgres_tool("initdb"), "-D", str(data_dir), "-U", "shopbot",
                               "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]),
            capture_output=True, text=True)
        if done.returncode != 0:
            raise StackError(f"initdb failed:\n{done.stdout}{done.stderr}")
    return _tcp_service(
        "postgresql",
        _as_postgres_user([_postgres_tool("postgres"), "-D", str(data_dir), "-p", str(port),
                           "-h", "127.0.0.1", "-k", str(data_dir),
                           "-c", "max_connections=200", "-c", "fsync=on"]),
        port, log_path)


def postgres_url(port: int, database: str = DATABASE) -> str:
    return f"postgresql://shopbot@127.0.0.1:{port}/{database}"


def create_database(port: int, database: str = DATABASE, timeout: float = 30.0) -> None:
    """Make ``database`` on the server at ``port`` unless it exists."""
    psql = [_postgres_tool("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "shopbot",
            "-d", "postgres", "-tAc"]
    deadline = time.monotonic() + timeout
    while True:
        found = subprocess.run(
            [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{database}'"],
            capture_output=True, text=True)
        if found.returncode == 0:
            break
        if time.monotonic() > deadline:  # accepting TCP before it accepts logins
            raise StackError(f"PostgreSQL does not answer: {found.stderr}")
        time.sleep(0.3)
    if found.stdout.strip() != "1":
        made = subprocess.run([*psql, f'CREATE DATABASE "{database}"'],
                              capture_output=True, text=True)
        if made.returncode != 0:
            raise StackError(f"could not create database {database}: {made.stderr}")


def redis(data_dir: Path, port: int, log_path: Path) -> TcpService:
    """Redis on loopback, append-only file in ``data_dir`` (locks survive a restart)."""
    binary = shutil.which("redis-server")
    if not binary:
        raise StackError("redis-server is missing: apt-get install redis-server")
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    return _tcp_service(
        "redis",
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir),
         "--appendonly", "yes", "--save", "", "--protected-mode", "yes"],
        port, log_path)


def chroma_server(data_dir: Path, port: int, log_path: Path) -> Service:
    """Chroma's own server (`chroma run`, from the app virtualenv) over ``data_dir``."""
    chroma = APP_VENV / "bin" / "chroma"
    if not chroma.exists():
        raise StackError(f"{chroma} is missing: run `make setup` first")
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    return Service("chroma server",
                   [str(chroma), "run", "--path", str(data_dir), "--host", "127.0.0.1",
                    "--port", str(port)],
                   f"http://127.0.0.1:{port}/api/v2/heartbeat", log_path, env)


def haproxy(config_path: Path, port: int, log_path: Path) -> TcpService:
    """HAProxy in the foreground (``-db``) with the configuration written by the caller."""
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(binary).exists():
        raise StackError("haproxy is missing: apt-get install haproxy")
    return _tcp_service("haproxy", [binary, "-db", "-f", str(config_path)], port, log_path)


def wait_ready(services: list[Service], timeout: float = 60.0) -> None:
    """Block until every service answers (raise with its log tail if one exits)."""
    deadline = time.monotonic() + timeout
    pending = list(services)
    while pending:
        for service in list(pending):
            if not service.alive():
                raise StackError(f"{service.name} exited during start-up:\n"
                                 f"{service.log_tail()}")
            if service.is_ready():
                pending.remove(service)
        if not pending:
            return
        if time.monotonic() > deadline:
            raise StackError(f"timed out waiting for {', '.join(s.name for s in pending)}")
        time.sleep(0.2)
