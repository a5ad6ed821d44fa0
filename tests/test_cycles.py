"""Polling cycles at size: concurrent calls, backing off, notifications recorded and resent."""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import FileSystemStorage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from factpulse_tasks import notifications, transitions
from factpulse_tasks.client import FactPulseClient
from factpulse_tasks.models import FactPulseTask
from factpulse_tasks.polling import fetch_status, poll_due
from factpulse_tasks.signals import task_finished
from factpulse_tasks.testing import FakeFactPulse, answers
from tests.conftest import SignalLog, drive

pytestmark = pytest.mark.django_db(transaction=True)
State = FactPulseTask.State


def track_many(fake: FakeFactPulse, count: int, *script: answers.Answer,
               kind: str = "validation") -> list[str]:
    batch = uuid.uuid4().hex[:12]
    ids = [f"cycle-{batch}-{n:04d}" for n in range(count)]
    for task_id in ids:
        if script:
            fake.script(task_id, *script)
        FactPulseTask.objects.track(task_id, kind)
    return ids


@pytest.fixture
def slow_fake(fake: FakeFactPulse) -> Any:
    fake.latency = 0.2
    fake.max_in_flight = 0
    yield fake
    fake.latency = 0.0


def test_calls_of_one_cycle_run_concurrently_up_to_the_setting(slow_fake: FakeFactPulse,
                                                               settings: Any) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "CONCURRENCY": 4}
    track_many(slow_fake, 12)
    report = poll_due()
    assert (report.claimed, report.polled, report.waiting) == (12, 12, 12)
    assert slow_fake.max_in_flight == 4


def test_one_thread_polls_one_task_at_a_time(slow_fake: FakeFactPulse, settings: Any) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "CONCURRENCY": 1}
    track_many(slow_fake, 3)
    assert poll_due().polled == 3
    assert slow_fake.max_in_flight == 1


def test_a_burst_of_transport_errors_stops_the_cycle_and_backs_off(
    fake: FakeFactPulse, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "CONCURRENCY": 1,
                                "POLL_INTERVAL": 1, "POLL_MAX_INTERVAL": 30, "POLL_JITTER": 0}
    ids = track_many(fake, 20, answers.http_error(503))
    with caplog.at_level(logging.WARNING, logger="factpulse_tasks"):
        report = poll_due()
    assert (report.polled, report.errors, report.released) == (5, 5, 15)
    assert sum(fake.status_calls(task_id) for task_id in ids) == 5
    assert "5 FactPulse calls in a row failed" in caplog.text
    released = FactPulseTask.objects.filter(poll_count=0)
    assert released.count() == 15
    for task in released:
        assert (task.next_poll_at - timezone.now()).total_seconds() > 3
    assert poll_due().claimed == 0  # nothing hammers FactPulse at the next tick


def test_tasks_not_started_before_the_lease_ends_are_given_back(
    slow_fake: FakeFactPulse, settings: Any
) -> None:
    # A lease shorter than one call: only the first call may start.
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "CONCURRENCY": 1,
                                "LEASE_SECONDS": 1, "TOTAL_TIMEOUT": 5}
    track_many(slow_fake, 3)
    report = poll_due()
    assert (report.polled, report.released) == (1, 2)
    assert FactPulseTask.objects.due().filter(poll_count=0).count() == 2


def test_a_cycle_logs_one_structured_line(fake: FakeFactPulse,
                                         caplog: pytest.LogCaptureFixture) -> None:
    ids = track_many(fake, 3, answers.validation_success())
    fake.script(ids[0], answers.pending())
    with caplog.at_level(logging.INFO, logger="factpulse_tasks"):
        poll_due()
    [line] = [r for r in caplog.records if r.getMessage().startswith("factpulse poll cycle")]
    assert "claimed=3 polled=3 finished=2 waiting=1 errors=0" in line.getMessage()
    assert line.factpulse_cycle["succeeded"] == 2  # type: ignore[attr-defined]


