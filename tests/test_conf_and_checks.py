"""Settings validation and the system checks, one test per check id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.core.files.storage import Storage

from factpulse_tasks import checks
from factpulse_tasks.checks import (
    check_artifact_storage,
    check_base_url_scheme,
    check_beat_schedule,
    check_settings,
)
from factpulse_tasks.conf import DEFAULTS, app_settings
from factpulse_tasks.exceptions import ConfigurationError

GOOD = {"BASE_URL": "https://factpulse.example", "API_KEY": "k-123",
        # The tests' URLconf routes the webhook view, which wants a secret.
        "WEBHOOK_SECRET": "whsec-0123456789abcdef0123456789abcdef"}
ACCOUNT = {"BASE_URL": GOOD["BASE_URL"], "USERNAME": "compta@example.fr",
           "PASSWORD": "pa55-word", "WEBHOOK_SECRET": GOOD["WEBHOOK_SECRET"]}


def ids(settings: Any, value: Any) -> list[str]:
    settings.FACTPULSE_TASKS = value
    return [message.id for message in check_settings()]


def test_good_settings_pass_every_check(settings: Any) -> None:
    assert ids(settings, GOOD) == []


def test_defaults_apply_to_missing_keys(settings: Any) -> None:
    settings.FACTPULSE_TASKS = GOOD
    assert app_settings.POLL_INTERVAL == DEFAULTS["POLL_INTERVAL"]
    assert app_settings.BATCH_SIZE == DEFAULTS["BATCH_SIZE"]
    assert app_settings.BASE_URL == "https://factpulse.example"


def test_settings_are_read_at_each_access(settings: Any) -> None:
    settings.FACTPULSE_TASKS = {**GOOD, "BATCH_SIZE": 7}
    assert app_settings.BATCH_SIZE == 7
    settings.FACTPULSE_TASKS = {**GOOD, "BATCH_SIZE": 9}
    assert app_settings.BATCH_SIZE == 9


def test_e001_settings_missing_or_not_a_dict(settings: Any) -> None:
    assert ids(settings, None) == ["factpulse_tasks.E001"]
    assert ids(settings, ["BASE_URL"]) == ["factpulse_tasks.E001"]


@pytest.mark.parametrize("url", ["", "   ", "factpulse.fr", "ftp://factpulse.fr", 42])
def test_e002_base_url_missing_or_not_http(settings: Any, url: Any) -> None:
    assert ids(settings, {**GOOD, "BASE_URL": url}) == ["factpulse_tasks.E002"]


def test_e003_api_key_missing(settings: Any) -> None:
    no_key = {k: v for k, v in GOOD.items() if k != "API_KEY"}
    assert ids(settings, no_key) == ["factpulse_tasks.E003"]


def test_an_account_replaces_the_api_key(settings: Any) -> None:
    assert ids(settings, ACCOUNT) == []
    assert app_settings.API_KEY == ""
    assert (app_settings.USERNAME, app_settings.PASSWORD) == ("compta@example.fr", "pa55-word")
    assert ids(settings, {**ACCOUNT, "CLIENT_UID": "client-42"}) == []


@pytest.mark.parametrize(
    "value",
    [
        {"USERNAME": "compta@example.fr"},
        {"PASSWORD": "pa55-word"},
        {"PASSWORD": "pa55-word", "USERNAME": "   "},
        {"CLIENT_UID": "client-42"},
        {"USERNAME": 42, "PASSWORD": "pa55-word"},
    ],
)
def test_e010_account_incomplete_or_not_text(settings: Any, value: dict[str, Any]) -> None:
    base = {"BASE_URL": GOOD["BASE_URL"], "WEBHOOK_SECRET": GOOD["WEBHOOK_SECRET"]}
    if "CLIENT_UID" in value:
        base["API_KEY"] = "k-123"
    found = ids(settings, {**base, **value})
    assert set(found) == {"factpulse_tasks.E010"}
    assert "pa55-word" not in " ".join(m.msg for m in check_settings())


@pytest.mark.parametrize("secret", ["clé-secrète-€", "line\nbreak-0123456789abcdef0123456789", 42])
def test_e011_webhook_secret_not_printable_ascii(settings: Any, secret: Any) -> None:
    settings.FACTPULSE_TASKS = {**GOOD, "WEBHOOK_SECRET": secret}
    messages = check_settings()
    assert [m.id for m in messages] == ["factpulse_tasks.E011"]
    assert str(secret) not in messages[0].msg


@pytest.mark.parametrize("url", ["erp.example.fr/hook", "/factpulse/webhook/", "ftp://x.fr/h",
                                 "https:///nohost", "https://é.fr/h", 7])
def test_e012_webhook_url_not_absolute_http(settings: Any, url: Any) -> None:
    assert ids(settings, {**GOOD, "WEBHOOK_URL": url}) == ["factpulse_tasks.E012"]


def test_w010_webhook_view_installed_without_a_secret(settings: Any) -> None:
    no_secret = {k: v for k, v in GOOD.items() if k != "WEBHOOK_SECRET"}
    assert ids(settings, no_secret) == ["factpulse_tasks.W010"]


def test_w010_not_raised_when_nothing_can_receive_events(settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.urls_without_webhook"
    no_secret = {k: v for k, v in GOOD.items() if k != "WEBHOOK_SECRET"}
    assert ids(settings, no_secret) == []
    assert ids(settings, {**no_secret, "WEBHOOK_URL": "https://erp.example.fr/hook/"}) == [
        "factpulse_tasks.W010"]


def test_w011_short_webhook_secret(settings: Any) -> None:
    settings.FACTPULSE_TASKS = {**GOOD, "WEBHOOK_SECRET": "short-secret"}
    messages = check_settings()
    assert [m.id for m in messages] == ["factpulse_tasks.W011"]
    assert "short-secret" not in messages[0].msg + str(messages[0].hint)


def test_w012_api_key_and_account_both_set(settings: Any) -> None:
    assert ids(settings, {**ACCOUNT, "API_KEY": "k-123"}) == ["factpulse_tasks.W012"]
    assert app_settings.API_KEY == "k-123"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("POLL_INTERVAL", -1),
        ("POLL_INTERVAL", "2"),
        ("POLL_BACKOFF", 0.5),
        ("POLL_MAX_INTERVAL", True),
        ("BATCH_SIZE", 0),
        ("BATCH_SIZE", 2.5),
        ("TASK_TIMEOUT", 0),
        ("READ_TIMEOUT", None),
        ("MAX_RESPONSE_BYTES", 10),
        ("TASK_TIMEOUT", float("inf")),
        ("TASK_TIMEOUT", float("nan")),
        ("TASK_TIMEOUT", 1e12),
        ("LEASE_SECONDS", 1e13),
        ("READ_TIMEOUT", float("nan")),
        ("BATCH_SIZE", 10**9),
        ("UPLOAD_PREFIX", "../outside"),
        ("UPLOAD_PREFIX", "x" * 61),
        ("STORAGE", ""),
        ("WEBHOOK_MAX_BYTES", 10),
        ("WEBHOOK_MAX_BYTES", "1MB"),
    ],
)
def test_e004_bad_value_names_the_key(settings: Any, key: str, value: Any) -> None:
    settings.FACTPULSE_TASKS = {**GOOD, key: value}
    messages = check_settings()
    assert [m.id for m in messages] == ["factpulse_tasks.E004"]
    assert key in messages[0].msg
    with pytest.raises(ConfigurationError, match=key):
        getattr(app_settings, key)


def test_e004_max_interval_below_first_interval(settings: Any) -> None:
    settings.FACTPULSE_TASKS = {**GOOD, "POLL_INTERVAL": 10, "POLL_MAX_INTERVAL": 5}
    assert [m.id for m in check_settings()] == ["factpulse_tasks.E004"]


@pytest.mark.parametrize("key", ["clé-€-42", "line\nbreak", "tab\tkey"])
def test_e003_api_key_a_header_cannot_carry(settings: Any, key: str) -> None:
    settings.FACTPULSE_TASKS = {**GOOD, "API_KEY": key}
    messages = check_settings()
    assert [m.id for m in messages] == ["factpulse_tasks.E003"]
    assert key.strip() not in messages[0].msg


def test_w002_lease_shorter_than_one_slow_call(settings: Any) -> None:
    settings.FACTPULSE_TASKS = {**GOOD, "LEASE_SECONDS": 30, "READ_TIMEOUT": 30}
    messages = check_settings()
    assert [m.id for m in messages] == ["factpulse_tasks.W002"]
    assert "LEASE_SECONDS" in messages[0].msg


def test_e005_storage_not_in_storages(settings: Any) -> None:
    assert ids(settings, {**GOOD, "STORAGE": "invoices"}) == ["factpulse_tasks.E005"]


def test_w001_unknown_key(settings: Any) -> None:
    settings.FACTPULSE_TASKS = {**GOOD, "POLL_INTERVALL": 3}
    messages = check_settings()
    assert [m.id for m in messages] == ["factpulse_tasks.W001"]
    assert "POLL_INTERVALL" in messages[0].msg


def test_check_messages_never_show_the_api_key(settings: Any) -> None:
    settings.FACTPULSE_TASKS = {"BASE_URL": "nope", "API_KEY": "super-secret-key",
                                "BATCH_SIZE": -1, "TYPO": 1}
    text = " ".join(f"{m.msg} {m.hint}" for m in check_settings())
    assert "super-secret-key" not in text


def test_check_messages_never_show_a_password_or_webhook_secret(settings: Any) -> None:
    settings.FACTPULSE_TASKS = {"BASE_URL": "nope", "PASSWORD": "hunter2-pw", "TYPO": 1,
                                "WEBHOOK_SECRET": "tiny-whsec", "API_KEY": "k-1",
                                "USERNAME": "u", "WEBHOOK_URL": "nope"}
    text = " ".join(f"{m.msg} {m.hint}" for m in check_settings())
    assert "hunter2-pw" not in text and "tiny-whsec" not in text
# Deployment checks --------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://factpulse.example", "http://10.0.0.8:8000/"])
def test_w020_plain_http_outside_debug(settings: Any, url: str) -> None:
    settings.DEBUG = False
    settings.FACTPULSE_TASKS = {**GOOD, "BASE_URL": url}
    messages = check_base_url_scheme()
    assert [m.id for m in messages] == ["factpulse_tasks.W020"]
    assert url.rstrip("/") in messages[0].msg and "k-123" not in messages[0].msg


@pytest.mark.parametrize(
    ("debug", "url"),
    [
        (True, "http://factpulse.example"),  # DEBUG: a developer's machine
        (False, "https://factpulse.example"),
        (False, "http://127.0.0.1:8080"),  # loopback: a local proxy or a fake server
        (False, "http://localhost:8080"),
        (False, "http://[::1]:8080"),
        (False, ""),  # reported as E002
    ],
)
def test_w020_not_for_https_debug_or_loopback(settings: Any, debug: bool, url: str) -> None:
    settings.DEBUG = debug
    settings.FACTPULSE_TASKS = {**GOOD, "BASE_URL": url}
    assert check_base_url_scheme() == []


POLL_ENTRY = {"factpulse-poll": {"task": "factpulse_tasks.poll_due_tasks", "schedule": 5.0}}


@pytest.fixture
def celery(monkeypatch: pytest.MonkeyPatch) -> Celery:
    """The project's Celery app, as the check finds it."""
    app = Celery("factpulse-check-tests", set_as_current=False)
    monkeypatch.setattr(checks, "celery_app", lambda: app)
    return app


