"""System checks for ``settings.FACTPULSE_TASKS``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from .conf import DEFAULTS, app_settings
from .exceptions import ConfigurationError

HINT_DOCS = "See the Settings section of the factpulse-tasks README."


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    raw = getattr(settings, "FACTPULSE_TASKS", None)
    if not isinstance(raw, dict):
        return [
            Error(
                "FACTPULSE_TASKS is missing or is not a dict.",
                hint='Add FACTPULSE_TASKS = {"BASE_URL": ..., "API_KEY": ...} to your settings.',
                id="factpulse_tasks.E001",
            )
        ]
    for key, check_id in (("BASE_URL", "E002"), ("API_KEY", "E003")):
        try:
            getattr(app_settings, key)
        except ConfigurationError as exc:
            messages.append(Error(str(exc), hint=HINT_DOCS, id=f"factpulse_tasks.{check_id}"))
    for key in DEFAULTS:
        if key in ("BASE_URL", "API_KEY"):
            continue
        try:
            getattr(app_settings, key)
        except ConfigurationError as exc:
            messages.append(Error(str(exc), hint=HINT_DOCS, id="factpulse_tasks.E004"))
    storages = getattr(settings, "STORAGES", {})
    storage = raw.get("STORAGE", DEFAULTS["STORAGE"])
    if isinstance(storage, str) and storage and storage not in storages:
        messages.append(
            Error(
                f"FACTPULSE_TASKS['STORAGE'] is {storage!r}, which is not a key of "
                "settings.STORAGES.",
                hint="Name one of settings.STORAGES, or add that storage there.",
                id="factpulse_tasks.E005",
            )
        )
    for key in app_settings.unknown_keys():
        messages.append(
            Warning(
                f"FACTPULSE_TASKS has an unknown key {key!r}; it is ignored.",
                hint=f"Known keys: {', '.join(DEFAULTS)}.",
                id="factpulse_tasks.W001",
            )
        )
    return messages