def test_a_poll_costs_at_most_two_queries_on_average(fake: FakeFactPulse) -> None:
    ids = track_many(fake, 20, answers.pending(), answers.started(),
                     answers.validation_success())
    fake.script(ids[0], answers.pending(), answers.started(), answers.business_error())
    polls = 0
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            polls += poll_due().polled
    assert polls == 60 and not FactPulseTask.objects.unfinished().exists()
    # BEGIN and COMMIT are logged on SQLite only; they are not queries.
    statements = [q["sql"] for q in queries.captured_queries
                  if q["sql"] not in ("BEGIN", "COMMIT")]
    assert len(statements) / polls <= 2, statements[:12]


def test_a_raising_receiver_is_recorded_and_the_resend_reaches_it(
    fake: FakeFactPulse, task_id: str, signal_log: SignalLog,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = True

    def flaky_receiver(sender: Any, task: FactPulseTask, **kwargs: Any) -> None:
        if broken:
            raise ConnectionError("accounting system down")

    task_finished.connect(flaky_receiver, weak=False)
    try:
        fake.script(task_id, answers.validation_success())
        FactPulseTask.objects.track(task_id, "validation")
        with caplog.at_level(logging.ERROR, logger="factpulse_tasks"):
            drive()
        task = FactPulseTask.objects.get(task_id=task_id)
        assert task.state == State.SUCCEEDED and task.notified_at is not None
        assert "flaky_receiver: ConnectionError: accounting system down" in (
            task.notification_error)
        assert task_id in caplog.text
        broken = False
        assert notifications.resend_finished([task.pk]) == (1, 0)
    finally:
        task_finished.disconnect(flaky_receiver)
    task.refresh_from_db()
    assert task.notification_error == ""
    assert signal_log.names_for(task_id) == ["task_finished", "task_finished",
                                             "validation_finished", "validation_finished"]


def test_a_good_notification_is_recorded_without_refetching_the_task(
    fake: FakeFactPulse, task_id: str
) -> None:
    seen: list[tuple[str, int, Any]] = []

    def receiver(sender: Any, task: FactPulseTask, **kwargs: Any) -> None:
        seen.append((task.state, task.poll_count, task.finished_at))

    task_finished.connect(receiver, weak=False)
    try:
        fake.script(task_id, answers.pending(), answers.validation_success())
        FactPulseTask.objects.track(task_id, "validation")
        drive()
    finally:
        task_finished.disconnect(receiver)
    task = FactPulseTask.objects.get(task_id=task_id)
    assert seen == [(State.SUCCEEDED, 2, task.finished_at)]
    assert task.notified_at is not None and task.notification_error == ""


def test_signals_lost_by_a_dead_process_are_sent_once_by_a_later_cycle(
    fake: FakeFactPulse, task_id: str, signal_log: SignalLog, settings: Any
) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "LEASE_SECONDS": 60}
    fake.script(task_id, answers.validation_success())
    FactPulseTask.objects.track(task_id, "validation")
    drive()
    # As if the process had died between its commit and its signals, long ago.
    FactPulseTask.objects.filter(task_id=task_id).update(
        notified_at=None, finished_at=timezone.now() - timedelta(seconds=61))
    signal_log.calls.clear()
    assert poll_due().renotified == 1
    assert poll_due().renotified == 0
    assert signal_log.names_for(task_id) == ["task_finished", "validation_finished"]


def test_recent_finishes_without_a_notification_are_left_to_their_process(
    fake: FakeFactPulse, task_id: str, signal_log: SignalLog
) -> None:
    fake.script(task_id, answers.validation_success())
    FactPulseTask.objects.track(task_id, "validation")
    drive()
    FactPulseTask.objects.filter(task_id=task_id).update(notified_at=None)
    assert poll_due().renotified == 0


