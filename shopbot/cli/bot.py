"""`shopbot train`, `shopbot run` and `shopbot shell`: the Rasa model and the running bot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from shopbot.cli.catalog import run_ingest
from shopbot.cli.common import StoreOption, console, fail, images_for, store_for
from shopcore.logs import setup_logging
from shopcore.settings import PROJECT_ROOT, Settings, get_settings


def train(
    force: Annotated[bool, typer.Option(help="Retrain even if nothing changed.")] = False,
) -> None:
    """Train the Rasa model if config, domain or training data changed."""
    setup_logging(True)
    from shopbot.stack import StackError, train_bot

    try:
        model = train_bot(Path(get_settings().models_dir), force=force)  # type: ignore[arg-type]
    except StackError as exc:
        fail(str(exc), 1)
    console.print(f"model: {model}")


def bootstrap_recommender(settings: Settings) -> subprocess.Popen[bytes] | None:
    """A new shop has no interaction log: train a clearly-labelled demo recommender on
    simulated sessions, once, while the bot starts. Until it is saved the bot recommends by
    content similarity; the action server picks the file up when it lands. It is a child
    process (log in the logs folder) so Ctrl-C stops it with everything else."""
    target = settings.recommender_path
    if target.is_file():
        return None
    console.print("training a demo recommender on SYNTHETIC shopper sessions in the "
                  "background (about 90 s, once; train on your own events with "
                  "`shopbot recsys train --events`)")
    log_path = Path(settings.logs_dir) / "demo-recommender.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "shopbot", "recsys", "demo", "--store",
             str(settings.store_path), "--out", str(target)],
            cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)


def _stop_child(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def run(
    catalog: Annotated[Path | None, typer.Option("--catalog", help="Catalog file.")] = None,
    images: Annotated[Path | None, typer.Option("--images", help="Photos folder.")] = None,
    store: StoreOption = None,
    scale: Annotated[int, typer.Option(
        "--scale", min=0, max=16,
        help="Run N Rasa and N action-server replicas behind HAProxy, on PostgreSQL, Redis "
             "and a Chroma server (started here unless SHOPBOT_DATABASE_URL, "
             "SHOPBOT_REDIS_URL, SHOPBOT_CHROMA_HOST point at yours). 0: one embedded "
             "process of each.")] = 0,
) -> None:
    """Ingest, train if needed, start action server + Rasa + demo page; Ctrl-C stops all."""
    setup_logging(True)
    from shopbot.stack import Stack, StackError, stop_on_signals, train_bot, wait_forever

    stop_on_signals()
    backends = start_backends(scale) if scale else None
    settings = get_settings()
    settings = settings.replace(store_dir=store_for(catalog, store, settings))
    photos = images_for(catalog, images)
    trainer = None
    stack: Stack | None = None
    try:
        if backends and backends.with_chroma:
            move_embedded_catalog(settings)
        report = run_ingest(catalog, photos, settings.store_path)
        console.print(f"catalog: {report.loaded} products in {settings.store_dir} "
                      f"({report.added} added, {report.updated} updated)")
        trainer = bootstrap_recommender(settings)
        if photos and not (settings.store_path / "image_head.json").is_file():
            console.print(f"photos are matched with the generic ImageNet mapping; for better "
                          f"photo recognition run: shopbot images train --images {photos} "
                          f"--store {settings.store_dir}")
        model = train_bot(Path(settings.models_dir))  # type: ignore[arg-type]
        if scale:
            from shopbot.scaled import ScaledStack

            stack = ScaledStack(settings, model, replicas=scale)
            console.print(f"starting {scale} Rasa and {scale} action-server replicas behind "
                          f"HAProxy, and the demo page (about {45 * scale} s)...")
        else:
            stack = Stack(settings, model)
            console.print("starting action server, Rasa server and demo page (about 45 s)...")
        stack.start()
    except (StackError, FileNotFoundError, ValueError) as exc:
        _stop_child(trainer)
        if backends:
            backends.stop()
        fail(str(exc), 1)
    except BaseException:
        _stop_child(trainer)
        if backends:
            backends.stop()
        raise
    console.print(
        f"\n[bold green]shopbot is running[/bold green]\n"
        f"  chat in the browser:  {stack.web_url}/\n"
        f"  Rasa REST webhook:    {stack.rasa_url}/webhooks/rest/webhook\n"
        f"  action server:        {stack.action_url}\n"
        f"  logs:                 {stack.log_dir}\n"
        f"  terminal chat:        make shell (in another terminal)\n"
        f"Press Ctrl-C to stop everything."
    )
    if backends:
        console.print(f"  servers:              {', '.join(s.name for s in backends.services)}"
                      f" (data in {backends.root})")
    try:
        wait_forever(stack)
    finally:
        _stop_child(trainer)
        if backends:
            backends.stop()


def move_embedded_catalog(settings: Settings) -> None:
    """A store that ran embedded before (``make run`` on the same catalog) moves onto the
    fresh Chroma server with its embeddings, instead of being embedded again."""
    from retrieval.ingest import copy_catalog
    from retrieval.store import ProductStore

    if not (settings.store_path / "chroma").is_dir():
        return
    server = ProductStore.from_settings(settings)
    if server.pointer() is not None:
        return
    embedded = ProductStore(settings.store_path)
    if embedded.pointer() is None and not embedded.count():
        return
    console.print(f"copying the catalog of {settings.store_dir} into the Chroma server...")
    console.print(f"  {copy_catalog(embedded, server)} products copied")


def start_backends(scale: int):  # noqa: ANN201 - shopbot.scaled is imported only when scaling
    """Start the servers a scaled run needs that the settings don't name, and point this
    process's settings (and so every child's) at them."""
    import os

    from shopbot.scaled import Backends
    from shopcore.settings import ENV_PREFIX, reset_settings

    settings = get_settings()
    var = Path(settings.var_dir)
    backends = Backends.missing_from(settings, var / "scaled", Path(settings.logs_dir))  # type: ignore[arg-type]
    started = [name for name, wanted in (("PostgreSQL", backends.with_postgres),
                                         ("Redis", backends.with_redis),
                                         ("a Chroma server", backends.with_chroma)) if wanted]
    if started:
        console.print(f"starting {', '.join(started)} for {scale} replicas "
                      f"(data in {backends.root})...")
    backends.start()
    for name, value in backends.settings_changes().items():
        os.environ[ENV_PREFIX + name.upper()] = str(value)
    reset_settings()
    return backends


def shell() -> None:
    """Chat in the terminal (`rasa shell`) against the running action server."""
    from shopbot.stack import (
        action_endpoint_env,
        rasa_env,
        rasa_executable,
        train_bot,
        write_endpoints,
    )

    settings = get_settings()
    model = train_bot(Path(settings.models_dir))  # type: ignore[arg-type]
    env = rasa_env(settings, action_endpoint_env(settings))
    command = [str(rasa_executable()), "shell", "--model", str(model),
               "--endpoints", str(write_endpoints(settings)),
               "--port", str(settings.rasa_port + 100)]
    raise typer.Exit(subprocess.call(command, env=env, cwd=PROJECT_ROOT))
