"""System checks for ``settings.FACTPULSE_TASKS``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.urls import NoReverseMatch, reverse

from .conf import DEFAULTS, app_settings
from .exceptions import ConfigurationError

HINT_DOCS = "See the Settings section of the factpulse-tasks README."
# Keys with a check id of their own; every other bad value is E004.
CHECK_IDS = {
    "BASE_URL": "E002",
    "API_KEY": "E003",
    "USERNAME": "E010",
    "PASSWORD": "E010",
    "CLIENT_UID": "E010",
    "WEBHOOK_SECRET": "E011",
    "WEBHOOK_URL": "E012",
}
# A shorter webhook secret can be guessed more easily than it should.
WEBHOOK_SECRET_MIN_LENGTH = 32


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
    messages.extend(_credential_warnings(raw))
    messages.extend(_webhook_warnings())
    for key in app_settings.unknown_keys():
        messages.append(
            Warning(
                f"FACTPULSE_TASKS has an unknown key {key!r}; it is ignored.",
                hint=f"Known keys: {', '.join(DEFAULTS)}.",
                id="factpulse_tasks.W001",
            )
        )
    return messages


def _credential_warnings(raw: dict[str, Any]) -> list[CheckMessage]:
    api_key, username = raw.get("API_KEY"), raw.get("USERNAME")
    if isinstance(api_key, str) and api_key.strip() and isinstance(username, str) and username:
        return [
            Warning(
                "FACTPULSE_TASKS sets both API_KEY and USERNAME/PASSWORD; the API key is used "
                "and the account is ignored.",
                hint="Keep one way of signing in.",
                id="factpulse_tasks.W012",
            )
        ]
    return []


def _webhook_receivable() -> bool:
    """Whether FactPulse can post events here: the view is routed or an address is set."""
    try:
        if app_settings.WEBHOOK_URL:
            return True
    except ConfigurationError:
        return True  # reported as E012; it was meant to be set
    try:
        reverse("factpulse_tasks:webhook")
    except NoReverseMatch:
        return False
    except Exception:
        return False  # a broken URLconf is reported by Django's own checks
    return True


def _webhook_warnings() -> list[CheckMessage]:
    try:
        secret = app_settings.WEBHOOK_SECRET
    except ConfigurationError:
        return []  # reported as E011
    if not secret:
        if not _webhook_receivable():
            return []
        return [
            Warning(
                "The FactPulse webhook view is installed but FACTPULSE_TASKS['WEBHOOK_SECRET'] "
                "is not set: it refuses every event, and tasks wait for polling.",
                hint="Set WEBHOOK_SECRET to the secret shared with FactPulse, read from the "
                "environment or a secrets store.",
                id="factpulse_tasks.W010",
            )
        ]
    if len(secret) < WEBHOOK_SECRET_MIN_LENGTH:
        return [
            Warning(
                f"FACTPULSE_TASKS['WEBHOOK_SECRET'] is shorter than {WEBHOOK_SECRET_MIN_LENGTH} "
                "characters; a short secret lets forged events through more easily.",
                hint="Use a random secret, such as one made by secrets.token_urlsafe(32).",
                id="factpulse_tasks.W011",
            )
        ]
    return []