def test_retry_polls_a_failed_task_again_and_signals_its_new_outcome(
    fake: FakeFactPulse, task_id: str, signal_log: SignalLog
) -> None:
    fake.script(task_id, answers.business_error())
    FactPulseTask.objects.track(task_id, "validation")
    drive()
    task = FactPulseTask.objects.get(task_id=task_id)
    assert task.state == State.FAILED
    fake.script(task_id, answers.validation_success())
    assert transitions.retry([task.pk]) == 1
    task.refresh_from_db()
    assert (task.state, task.error_code, task.finished_at, task.notified_at) == (
        State.PENDING, "", None, None)
    drive()
    task.refresh_from_db()
    assert task.state == State.SUCCEEDED and task.error_code == ""
    assert [c[2] for c in signal_log.calls if c[0] == "task_finished"] == [
        State.FAILED, State.SUCCEEDED]


def test_retry_leaves_succeeded_and_unfinished_tasks_alone(fake: FakeFactPulse) -> None:
    done, waiting = track_many(fake, 2, answers.validation_success())
    fake.script(waiting, answers.pending())
    drive(max_cycles=1)
    pks = list(FactPulseTask.objects.values_list("pk", flat=True))
    assert transitions.retry(pks) == 0


def test_a_retried_task_gets_a_new_timeout(fake: FakeFactPulse, task_id: str,
                                          settings: Any) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "TASK_TIMEOUT": 60}
    FactPulseTask.objects.track(task_id, "validation")
    FactPulseTask.objects.filter(task_id=task_id).update(
        created_at=timezone.now() - timedelta(hours=2))
    drive(max_cycles=1)
    task = FactPulseTask.objects.get(task_id=task_id)
    assert task.state == State.EXPIRED
    transitions.retry([task.pk])
    drive(max_cycles=1)
    task.refresh_from_db()
    assert task.state == State.PENDING and task.retried_at is not None


def test_mark_expired_finishes_unfinished_tasks_once(fake: FakeFactPulse,
                                                     signal_log: SignalLog) -> None:
    ids = track_many(fake, 2)
    pks = list(FactPulseTask.objects.values_list("pk", flat=True))
    assert transitions.mark_expired(pks) == 2
    assert transitions.mark_expired(pks) == 0
    assert set(FactPulseTask.objects.values_list("state", flat=True)) == {State.EXPIRED}
    assert sorted(c[1] for c in signal_log.calls if c[0] == "task_finished") == sorted(ids)


def test_files_left_by_an_interrupted_attempt_are_deleted_on_success(
    fake: FakeFactPulse, task_id: str, settings: Any
) -> None:
    folder = Path(settings.MEDIA_ROOT) / "factpulse_tasks" / "generation" / task_id
    folder.mkdir(parents=True)
    (folder / "document-FA-2026-0001.pdf").write_bytes(b"%PDF-1.7 half written")
    fake.script(task_id, answers.generation_success())
    FactPulseTask.objects.track(task_id, "generation")
    drive()
    task = FactPulseTask.objects.get(task_id=task_id)
    kept = {Path(settings.MEDIA_ROOT, a.file.name) for a in task.artifacts.all()}
    assert set(folder.iterdir()) == kept and len(kept) == 2


def test_make_due_brings_the_next_poll_forward(fake: FakeFactPulse, task_id: str,
                                               settings: Any) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "POLL_INTERVAL": 600,
                                "POLL_MAX_INTERVAL": 600}
    task = FactPulseTask.objects.track(task_id, "validation")
    drive(max_cycles=1)
    assert poll_due().claimed == 0
    assert transitions.make_due([task.pk]) == 1
    assert poll_due(pks=[task.pk]).polled == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the plan is PostgreSQL's")
