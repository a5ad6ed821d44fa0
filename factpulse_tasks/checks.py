"""System checks for ``settings.FACTPULSE_TASKS``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from .conf import DEFAULTS, app_settings
from .exceptions import ConfigurationError

HINT_DOCS = "See the Settings section of the factpulse-tasks README."
# Keys with a check id of their own; every other bad value is E004.
CHECK_IDS = {"BASE_URL": "E002", "API_KEY": "E003"}


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report every problem of ``settings.FACTPULSE_TASKS`` (ids ``factpulse_tasks.E001``…)."""
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
    for key in DEFAULTS:
        try:
            getattr(app_settings, key)
        except ConfigurationError as exc:
            check_id = CHECK_IDS.get(key, "E004")
            messages.append(Error(str(exc), hint=HINT_DOCS, id=f"factpulse_tasks.{check_id}"))
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
    try:
        longest_call = app_settings.TOTAL_TIMEOUT
        lease = app_settings.LEASE_SECONDS
    except ConfigurationError:
        pass  # reported above
    else:
        if lease < longest_call:
            messages.append(
                Warning(
                    f"FACTPULSE_TASKS['LEASE_SECONDS'] ({lease:g}) is shorter than one slow "
                    f"status call (TOTAL_TIMEOUT, {longest_call:g} s); each cycle will poll "
                    "a single task.",
                    hint="Raise LEASE_SECONDS or lower TOTAL_TIMEOUT.",
                    id="factpulse_tasks.W002",
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
