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
) -> None:
    """Ingest, train if needed, start action server + Rasa + demo page; Ctrl-C stops all."""
    setup_logging(True)
    from shopbot.stack import Stack, StackError, stop_on_signals, train_bot, wait_forever

    stop_on_signals()
    settings = get_settings()
    settings = settings.replace(store_dir=store_for(catalog, store, settings))
    photos = images_for(catalog, images)
    trainer = None
    try:
        report = run_ingest(catalog, photos, settings.store_path)
        console.print(f"catalog: {report.loaded} products in {settings.store_dir} "
                      f"({report.added} added, {report.updated} updated)")
        trainer = bootstrap_recommender(settings)
        if photos and not (settings.store_path / "image_head.json").is_file():
            console.print(f"photos are matched with the generic ImageNet mapping; for better "
                          f"photo recognition run: shopbot images train --images {photos} "
                          f"--store {settings.store_dir}")
        model = train_bot(Path(settings.models_dir))  # type: ignore[arg-type]
        stack = Stack(settings, model)
        console.print("starting action server, Rasa server and demo page (about 45 s)...")
        stack.start()
    except (StackError, FileNotFoundError, ValueError) as exc:
        _stop_child(trainer)
        fail(str(exc), 1)
    except BaseException:
        _stop_child(trainer)
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
    try:
        wait_forever(stack)
    finally:
        _stop_child(trainer)


def shell() -> None:
    """Chat in the terminal (`rasa shell`) against the running action server."""
    from shopbot.stack import action_endpoint_env, rasa_env, rasa_executable, train_bot

    settings = get_settings()
    model = train_bot(Path(settings.models_dir))  # type: ignore[arg-type]
    env = rasa_env(settings, action_endpoint_env(settings))
    command = [str(rasa_executable()), "shell", "--model", str(model),
               "--endpoints", str(PROJECT_ROOT / "endpoints.yml"),
               "--port", str(settings.rasa_port + 100)]
    raise typer.Exit(subprocess.call(command, env=env, cwd=PROJECT_ROOT))