def test_the_claim_reads_the_partial_index_not_the_finished_rows() -> None:
    table = FactPulseTask._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (task_id, kind, state, reference, metadata, remote_status, "
            "error_code, error_message, error_details, last_error, error_count, poll_count, "
            "created_at, updated_at, next_poll_at, finished_at, notified_at, notification_error) "
            "SELECT 'done-' || n, 'validation', 'succeeded', '', '{}', 'SUCCESS', '', '', '[]', "
            "'', 0, 3, now(), now(), NULL, now(), now(), '' FROM generate_series(1, 20000) n")
        cursor.execute(
            f"INSERT INTO {table} (task_id, kind, state, reference, metadata, remote_status, "
            "error_code, error_message, error_details, last_error, error_count, poll_count, "
            "created_at, updated_at, next_poll_at, notification_error) "
            "SELECT 'open-' || n, 'validation', 'pending', '', '{}', '', '', '', '[]', '', 0, 0, "
            "now(), now(), now(), '' FROM generate_series(1, 50) n")
        cursor.execute(f"ANALYZE {table}")
        query = FactPulseTask.objects.due().order_by("next_poll_at", "pk")[:250]
        sql, params = query.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "factpulse_task_due_idx" in plan, plan
    assert "Seq Scan" not in plan, plan


class OverwritingStorage(FileSystemStorage):
    """Saves under the name asked for, replacing any file there (as S3 and GCS do)."""

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        return name


def test_a_losing_attempt_never_deletes_the_winners_files_on_an_overwriting_storage(
    fake: FakeFactPulse, task_id: str, settings: Any
) -> None:
    settings.STORAGES = {**settings.STORAGES, "overwriting": {
        "BACKEND": f"{__name__}.OverwritingStorage"}}
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "STORAGE": "overwriting"}
    fake.script(task_id, answers.generation_success())
    task = FactPulseTask.objects.track(task_id, "generation")
    update = fetch_status(task, FactPulseClient.from_settings())
    assert transitions.apply(task, update) == "succeeded"
    # Another worker polled the same task meanwhile and comes second with the same files.
    late = FactPulseTask.objects.get(pk=task.pk)
    late.state = State.RUNNING
    assert transitions.apply(late, update) == "waiting"
    for artifact in task.artifacts.all():
        assert hashlib.sha256(artifact.file.read()).hexdigest() == artifact.sha256
    stored = list((Path(settings.MEDIA_ROOT) / "factpulse_tasks").rglob("*.*"))
    assert len(stored) == 2


def test_a_file_name_too_long_for_the_column_is_shortened(
    fake: FakeFactPulse, task_id: str
) -> None:
    fake.script(task_id, answers.generation_success(filename="F" * 200 + ".pdf"))
    FactPulseTask.objects.track(task_id, "generation")
    drive()
    artifact = FactPulseTask.objects.get(task_id=task_id).artifacts.get(role="document")
    assert len(artifact.file.name) <= 255 and artifact.file.name.endswith(".pdf")
    assert artifact.filename.endswith(".pdf")


def test_tracking_asks_no_broker_when_none_is_configured(
    fake: FakeFactPulse, task_id: str, settings: Any
) -> None:
    from factpulse_tasks.tasks import request_poll
    from tests.conftest import current_celery

    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "POLL_ON_TRACK": True}
    # Celery's fallback would be a RabbitMQ on localhost, perhaps another project's.
    with current_celery(task_always_eager=False, broker_url=None):
        FactPulseTask.objects.track(task_id, "validation")
        assert request_poll() is False
    assert fake.status_calls(task_id) == 0


def test_without_a_broker_a_requested_poll_of_tasks_runs_here(
    fake: FakeFactPulse, task_id: str
) -> None:
    from factpulse_tasks.tasks import request_poll_of
    from tests.conftest import current_celery

    fake.script(task_id, answers.validation_success())
    task = FactPulseTask.objects.track(task_id, "validation")
    with current_celery(task_always_eager=False, broker_url=None):
        assert request_poll_of([task.pk]) is True
    assert FactPulseTask.objects.get(pk=task.pk).state == State.SUCCEEDED