def test_w021_no_beat_entry_polls_the_tasks(settings: Any, celery: Celery) -> None:
    settings.CELERY_BEAT_SCHEDULE = {"other": {"task": "billing.send", "schedule": 60}}
    messages = check_beat_schedule()
    assert [m.id for m in messages] == ["factpulse_tasks.W021"]
    assert "factpulse_tasks.poll_due_tasks" in messages[0].msg
    assert "SILENCED_SYSTEM_CHECKS" in (messages[0].hint or "")


def test_w021_satisfied_by_the_settings_or_the_celery_app(settings: Any, celery: Celery) -> None:
    settings.CELERY_BEAT_SCHEDULE = POLL_ENTRY
    assert check_beat_schedule() == []
    del settings.CELERY_BEAT_SCHEDULE
    celery.conf.beat_schedule = POLL_ENTRY
    assert check_beat_schedule() == []


def test_w021_skipped_with_a_database_scheduler_or_without_celery(
    settings: Any, celery: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
    assert check_beat_schedule() == []
    del settings.CELERY_BEAT_SCHEDULER
    monkeypatch.setattr(checks, "celery_app", lambda: None)
    assert check_beat_schedule() == []


def storage_settings(settings: Any, tmp_path: Path, **options: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STORAGES = {
        **settings.STORAGES,
        "invoices": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                     "OPTIONS": options},
    }
    settings.FACTPULSE_TASKS = {**GOOD, "STORAGE": "invoices"}


def test_w022_artifacts_inside_a_served_media_root(settings: Any, tmp_path: Path) -> None:
    storage_settings(settings, tmp_path, location=str(tmp_path / "media" / "invoices"))
    settings.MEDIA_URL = "/media/"
    messages = check_artifact_storage()
    assert [m.id for m in messages] == ["factpulse_tasks.W022"]
    assert "MEDIA_ROOT" in messages[0].msg and "'/media/'" in messages[0].msg


def test_w022_artifacts_with_a_public_base_url(settings: Any, tmp_path: Path) -> None:
    storage_settings(settings, tmp_path, location=str(tmp_path / "private"),
                     base_url="https://files.example/invoices/")
    assert [m.id for m in check_artifact_storage()] == ["factpulse_tasks.W022"]


class PublicBucket(Storage):
    default_acl = "public-read"
    querystring_auth = True


class UnsignedBucket(Storage):
    default_acl = None
    querystring_auth = False


class PrivateBucket(Storage):
    default_acl = "private"
    querystring_auth = True


@pytest.mark.parametrize(("backend", "public"), [
    (PublicBucket, True), (UnsignedBucket, True), (PrivateBucket, False),
])
def test_w022_buckets_with_a_public_acl_or_unsigned_urls(
    settings: Any, backend: type, public: bool
) -> None:
    settings.STORAGES = {**settings.STORAGES,
                         "invoices": {"BACKEND": f"{__name__}.{backend.__name__}"}}
    settings.FACTPULSE_TASKS = {**GOOD, "STORAGE": "invoices"}
    expected = ["factpulse_tasks.W022"] if public else []
    assert [m.id for m in check_artifact_storage()] == expected


def test_w022_not_for_a_private_folder_or_an_unserved_media_root(
    settings: Any, tmp_path: Path
) -> None:
    # No MEDIA_URL chosen by the project: nothing says MEDIA_ROOT is served.
    storage_settings(settings, tmp_path, location=str(tmp_path / "media" / "invoices"))
    assert check_artifact_storage() == []
    settings.MEDIA_URL = "/media/"
    storage_settings(settings, tmp_path, location=str(tmp_path / "private"))
    assert check_artifact_storage() == []
    # A media root whose name starts the same, next to the folder and not above it.
    settings.MEDIA_ROOT = str(tmp_path / "priv")
    assert check_artifact_storage() == []


def test_deployment_checks_are_registered(settings: Any) -> None:
    from django.core.checks import registry

    registered = registry.registry.get_checks(include_deployment_checks=True)
    for check in (check_base_url_scheme, check_beat_schedule, check_artifact_storage):
        assert check in registered


def test_e030_reports_a_kind_put_in_the_registry_by_hand() -> None:
    from factpulse_tasks.checks import check_kinds
    from factpulse_tasks.kinds import REGISTRY, KindSpec
    from factpulse_tasks.results import parse_untyped

    REGISTRY["bad kind"] = KindSpec("bad kind", "/no/id/here", parse_untyped)
    try:
        messages = check_kinds()
    finally:
        del REGISTRY["bad kind"]
    assert [m.id for m in messages] == ["factpulse_tasks.E030"]
    assert "{task_id}" in messages[0].msg and "lower-case" in messages[0].msg
    assert check_kinds() == []


@pytest.mark.django_db
def test_w030_warns_about_unfinished_tasks_of_an_unregistered_kind() -> None:
    from django.utils import timezone

    from factpulse_tasks.checks import check_tracked_kinds
    from factpulse_tasks.models import FactPulseTask

    assert check_tracked_kinds(databases=["default"]) == []
    FactPulseTask.objects.create(task_id="t-1", kind="receipt", next_poll_at=timezone.now())
    FactPulseTask.objects.create(task_id="t-2", kind="generation", next_poll_at=timezone.now())

    messages = check_tracked_kinds(databases=["default"])

    assert [m.id for m in messages] == ["factpulse_tasks.W030"]
    assert "receipt" in messages[0].msg and "generation" not in messages[0].msg
    assert check_tracked_kinds(databases=None) == []
