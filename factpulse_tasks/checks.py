"""System checks: ``settings.FACTPULSE_TASKS``, and how the project deploys the app.

Ids: E001–E005 and W001–W002 for the settings themselves; W020–W022 for the
deployment (plain http, no beat entry, artifacts served publicly).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.files.storage import FileSystemStorage, InvalidStorageError, storages
from django.urls import NoReverseMatch, reverse

from .conf import DEFAULTS, app_settings
from .exceptions import ConfigurationError
from .kinds import REGISTRY, validate_spec

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


# Deployment checks -----------------------------------------------------------

POLL_TASK = "factpulse_tasks.poll_due_tasks"
# ACLs of django-storages backends (S3, Google Cloud) that let anyone read a file.
PUBLIC_ACLS = {"public-read", "public-read-write", "publicRead", "publicReadWrite"}


@register(Tags.security)
def check_base_url_scheme(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W020: ``BASE_URL`` is plain ``http://`` outside DEBUG, to a host other than this one.

    The API key and the invoices would cross the network in clear text. Loopback
    addresses (``localhost``, ``127.0.0.0/8``, ``::1``) are allowed: a local proxy
    or a fake server in tests.
    """
    try:
        url = app_settings.BASE_URL
    except ConfigurationError:
        return []  # E001/E002
    parts = urlsplit(url)
    if parts.scheme != "http" or settings.DEBUG or _is_loopback(parts.hostname or ""):
        return []
    return [
        Warning(
            f"FACTPULSE_TASKS['BASE_URL'] ({url}) uses http://: the API key and the invoices "
            "cross the network unencrypted.",
            hint="Use https:// (FactPulse serves https://factpulse.fr).",
            id="factpulse_tasks.W020",
        )
    ]


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def celery_app() -> Any:
    """The Celery app of the project (the current one), or None without Celery."""
    if importlib.util.find_spec("celery") is None:
        return None
    from celery import current_app

    return current_app


@register()
def check_beat_schedule(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W021: Celery is installed but no beat entry runs ``factpulse_tasks.poll_due_tasks``.

    Looks at ``settings.CELERY_BEAT_SCHEDULE`` and at the current Celery app's
    ``beat_schedule``. Skipped when beat reads its schedule from the database
    (django-celery-beat's ``DatabaseScheduler``): a system check does not query it.
    """
    app = celery_app()
    if app is None:
        return []
    scheduler = getattr(settings, "CELERY_BEAT_SCHEDULER", None) or app.conf.beat_scheduler
    if "django_celery_beat" in str(scheduler):
        return []
    schedules = [getattr(settings, "CELERY_BEAT_SCHEDULE", None), app.conf.beat_schedule]
    for schedule in schedules:
        if isinstance(schedule, dict) and any(
            isinstance(entry, dict) and entry.get("task") == POLL_TASK
            for entry in schedule.values()
        ):
            return []
    return [
        Warning(
            f"No Celery beat entry runs {POLL_TASK!r}: tracked tasks are polled only when "
            "they are tracked, and never expire.",
            hint=f'Add {{"factpulse-poll": {{"task": "{POLL_TASK}", "schedule": 5.0}}}} to '
            "CELERY_BEAT_SCHEDULE. If you poll with cron instead, add "
            '"factpulse_tasks.W021" to SILENCED_SYSTEM_CHECKS.',
            id="factpulse_tasks.W021",
        )
    ]


@register(Tags.security)
def check_artifact_storage(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W022: the storage of artifacts hands the files out publicly.

    A ``FileSystemStorage`` is public when its folder is ``MEDIA_ROOT`` (or inside
    it) and the project sets ``MEDIA_URL``, or when it has a ``base_url`` of its own: the
    web server serves those folders. Any storage with a public ACL
    (``default_acl`` such as ``public-read``) or unsigned URLs
    (``querystring_auth = False``, django-storages) is public too.
    """
    try:
        alias = app_settings.STORAGE
        storage = storages[alias]
    except (ConfigurationError, InvalidStorageError):
        return []  # E004/E005
    why = _public_because(alias, storage)
    if why is None:
        return []
    return [
        Warning(
            f"The storage of FactPulse artifacts (STORAGES[{alias!r}]) serves them publicly: "
            f"{why}. They are invoices.",
            hint="Point FACTPULSE_TASKS['STORAGE'] to a private storage (see 'Keep artifacts "
            "private' in the factpulse-tasks README); the admin serves the files to users "
            "allowed to view the tasks.",
            id="factpulse_tasks.W022",
        )
    ]


def _public_because(alias: str, storage: Any) -> str | None:
    options = (getattr(settings, "STORAGES", {}).get(alias) or {}).get("OPTIONS") or {}
    if isinstance(storage, FileSystemStorage):
        if options.get("base_url"):
            return f"it publishes its files under base_url {options['base_url']!r}"
        # Django reads an unset MEDIA_URL as "/": only a URL the project chose counts.
        overridden = settings.is_overridden("MEDIA_URL")  # type: ignore[misc]  # not in stubs
        media_url = settings.MEDIA_URL if overridden else ""
        media_root = settings.MEDIA_ROOT
        if media_url and media_root and _inside(storage.location, media_root):
            return f"its folder is inside MEDIA_ROOT, served under MEDIA_URL {media_url!r}"
        return None
    acl = getattr(storage, "default_acl", None)
    if acl in PUBLIC_ACLS:
        return f"its files are created with the public ACL {acl!r}"
    if getattr(storage, "querystring_auth", None) is False:
        return "its URLs are not signed (querystring_auth is False)"
    return None


def _inside(location: str | os.PathLike[str], media_root: str | os.PathLike[str]) -> bool:
    folder, root = os.path.realpath(location), os.path.realpath(media_root)
    return folder == root or folder.startswith(root.rstrip(os.sep) + os.sep)


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
