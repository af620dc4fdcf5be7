"""Every setting and path, read once from ``SHOPBOT_*`` environment variables or ``.env``.

Everything a shop owner may change without touching code lives here, so the same code runs
embedded on one machine (Chroma folder, SQLite) or against servers, and both virtualenvs
read the same names: the stack hands each child process the settings it was started with
(:meth:`Settings.to_env`). Paths left unset are derived from ``var_dir``.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VAR_DIR = PROJECT_ROOT / "var"
ENV_PREFIX = "SHOPBOT_"
ENV_FILE = PROJECT_ROOT / ".env"
RECOMMENDER_FILE = "recommender.pt"  # inside the product store unless recsys_model says

try:  # pydantic 2 with pydantic-settings: the app's virtualenv
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class _EnvSettings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=ENV_FILE,
                                          extra="ignore")

        def _explicit(self) -> dict[str, Any]:
            return self.model_dump(exclude_unset=True)

except ImportError:  # pydantic 1 has BaseSettings built in: Rasa's virtualenv
    from pydantic import BaseSettings  # type: ignore[no-redef]

    class _EnvSettings(BaseSettings):  # type: ignore[no-redef]
        class Config:
            env_prefix = ENV_PREFIX
            env_file = ENV_FILE
            extra = "ignore"

        def _explicit(self) -> dict[str, Any]:
            return self.dict(exclude_unset=True)


class Settings(_EnvSettings):
    """Paths, ports, limits and switches of every process of the bot."""

    var_dir: Path = Field(default=DEFAULT_VAR_DIR,
                          description="Where everything the bot writes lives by default.")
    store_dir: Path | None = Field(
        default=None, description="The product store (Chroma files, vocabulary, indexes); "
        "default var_dir/store/default.")
    chroma_host: str | None = Field(
        default=None, description="Chroma server host; when unset Chroma runs embedded.")
    chroma_port: int = 8000
    embed_batch_size: int = 256
    embed_backend: Literal["onnx", "torch"] = Field(
        default="onnx",
        description="How MiniLM runs: ONNX Runtime (exported once to models_dir) or torch.")
    search_page_size: int = 5
    max_message_chars: int = 2000

    database_url: str | None = Field(
        default=None, description="The shop database (orders, carts, profiles, tickets, "
        "links, events): an SQLAlchemy URL; default SQLite at var_dir/shop.db.")
    tracker_db: Path | None = Field(
        default=None, description="Rasa's SQLite tracker store; default var_dir/tracker.db.")
    tracker_url: str | None = Field(
        default=None, description="Rasa's tracker store as an SQLAlchemy URL; default the "
        "shop database when that is PostgreSQL (Rasa's own tables sit beside the shop's), "
        "else SQLite at tracker_db.")
    redis_url: str | None = Field(
        default=None, description="Redis for Rasa's lock store (redis://host:port/db): "
        "required when more than one Rasa replica serves the same conversations.")
    conversation_lock_s: int = Field(
        default=30, description="Longest a Rasa replica may hold one conversation's turn "
        "(Rasa's ticket lock lifetime): a replica that dies mid-turn holds that shopper's "
        "next message this long at most. Keep it above the slowest turn.")
    catalog_check_s: float = Field(
        default=2.0, description="How often an action server looks for a newer catalog "
        "version (an ingest elsewhere); it switches between two searches, never mid-search.")
    demo: bool = Field(
        default=False, description="Demo mode (`make run` switches it on): seed the demo "
        "shoppers' orders and let the demo page chat as demo-shopper. Off for a real shop.")

    uploads_dir: Path | None = Field(
        default=None, description="Shopper photo uploads (random names; bad files never "
        "kept); default var_dir/uploads.")
    max_upload_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000  # Pillow's decompression-bomb guard, per upload
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Other sites allowed to embed the chat widget (exact origins).")
    public_url: str | None = Field(
        default=None, description="Public address of the web server, for photo and product "
        "links in messaging channels.")
    product_url: str | None = Field(
        default=None, description="Product page template with {id} for messaging channels; "
        "default public_url/?product={id}.")

    host: str = Field(
        default="127.0.0.1", description="Where Rasa and the action server listen: internal "
        "only (loopback unless they run on other machines of a private network).")
    web_host: str = Field(
        default="127.0.0.1", description="Where the web server listens (page, widget API, "
        "messaging webhooks): the public surface; 0.0.0.0 to publish it.")
    rasa_port: int = 5005
    action_port: int = 5055
    web_port: int = 8080
    session_secret: str | None = Field(
        default=None, description="Signs the web shoppers' session cookies; default a random "
        "key kept in var_dir/secrets/session.key (made on first use).")
    staff_session_secret: str | None = Field(
        default=None, description="Signs the staff console's session cookies (never the "
        "shoppers' key); default a random key kept in var_dir/secrets/staff-session.key.")
    internal_secret: str | None = Field(
        default=None, description="What the web server shows Rasa's REST channel and Rasa "
        "shows the action server; default a random one per `shopbot run`.")
    customer_token_secret: str | None = Field(
        default=None, description="The shop backend's HS256 key for customer tokens (JWT "
        "with sub and exp); unset: logged-in customers are not accepted.")
    customer_token_max_s: int = Field(
        default=86_400, description="Longest customer-token lifetime accepted (exp - now).")
    secure_cookies: bool = Field(
        default=False, description="Mark cookies Secure (set when the site is served over "
        "https; also set for requests a trusted proxy says came over https).")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Addresses of reverse proxies whose "
        "X-Forwarded-For / X-Forwarded-Proto are believed (client address for rate limits).")
    chats_per_minute: int = 30  # per web session
    uploads_per_minute: int = 20  # per web session
    requests_per_address_minute: int = Field(
        default=600, description="Chats and uploads per client address per minute (many "
        "shoppers may share one address behind a carrier's NAT).")
    max_webhook_bytes: int = 1024 * 1024  # messaging webhook bodies, at the web server and Rasa

    models_dir: Path | None = Field(
        default=None, description="Trained and exported models; default var_dir/models.")
    logs_dir: Path | None = Field(
        default=None, description="One log file per process; default var_dir/logs.")
    recsys_model: Path | None = Field(
        default=None, description="Trained recommender; default recommender.pt in the store.")
    policy_file: Path | None = Field(
        default=None, description="The shop's policy file (shipping, returns, payment, "
        "contact, FAQ answers); default PROJECT_ROOT/bot/policy.yml.")
    app_python: Path | None = Field(
        default=None, description="The app virtualenv's Python, for the MiniLM NLU worker "
        "that runs beside Rasa; default PROJECT_ROOT/.venv/bin/python.")

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        var = Path(self.var_dir)
        derived = {
            "store_dir": var / "store" / "default",
            "tracker_db": var / "tracker.db",
            "uploads_dir": var / "uploads",
            "models_dir": var / "models",
            "logs_dir": var / "logs",
            "app_python": PROJECT_ROOT / ".venv" / "bin" / "python",
            "policy_file": PROJECT_ROOT / "bot" / "policy.yml",
        }
        for name, default in derived.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)  # derived, so not "set" (see replace)

    # The derived fields are never None after __init__; these say so to type checkers.
    @property
    def store_path(self) -> Path:
        return Path(self.store_dir)  # type: ignore[arg-type]

    @property
    def shop_database_url(self) -> str:
        return self.database_url or f"sqlite:///{Path(self.var_dir) / 'shop.db'}"

    @property
    def tracker_store_url(self) -> str:
        """Where Rasa keeps conversations: the setting, else beside a PostgreSQL shop
        database, else the SQLite file."""
        if self.tracker_url:
            return self.tracker_url
        if self.database_url and not self.database_url.startswith("sqlite"):
            return self.database_url
        return f"sqlite:///{Path(self.tracker_db)}"  # type: ignore[arg-type]

    @property
    def recommender_path(self) -> Path:
        return self.recsys_model or self.store_path / RECOMMENDER_FILE

    @property
    def product_link(self) -> str:
        """Product page URL template with ``{id}`` ('' when the shop has no public URL)."""
        if self.product_url:
            return self.product_url
        return f"{self.public_url.rstrip('/')}/?product={{id}}" if self.public_url else ""

    def replace(self, **changes: Any) -> Settings:
        """These settings with some changed; derived paths follow a changed ``var_dir``."""
        return type(self)(**{**self._explicit(), **changes})

    def to_env(self) -> dict[str, str]:
        """``SHOPBOT_*`` variables that make a child process read these very settings."""
        env: dict[str, str] = {}
        for name in self.field_names():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, list):
                text = json.dumps(value)
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            env[ENV_PREFIX + name.upper()] = text
        return env

    @classmethod
    def field_names(cls) -> list[str]:
        fields = getattr(cls, "model_fields", None) or getattr(cls, "__fields__", {})
        return list(fields)


_lock = threading.Lock()
_current: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings (the environment is read once)."""
    global _current
    with _lock:
        if _current is None:
            _current = Settings()
        return _current


def reset_settings() -> None:
    """Read the environment again on next use (tests that change SHOPBOT_* variables)."""
    global _current
    with _lock:
        _current = None
