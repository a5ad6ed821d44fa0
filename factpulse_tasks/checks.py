"""System checks for ``settings.FACTPULSE_TASKS``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import DEFAULTS, app_settings
from .exceptions import ConfigurationError
from .kinds import REGISTRY, validate_spec

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


@register()
def check_kinds(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every entry of the kinds registry can be used (``factpulse_tasks.E030``).

    ``register_kind()`` refuses a bad spec; this catches entries put in
    ``REGISTRY`` by other means.
    """
    messages: list[CheckMessage] = []
    for name, spec in REGISTRY.items():
        problems = validate_spec(spec)
        if getattr(spec, "name", None) != name:
            problems.append(f"it is registered under {name!r} but named "
                            f"{getattr(spec, 'name', None)!r}")
        if problems:
            messages.append(Error(
                f"The task kind {name!r} cannot be used: {'; '.join(problems)}.",
                hint="Add kinds with factpulse_tasks.kinds.register_kind().",
                id="factpulse_tasks.E030",
            ))
    return messages


@register(Tags.database)
def check_tracked_kinds(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """Unfinished tasks of a kind nobody registered (``factpulse_tasks.W030``).

    They cannot be polled and will expire; usually the code that registers the
    kind is no longer loaded. Runs with ``check --database``.
    """
    if not databases:
        return []
    from django.db import DatabaseError, router

    from .models import FactPulseTask

    alias = router.db_for_read(FactPulseTask) or "default"
    if alias not in databases:
        return []
    try:
        kinds = set(
            FactPulseTask.objects.using(alias).unfinished()
            .exclude(kind__in=list(REGISTRY)).values_list("kind", flat=True).distinct()
        )
    except DatabaseError:
        return []  # not migrated yet
    if not kinds:
        return []
    return [Warning(
        f"Unfinished FactPulse tasks have kinds that are not registered: "
        f"{', '.join(sorted(kinds))}; they cannot be polled and will expire.",
        hint="Register those kinds (kinds.register_kind) in your AppConfig.ready().",
        id="factpulse_tasks.W030",
    )]
