"""Settings of factpulse_tasks, read from ``settings.FACTPULSE_TASKS`` at each access.

Every key but ``BASE_URL`` and the credentials is optional; the defaults are in
:data:`DEFAULTS`. Properties read the settings on every access, so
``override_settings`` works in tests and nothing is frozen at import time.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from .exceptions import ConfigurationError

HOUR = 3600.0
DAY = 24 * HOUR

DEFAULTS: dict[str, Any] = {
    "BASE_URL": "",
    # Credentials: an API key (X-API-Key), or a FactPulse account whose JWT is
    # fetched from POST /api/token/ and renewed as needed.
    "API_KEY": "",
    "USERNAME": "",
    "PASSWORD": "",
    "CLIENT_UID": "",
    # Seconds to wait for a connection, and for each read of an answer.
    "CONNECT_TIMEOUT": 5.0,
    "READ_TIMEOUT": 30.0,
    # Seconds for a whole status call, answer included: 67 MB (a 50 MB PDF in
    # base64) at 1 MB/s fits.
    "TOTAL_TIMEOUT": 120.0,
    # Largest status answer read, in bytes; a 50 MB PDF is about 67 MB in base64.
    "MAX_RESPONSE_BYTES": 128 * 1024 * 1024,
    # Polling schedule: first delay, growth factor per poll, and the cap.
    "POLL_INTERVAL": 2.0,
    "POLL_BACKOFF": 1.5,
    "POLL_MAX_INTERVAL": 60.0,
    # Each interval is spread by up to this fraction either way.
    "POLL_JITTER": 0.1,
    # Status calls one worker makes at the same time.
    "CONCURRENCY": 16,
    # Ask Celery for a cycle as soon as a task is tracked, rather than at the next
    # beat tick. Turn off when no Celery worker runs (cron and factpulse_poll).
    "POLL_ON_TRACK": True,
    # A task not finished this many seconds after it was tracked ends "expired".
    "TASK_TIMEOUT": 3600.0,
    # How many due tasks one cycle claims, and how long the claim holds them.
    "BATCH_SIZE": 250,
    "LEASE_SECONDS": 300.0,
    # Where artifacts are stored: a key of settings.STORAGES and a path prefix.
    "STORAGE": "default",
    "UPLOAD_PREFIX": "factpulse_tasks",
    # Webhooks: the shared secret of X-Webhook-Signature, the public address of
    # the webhook view sent as callback_url by the submit functions, and the
    # largest event body read.
    "WEBHOOK_SECRET": "",
    "WEBHOOK_URL": "",
    "WEBHOOK_MAX_BYTES": 1024 * 1024,
}


class Settings:
    """Typed view of ``settings.FACTPULSE_TASKS``; every property validates its value."""

    def _raw(self) -> dict[str, Any]:
        value = getattr(settings, "FACTPULSE_TASKS", {})
        if not isinstance(value, dict):
            raise ConfigurationError(
                f"FACTPULSE_TASKS must be a dict, not {type(value).__name__}."
            )
        return value

    def _get(self, key: str) -> Any:
        return self._raw().get(key, DEFAULTS[key])

    def _text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise ConfigurationError(f"FACTPULSE_TASKS['{key}'] must be a string.")
        return value

    def _number(
        self, key: str, *, minimum: float, maximum: float, allow_equal: bool = False
    ) -> float:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigurationError(
                f"FACTPULSE_TASKS['{key}'] must be a number, not {type(value).__name__}."
            )
        if not math.isfinite(value) or value > maximum:
            raise ConfigurationError(
                f"FACTPULSE_TASKS['{key}'] must be a finite number of at most {maximum:g}."
            )
        if value < minimum or (value == minimum and not allow_equal):
            comparison = "at least" if allow_equal else "greater than"
            raise ConfigurationError(
                f"FACTPULSE_TASKS['{key}'] must be {comparison} {minimum}, not {value}."
            )
        return float(value)

    def _integer(self, key: str, *, minimum: int, maximum: int) -> int:
        value = self._get(key)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not minimum <= value <= maximum
        ):
            raise ConfigurationError(
                f"FACTPULSE_TASKS['{key}'] must be a whole number from {minimum} to {maximum}."
            )
        return value

    @property
    def BASE_URL(self) -> str:
        value = self._text("BASE_URL").strip().rstrip("/")
        if not value:
            raise ConfigurationError(
                "FACTPULSE_TASKS['BASE_URL'] is not set; give the FactPulse address, "
                "for example 'https://factpulse.fr'."
            )
        if not value.startswith(("http://", "https://")):
            raise ConfigurationError(
                "FACTPULSE_TASKS['BASE_URL'] must start with https:// (or http:// for a "
                "local server)."
            )
        return value

    @property
    def API_KEY(self) -> str:
        """The API key, or ``""`` when an account (``USERNAME``/``PASSWORD``) is used."""
        value = self._text("API_KEY").strip()
        if not value:
            if self._has_account():
                return ""
            raise ConfigurationError(
                "FACTPULSE_TASKS['API_KEY'] is not set; FactPulse needs it in the "
                "X-API-Key header (or set USERNAME and PASSWORD to use a JWT)."
            )
        if not (value.isascii() and value.isprintable()):
            # Never quote the value: it is a secret.
            raise ConfigurationError(
                "FACTPULSE_TASKS['API_KEY'] holds characters an HTTP header cannot carry; "
                "copy the key again from FactPulse."
            )
        return value

    def _has_account(self) -> bool:
        raw = self._raw()
        return any(isinstance(raw.get(key), str) and raw[key] for key in ("USERNAME", "PASSWORD"))

    @property
    def USERNAME(self) -> str:
        """The FactPulse account name; also checks that it comes with a password."""
        value = self._text("USERNAME").strip()
        password = self._get("PASSWORD")
        has_password = isinstance(password, str) and password != ""
        if value and not has_password:
            raise ConfigurationError(
                "FACTPULSE_TASKS['USERNAME'] is set without FACTPULSE_TASKS['PASSWORD']; "
                "give both, or neither."
            )
        if has_password and not value:
            raise ConfigurationError(
                "FACTPULSE_TASKS['PASSWORD'] is set without FACTPULSE_TASKS['USERNAME']; "
                "give both, or neither."
            )
        return value

    @property
    def PASSWORD(self) -> str:
        # Never quoted in a message, never stripped: spaces may belong to it.
        return self._text("PASSWORD")

    @property
    def CLIENT_UID(self) -> str:
        value = self._text("CLIENT_UID").strip()
        if value and not self._text("USERNAME").strip():
            raise ConfigurationError(
                "FACTPULSE_TASKS['CLIENT_UID'] only goes with USERNAME and PASSWORD; set "
                "them too, or remove it."
            )
        return value

    @property
    def WEBHOOK_SECRET(self) -> str:
        """The shared secret of webhook signatures; ``""`` refuses every event."""
        value = self._text("WEBHOOK_SECRET").strip()
        if not (value.isascii() and value.isprintable()):
            # Never quote the value: it is a secret.
            raise ConfigurationError(
                "FACTPULSE_TASKS['WEBHOOK_SECRET'] holds characters other than printable "
                "ASCII; copy the secret again."
            )
        return value

    @property
    def WEBHOOK_URL(self) -> str:
        """The absolute address of the webhook view, sent as ``callback_url``; may be ``""``."""
        value = self._text("WEBHOOK_URL").strip()
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or not value.isascii():
            raise ConfigurationError(
                "FACTPULSE_TASKS['WEBHOOK_URL'] must be the absolute address of the webhook "
                "view, such as 'https://erp.example.com/factpulse/webhook/'."
            )
        return value

    @property
    def WEBHOOK_MAX_BYTES(self) -> int:
        return self._integer("WEBHOOK_MAX_BYTES", minimum=1024, maximum=256 * 1024 * 1024)

    @property
    def CONNECT_TIMEOUT(self) -> float:
        return self._number("CONNECT_TIMEOUT", minimum=0, maximum=HOUR)

    @property
    def READ_TIMEOUT(self) -> float:
        return self._number("READ_TIMEOUT", minimum=0, maximum=HOUR)

    @property
    def TOTAL_TIMEOUT(self) -> float:
        return self._number("TOTAL_TIMEOUT", minimum=0, maximum=HOUR)

    @property
    def MAX_RESPONSE_BYTES(self) -> int:
        return self._integer("MAX_RESPONSE_BYTES", minimum=1024, maximum=2**31)

    @property
    def POLL_INTERVAL(self) -> float:
        # 0 means "at the next cycle"; handy in tests, wasteful in production.
        return self._number("POLL_INTERVAL", minimum=0, maximum=DAY, allow_equal=True)

    @property
    def POLL_BACKOFF(self) -> float:
        return self._number("POLL_BACKOFF", minimum=1, maximum=100, allow_equal=True)

    @property
    def POLL_MAX_INTERVAL(self) -> float:
        value = self._number("POLL_MAX_INTERVAL", minimum=0, maximum=DAY, allow_equal=True)
        try:
            first = self.POLL_INTERVAL
        except ConfigurationError:
            return value  # reported under its own key
        if value < first:
            raise ConfigurationError(
                "FACTPULSE_TASKS['POLL_MAX_INTERVAL'] must not be smaller than "
                "FACTPULSE_TASKS['POLL_INTERVAL']."
            )
        return value

    @property
    def POLL_JITTER(self) -> float:
        return self._number("POLL_JITTER", minimum=0, maximum=0.5, allow_equal=True)

    @property
    def CONCURRENCY(self) -> int:
        return self._integer("CONCURRENCY", minimum=1, maximum=256)

    @property
    def POLL_ON_TRACK(self) -> bool:
        value = self._get("POLL_ON_TRACK")
        if not isinstance(value, bool):
            raise ConfigurationError("FACTPULSE_TASKS['POLL_ON_TRACK'] must be True or False.")
        return value

    @property
    def TASK_TIMEOUT(self) -> float:
        return self._number("TASK_TIMEOUT", minimum=0, maximum=366 * DAY)

    @property
    def BATCH_SIZE(self) -> int:
        return self._integer("BATCH_SIZE", minimum=1, maximum=10_000)

    @property
    def LEASE_SECONDS(self) -> float:
        return self._number("LEASE_SECONDS", minimum=0, maximum=DAY)

    @property
    def STORAGE(self) -> str:
        value = self._text("STORAGE")
        if not value:
            raise ConfigurationError(
                "FACTPULSE_TASKS['STORAGE'] must name a key of settings.STORAGES."
            )
        return value

    @property
    def UPLOAD_PREFIX(self) -> str:
        value = self._text("UPLOAD_PREFIX").strip("/")
        # Leaves room in the 255-character file name for kind, task id and file name.
        if not value or ".." in value.split("/") or len(value) > 60:
            raise ConfigurationError(
                "FACTPULSE_TASKS['UPLOAD_PREFIX'] must be a relative folder name of at most "
                "60 characters, such as 'factpulse_tasks'."
            )
        return value

    def unknown_keys(self) -> list[str]:
        """Keys of ``FACTPULSE_TASKS`` that the app does not know (likely typos)."""
        return sorted(set(self._raw()) - set(DEFAULTS))


app_settings = Settings()
