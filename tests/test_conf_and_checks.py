"""Settings validation and the system checks, one test per check id."""

from __future__ import annotations

from typing import Any

import pytest

from factpulse_tasks.checks import check_settings
from factpulse_tasks.conf import DEFAULTS, app_settings
from factpulse_tasks.exceptions import ConfigurationError

GOOD = {"BASE_URL": "https://factpulse.example", "API_KEY": "k-123"}


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
    assert ids(settings, {"BASE_URL": GOOD["BASE_URL"]}) == ["factpulse_tasks.E003"]


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
