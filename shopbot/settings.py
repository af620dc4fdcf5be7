"""Runtime settings, read once from the environment (prefix ``SHOPBOT_``) or a ``.env`` file.

Everything a shop owner may want to change without touching code lives here, so the same
code runs embedded on one machine (Chroma directory, SQLite tracker) or against servers.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"


class Settings(BaseSettings):
    """Paths, ports and switches for the bot, the action server and the demo page."""

    model_config = SettingsConfigDict(env_prefix="SHOPBOT_", env_file=".env", extra="ignore")

    store_dir: Path = Field(
        default=VAR_DIR / "store" / "default",
        description="Where the product store lives (Chroma files, vocabulary).",
    )
    chroma_host: str | None = Field(
        default=None, description="Chroma server host; when unset Chroma runs embedded."
    )
    chroma_port: int = 8000
    embed_batch_size: int = 256
    embed_backend: Literal["onnx", "torch"] = Field(
        default="onnx",
        description="How MiniLM runs: ONNX Runtime (exported once to models_dir) or torch.",
    )
    search_page_size: int = 5
    max_message_chars: int = 2000

    uploads_dir: Path = Field(
        default=VAR_DIR / "uploads",
        description="Shopper photo uploads, stored under random names; bad files never kept.",
    )
    max_upload_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000  # Pillow's decompression-bomb guard, per upload
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Other sites allowed to embed the chat widget (exact origins).",
    )
    public_url: str | None = Field(
        default=None,
        description="Public address of the web server, for photo and product links in "
        "messaging channels.",
    )
    shop_db: Path = Field(
        default=VAR_DIR / "shop.db",
        description="Orders, carts, profiles and handoff tickets (SQLite).",
    )

    rasa_port: int = 5005
    action_port: int = 5055
    web_port: int = 8080
    host: str = "127.0.0.1"
    tracker_db: Path = VAR_DIR / "tracker.db"
    events_db: Path = Field(
        default=VAR_DIR / "events.db",
        description="Interaction log (shown/opened/carted/bought) that trains the recommender.",
    )
    recsys_model: Path | None = Field(
        default=None,
        description="Trained recommender file; default: recommender.pt in the product store.",
    )
    models_dir: Path = VAR_DIR / "models"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (environment is read once)."""
    return Settings()
