"""Polling against the fake FactPulse over real HTTP: every outcome and every bad answer."""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from factpulse_tasks.models import Artifact, FactPulseTask
from factpulse_tasks.payloads import Failure, Success, Waiting
from factpulse_tasks.polling import poll_due
from factpulse_tasks.testing import FakeFactPulse, answers
from factpulse_tasks.transitions import apply, claim_due
from tests.conftest import API_KEY, SignalLog, drive

pytestmark = pytest.mark.django_db(transaction=True)

State = FactPulseTask.State

SUCCESS_CASES = {
    "generation-pdf": ("generation", lambda: answers.generation_success(output="pdf"),
                       "generation_finished"),
    "generation-xml": ("generation", lambda: answers.generation_success(output="xml"),
                       "generation_finished"),
    "signature": ("signature", answers.signature_success, "signature_finished"),
    "validation": ("validation", answers.validation_success, "validation_finished"),
    "status": ("status", answers.status_success, None),
}


def stored_bytes(artifact: Artifact) -> bytes:
    with artifact.file.open("rb") as handle:
        return handle.read()


@pytest.mark.parametrize("camel", [False, True], ids=["snake_case", "camelCase"])
@pytest.mark.parametrize("case", sorted(SUCCESS_CASES))
def test_every_kind_succeeds_with_its_files_and_signals(
    fake: FakeFactPulse, task_id: str, signal_log: SignalLog, case: str, camel: bool
) -> None:
    kind, build, kind_signal = SUCCESS_CASES[case]
    success = build()
    fake.script(task_id, answers.pending(), answers.started(),
                answers.camel_case(success) if camel else success)
    FactPulseTask.objects.track(task_id, kind, reference="FA-2026-0001")

    drive()

    task = FactPulseTask.objects.get(task_id=task_id)
    assert task.state == State.SUCCEEDED
    assert (task.remote_status, task.poll_count, task.error_code) == ("SUCCESS", 3, "")
    assert task.finished_at is not None and task.next_poll_at is None
    assert fake.status_calls(task_id) == 3
    stored = {a.role: a for a in task.artifacts.all()}
    assert set(stored) == set(success.files)
    for role, content in success.files.items():
        artifact = stored[role]
        assert stored_bytes(artifact) == content
        assert artifact.size == len(content)
        assert artifact.sha256 == hashlib.sha256(content).hexdigest()
        assert artifact.file.name.startswith(f"factpulse_tasks/{kind}/{task_id}/{role}-")
    assert "content_b64" not in (task.result or {}) and "xml_content" not in (task.result or {})
    expected = sorted(["task_finished"] + ([kind_signal] if kind_signal else []))
    assert signal_log.names_for(task_id) == expected


def test_generated_pdf_is_a_real_facturx_invoice(fake: FakeFactPulse, task_id: str) -> None:
    import facturx

    fake.script(task_id, answers.generation_success(output="pdf"))
    FactPulseTask.objects.track(task_id, "generation")
    drive()
    document = FactPulseTask.objects.get(task_id=task_id).artifacts.get(role="document")
    assert document.content_type == "application/pdf"
    xml_filename, xml = facturx.get_xml_from_pdf(stored_bytes(document), check_xsd=True)
    assert xml_filename == "factur-x.xml"
    assert b"CrossIndustryInvoice" in xml


def test_non_compliant_validation_succeeds_with_the_verdict(
    fake: FakeFactPulse, task_id: str
) -> None:
    fake.script(task_id, answers.validation_success(compliant=False))
    FactPulseTask.objects.track(task_id, "validation")
    drive()
    task = FactPulseTask.objects.get(task_id=task_id)
    assert task.state == State.SUCCEEDED
    verdict = task.result["validation_result"]
    assert verdict["isCompliant"] is False
    assert verdict["xmlErrors"] and verdict["pdfaErrors"]


def test_business_error_fails_with_the_afnor_error(
    fake: FakeFactPulse, task_id: str, signal_log: SignalLog
) -> None:
    error = answers.business_error()
    fake.script(task_id, answers.started(), error)
    FactPulseTask.objects.track(task_id, "generation")
    drive()
    task = FactPulseTask.objects.get(task_id=task_id)
    assert (task.state, task.remote_status) == (State.FAILED, "SUCCESS")
    expected = error.payload["result"]
    assert task.error_code == expected["errorCode"]
    assert task.error_message == expected["errorMessage"]
    assert task.error_details == expected["details"]
    assert not task.artifacts.exists()
    assert signal_log.names_for(task_id) == ["generation_finished", "task_finished"]


def test_celery_failure_fails_the_task(fake: FakeFactPulse, task_id: str,
                                       signal_log: SignalLog) -> None:
    fake.script(task_id, answers.celery_failure("Worker lost", code="WORKER_LOST"))
    FactPulseTask.objects.track(task_id, "signature")
    drive()
    task = FactPulseTask.objects.get(task_id=task_id)
    assert (task.state, task.remote_status, task.error_code, task.error_message) == (
        State.FAILED, "FAILURE", "WORKER_LOST", "Worker lost")
    assert signal_log.names_for(task_id) == ["signature_finished", "task_finished"]


def test_task_that_stays_pending_expires_once(
    fake: FakeFactPulse, task_id: str, signal_log: SignalLog, settings: Any
) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "TASK_TIMEOUT": 0.3}
    FactPulseTask.objects.track(task_id, "validation")  # never scripted: PENDING for ever
    first = poll_due()
    assert first.waiting == 1
    FactPulseTask.objects.filter(task_id=task_id).update(
        created_at=FactPulseTask.objects.get(task_id=task_id).created_at.replace(year=2020))
    second = poll_due()
    assert second.expired == 1
    task = FactPulseTask.objects.get(task_id=task_id)
    assert (task.state, task.error_code) == (State.EXPIRED, "TASK_EXPIRED")
    assert "PENDING" in task.error_message
    assert poll_due().claimed == 0
    assert signal_log.names_for(task_id) == ["task_finished", "validation_finished"]


def test_waiting_states_are_pending_or_running(fake: FakeFactPulse, task_id: str) -> None:
    fake.script(task_id, answers.started(), answers.retry(), answers.pending())
    FactPulseTask.objects.track(task_id, "generation")
    seen = []
    for _ in range(3):
        poll_due()
        task = FactPulseTask.objects.get(task_id=task_id)
        seen.append((task.state, task.remote_status))
    assert seen == [(State.RUNNING, "STARTED"), (State.RUNNING, "RETRY"),
                    (State.PENDING, "PENDING")]


def test_intervals_grow_and_are_capped(fake: FakeFactPulse, task_id: str,
                                       settings: Any) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "POLL_INTERVAL": 2,
                                "POLL_BACKOFF": 2, "POLL_MAX_INTERVAL": 10, "POLL_JITTER": 0}
    FactPulseTask.objects.track(task_id, "generation")
    delays = []
    for _ in range(5):
        FactPulseTask.objects.filter(task_id=task_id).update(
            next_poll_at=FactPulseTask.objects.get(task_id=task_id).created_at)
        poll_due()
        task = FactPulseTask.objects.get(task_id=task_id)
        delays.append(round((task.next_poll_at - task.last_polled_at).total_seconds()))
    assert delays == [2, 4, 8, 10, 10]


def test_jitter_spreads_intervals_within_its_fraction(settings: Any) -> None:
    from factpulse_tasks.transitions import next_interval

    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "POLL_INTERVAL": 10,
                                "POLL_BACKOFF": 1, "POLL_JITTER": 0.2}
    intervals = [next_interval(3) for _ in range(500)]
    assert 8 <= min(intervals) < 8.5
    assert 11.5 < max(intervals) <= 12


TRANSIENT = {
    "http-500": lambda: answers.http_error(500),
    "http-502-html": lambda: answers.http_error(502, b"<html>Bad gateway</html>", "text/html"),
    "http-503": lambda: answers.http_error(503, headers={"Retry-After": "1"}),
    "http-429": lambda: answers.http_error(429),
    "http-408": lambda: answers.http_error(408),
    "http-425": lambda: answers.http_error(425),
    "reset": answers.reset,
    "timeout": lambda: answers.hang(3),
    "html-200": lambda: answers.raw(b"<html>maintenance</html>", content_type="text/html"),
    "truncated-json": lambda: answers.raw(b'{"taskId": "x", "status": "SUC'),
    "json-list": lambda: answers.raw(b'["SUCCESS"]'),
    "no-status": lambda: answers.raw(b'{"result": null}'),
    "utf-16": lambda: answers.raw('{"status": "PENDING"}'.encode("utf-16")),
    "nan": lambda: answers.raw(b'{"status": "PENDING", "eta": NaN}'),
}


@pytest.mark.parametrize("trouble", sorted(TRANSIENT))
def test_transient_trouble_is_retried_and_the_task_still_succeeds(
    fake: FakeFactPulse, task_id: str, signal_log: SignalLog, trouble: str, settings: Any
) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "READ_TIMEOUT": 0.5}
    success = answers.signature_success()
    fake.script(task_id, TRANSIENT[trouble](), success)
    FactPulseTask.objects.track(task_id, "signature")

    first = poll_due()
    assert (first.errors, first.failed, first.succeeded) == (1, 0, 0)
    task = FactPulseTask.objects.get(task_id=task_id)
    assert task.state == State.PENDING
    assert (task.error_count, task.poll_count) == (1, 1)
    assert task.last_error
    assert API_KEY not in task.last_error

    FactPulseTask.objects.filter(pk=task.pk).update(next_poll_at=task.created_at)
    drive()
    task.refresh_from_db()
    assert task.state == State.SUCCEEDED
    assert (task.error_count, task.last_error) == (1, "")  # kept for history, cleared message
    assert task.artifacts.get().sha256 == success.sha256["document"]
    assert signal_log.names_for(task_id) == ["signature_finished", "task_finished"]


def test_retry_after_is_obeyed(fake: FakeFactPulse, task_id: str) -> None:
    fake.script(task_id, answers.http_error(429, headers={"Retry-After": "30"}))
    FactPulseTask.objects.track(task_id, "signature")
    poll_due()
    task = FactPulseTask.objects.get(task_id=task_id)
    assert (task.next_poll_at - task.last_polled_at).total_seconds() == pytest.approx(30, abs=1)
    assert poll_due().claimed == 0


def test_403_is_refused_like_a_401(fake: FakeFactPulse, task_id: str) -> None:
    fake.script(task_id, answers.http_error(403))
    FactPulseTask.objects.track(task_id, "generation")
    report = poll_due()
    task = FactPulseTask.objects.get(task_id=task_id)
    assert (report.refused, task.state) == (1, State.PENDING)
    assert "HTTP 403" in task.last_error and "API_KEY" in task.last_error


def test_revoked_task_fails(fake: FakeFactPulse, task_id: str, signal_log: SignalLog) -> None:
    fake.script(task_id, answers.raw(b'{"status": "REVOKED", "result": null}'))
    FactPulseTask.objects.track(task_id, "validation")
    poll_due()
    task = FactPulseTask.objects.get(task_id=task_id)
    assert (task.state, task.remote_status, task.error_code) == (
        State.FAILED, "REVOKED", "TASK_REVOKED")
    assert signal_log.names_for(task_id) == ["task_finished", "validation_finished"]


def test_401_is_reported_clearly_does_not_fail_and_stops_the_cycle(
    fake: FakeFactPulse, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "API_KEY": "wrong-key-9f8e",
                                "CONCURRENCY": 1, "POLL_MAX_INTERVAL": 60}
    for n in range(3):
        FactPulseTask.objects.track(f"auth-{n}-{id(caplog)}", "generation")
    with caplog.at_level(logging.ERROR, logger="factpulse_tasks"):
        report = poll_due()
    assert (report.claimed, report.polled, report.refused, report.released) == (3, 1, 1, 2)
    assert set(FactPulseTask.objects.values_list("state", flat=True)) == {State.PENDING}
    # The two not polled are given back for the longest interval, not kept for the lease.
    for task in FactPulseTask.objects.filter(last_error=""):
        assert 55 <= (task.next_poll_at - timezone.now()).total_seconds() <= 61
    refused = FactPulseTask.objects.exclude(last_error="").get()
    assert "HTTP 401" in refused.last_error and "API_KEY" in refused.last_error
    assert "HTTP 401" in caplog.text
    assert "wrong-key-9f8e" not in caplog.text + refused.last_error


def test_404_points_at_base_url_and_does_not_fail(fake: FakeFactPulse, settings: Any,
                                                  task_id: str) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS,
                                "BASE_URL": fake.base_url + "/wrong-prefix"}
    FactPulseTask.objects.track(task_id, "generation")
    report = poll_due()
    task = FactPulseTask.objects.get(task_id=task_id)
    assert (report.refused, task.state) == (1, State.PENDING)
    assert "BASE_URL" in task.last_error


def test_refused_polls_never_expire_a_task(fake: FakeFactPulse, settings: Any,
                                           task_id: str) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "API_KEY": "wrong", "TASK_TIMEOUT": 1}
    FactPulseTask.objects.track(task_id, "generation")
    FactPulseTask.objects.filter(task_id=task_id).update(
        created_at=FactPulseTask.objects.get(task_id=task_id).created_at.replace(year=2020))
    poll_due()
    assert FactPulseTask.objects.get(task_id=task_id).state == State.PENDING


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (answers.invalid_base64_success, "INVALID_RESULT"),
        (lambda: answers.celery_success({"status": "SUCCESS", "content_b64": None}),
         "INVALID_RESULT"),
        (lambda: answers.raw(b'{"status": "SUCCESS", "result": "done"}'), "INVALID_RESULT"),
        (lambda: answers.http_error(422), "HTTP_422"),
    ],
    ids=["invalid-base64", "missing-filename", "result-not-object", "http-422"],
)
def test_answer_that_can_never_succeed_fails_with_a_code_that_says_why(
    fake: FakeFactPulse, task_id: str, signal_log: SignalLog, answer: Any, code: str
) -> None:
    fake.script(task_id, answer())
    FactPulseTask.objects.track(task_id, "generation")
    report = poll_due()
    task = FactPulseTask.objects.get(task_id=task_id)
    assert (report.failed, task.state, task.error_code) == (1, State.FAILED, code)
    assert task.error_message
    assert not task.artifacts.exists()
    assert not list(Path(django_settings.MEDIA_ROOT).rglob("*.*"))
    assert signal_log.names_for(task_id) == ["generation_finished", "task_finished"]


def test_answer_for_another_task_id_is_not_trusted(fake: FakeFactPulse, task_id: str) -> None:
    fake.script(task_id, answers.raw(
        b'{"taskId": "someone-else", "status": "FAILURE", "result": null}'))
    FactPulseTask.objects.track(task_id, "generation")
    report = poll_due()
    task = FactPulseTask.objects.get(task_id=task_id)
    assert (report.errors, task.state) == (1, State.PENDING)
    assert "someone-else" in task.last_error


def test_response_over_the_size_cap_fails_without_reading_it_all(
    fake: FakeFactPulse, task_id: str, settings: Any
) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "MAX_RESPONSE_BYTES": 4096}
    fake.script(task_id, answers.generation_success())
    FactPulseTask.objects.track(task_id, "generation")
    poll_due()
    task = FactPulseTask.objects.get(task_id=task_id)
    assert (task.state, task.error_code) == (State.FAILED, "RESPONSE_TOO_LARGE")
    assert "MAX_RESPONSE_BYTES" in task.error_message


def test_bad_task_does_not_block_the_others(fake: FakeFactPulse) -> None:
    good, bad, slow = "good-1" + str(id(fake)), "bad-1" + str(id(fake)), "slow-1" + str(id(fake))
    fake.script(bad, answers.invalid_base64_success())
    fake.script(slow, answers.http_error(500))
    fake.script(good, answers.validation_success())
    for tid in (bad, slow, good):
        FactPulseTask.objects.track(tid, "generation" if tid != good else "validation")
    report = poll_due()
    assert (report.polled, report.failed, report.errors, report.succeeded) == (3, 1, 1, 1)


def test_final_state_never_changes_by_polling_again(fake: FakeFactPulse, task_id: str,
                                                    signal_log: SignalLog) -> None:
    fake.script(task_id, answers.business_error())
    task = FactPulseTask.objects.track(task_id, "generation")
    drive()
    finished = FactPulseTask.objects.get(pk=task.pk)
    # Someone replays a stale "success" against the finished row: nothing moves.
    assert apply(task, Success("SUCCESS", {"status": "SUCCESS"})) == "waiting"
    assert apply(task, Waiting("STARTED")) == "waiting"
    assert apply(task, Failure("FAILURE", "X", "x")) == "failed"
    again = FactPulseTask.objects.get(pk=task.pk)
    assert (again.state, again.error_code, again.finished_at, again.poll_count) == (
        finished.state, finished.error_code, finished.finished_at, finished.poll_count)
    assert signal_log.names_for(task_id) == ["generation_finished", "task_finished"]


def test_lost_race_deletes_its_file_and_sends_nothing(fake: FakeFactPulse, task_id: str,
                                                      signal_log: SignalLog) -> None:
    success = answers.generation_success()
    fake.script(task_id, success)
    stale = FactPulseTask.objects.track(task_id, "generation")
    drive()
    assert FactPulseTask.objects.get(pk=stale.pk).artifacts.count() == 2
    files_before = sorted(Path(django_settings.MEDIA_ROOT).rglob("*.*"))
    # A second worker that polled the same answer applies it late.
    from factpulse_tasks.payloads import parse_status
    from factpulse_tasks.results import parse_generation

    late = parse_status(success.json_for(task_id), parse_generation)
    assert apply(stale, late) == "waiting"
    assert sorted(Path(django_settings.MEDIA_ROOT).rglob("*.*")) == files_before
    assert Artifact.objects.filter(task=stale).count() == 2
    assert signal_log.names_for(task_id) == ["generation_finished", "task_finished"]


def test_receiver_that_raises_is_logged_and_does_not_undo_the_state(
    fake: FakeFactPulse, task_id: str, signal_log: SignalLog, caplog: pytest.LogCaptureFixture
) -> None:
    from factpulse_tasks.signals import task_finished

    def broken(sender: Any, task: FactPulseTask, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    task_finished.connect(broken, weak=False)
    try:
        fake.script(task_id, answers.validation_success())
        FactPulseTask.objects.track(task_id, "validation")
        with caplog.at_level(logging.ERROR, logger="factpulse_tasks"):
            drive()
    finally:
        task_finished.disconnect(broken)
    assert FactPulseTask.objects.get(task_id=task_id).state == State.SUCCEEDED
    assert task_id in caplog.text and "receiver bug" in caplog.text
    assert signal_log.names_for(task_id) == ["task_finished", "validation_finished"]


def test_storage_failure_keeps_the_task_for_a_later_poll(
    fake: FakeFactPulse, task_id: str, settings: Any, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the media folder should be")
    settings.MEDIA_ROOT = str(blocked)
    success = answers.generation_success()
    fake.script(task_id, success)
    FactPulseTask.objects.track(task_id, "generation")
    report = poll_due()
    task = FactPulseTask.objects.get(task_id=task_id)
    assert (report.errors, task.state) == (1, State.PENDING)
    assert "store" in task.last_error
    settings.MEDIA_ROOT = str(tmp_path / "media")
    FactPulseTask.objects.filter(pk=task.pk).update(next_poll_at=task.created_at)
    drive()
    task.refresh_from_db()
    assert task.state == State.SUCCEEDED
    assert {a.role: a.sha256 for a in task.artifacts.all()} == success.sha256


def test_claim_pushes_next_poll_forward_by_the_lease(fake: FakeFactPulse, task_id: str,
                                                     settings: Any) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "LEASE_SECONDS": 300}
    FactPulseTask.objects.track(task_id, "generation")
    claimed = claim_due()
    assert [t.task_id for t in claimed] == [task_id]
    assert claim_due() == []
    task = FactPulseTask.objects.get(task_id=task_id)
    assert task.next_poll_at == claimed[0].next_poll_at
    assert task.next_poll_at > timezone.now() + timedelta(seconds=299)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SKIP LOCKED needs PostgreSQL")
def test_two_workers_never_claim_the_same_task(fake: FakeFactPulse) -> None:
    for n in range(40):
        FactPulseTask.objects.track(f"race-{n}", "generation")
    results: list[list[str]] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        from django.db import connections

        barrier.wait()
        try:
            results.append([t.task_id for t in claim_due(limit=15)])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [tid for batch in results for tid in batch]
    assert len(claimed) == len(set(claimed)) == 40


def test_text_no_database_can_store_is_replaced_and_the_error_kept(
    fake: FakeFactPulse, task_id: str
) -> None:
    fake.script(task_id, answers.raw(
        b'{"taskId": "%s", "status": "SUCCESS", "result": {"status": "ERROR",'
        b' "errorCode": "BAD\\u0000CODE", "errorMessage": "SIRET \\ud800 absent",'
        b' "details": [{"level": "Error", "item": "BR-FR-01", "reason": "nul \\u0000 ici"}]}}'
        % task_id.encode()))
    FactPulseTask.objects.track(task_id, "generation")
    poll_due()
    task = FactPulseTask.objects.get(task_id=task_id)
    assert (task.state, task.error_code, task.error_message) == (
        State.FAILED, "BAD\ufffdCODE", "SIRET \ufffd absent")
    assert task.error_details[0]["reason"] == "nul \ufffd ici"


def test_a_task_that_breaks_the_poller_does_not_stop_the_cycle(
    fake: FakeFactPulse, caplog: pytest.LogCaptureFixture
) -> None:
    broken = FactPulseTask.objects.track("kind-removed-since", "generation")
    FactPulseTask.objects.filter(pk=broken.pk).update(kind="obsolete")
    fake.script("still-fine", answers.validation_success())
    FactPulseTask.objects.track("still-fine", "validation")
    with caplog.at_level(logging.ERROR, logger="factpulse_tasks"):
        report = poll_due()
    assert (report.polled, report.errors, report.succeeded) == (2, 1, 1)
    broken.refresh_from_db()
    assert broken.state == State.PENDING and "obsolete" in broken.last_error
    assert "kind-removed-since" in caplog.text


def test_artifacts_go_to_the_storage_named_in_the_settings(
    fake: FakeFactPulse, task_id: str, settings: Any, tmp_path: Path
) -> None:
    private = tmp_path / "private-invoices"
    settings.STORAGES = {
        **settings.STORAGES,
        "invoices": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                     "OPTIONS": {"location": str(private)}},
    }
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "STORAGE": "invoices",
                                "UPLOAD_PREFIX": "fp"}
    success = answers.signature_success()
    fake.script(task_id, success)
    FactPulseTask.objects.track(task_id, "signature")
    drive()
    artifact = FactPulseTask.objects.get(task_id=task_id).artifacts.get()
    on_disk = private / artifact.file.name
    assert artifact.file.name.startswith(f"fp/signature/{task_id}/document-")
    assert hashlib.sha256(on_disk.read_bytes()).hexdigest() == success.sha256["document"]
    assert stored_bytes(artifact) == success.files["document"]
    assert not list(Path(django_settings.MEDIA_ROOT).rglob("*.*"))


def test_cycle_stops_before_its_lease_runs_out(fake: FakeFactPulse, settings: Any) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "LEASE_SECONDS": 1,
                                "READ_TIMEOUT": 5}
    for n in range(4):
        fake.script(f"slow-{n}", answers.hang(0.5, answers.validation_success()))
        FactPulseTask.objects.track(f"slow-{n}", "validation")
    report = poll_due()
    assert report.claimed == 4
    assert 1 <= report.polled < 4
    left = FactPulseTask.objects.unfinished()
    assert left.count() == 4 - report.succeeded
    assert all(t.poll_count == 0 for t in left)


def test_polling_refuses_to_run_inside_a_transaction(
    fake: FakeFactPulse, task_id: str, signal_log: SignalLog
) -> None:
    from django.db import transaction

    from factpulse_tasks.exceptions import PollInsideTransaction

    fake.script(task_id, answers.signature_success())
    FactPulseTask.objects.track(task_id, "signature")
    with pytest.raises(PollInsideTransaction, match="transactional_db"), transaction.atomic():
        poll_due()
    assert fake.status_calls(task_id) == 0
    assert not list(Path(django_settings.MEDIA_ROOT).rglob("*.*"))
    drive()
    assert signal_log.names_for(task_id) == ["signature_finished", "task_finished"]


@pytest.mark.django_db(transaction=True, databases=["default", "other"])
def test_tasks_routed_to_another_database_are_polled_there(
    fake: FakeFactPulse, task_id: str, signal_log: SignalLog, settings: Any
) -> None:
    from django.db import connections, transaction

    from factpulse_tasks.exceptions import PollInsideTransaction

    settings.DATABASE_ROUTERS = ["tests.routers.FactPulseTasksElsewhere"]
    fake.script(task_id, answers.started(), answers.signature_success())
    FactPulseTask.objects.track(task_id, "signature")
    assert FactPulseTask.objects.using("default").count() == 0
    with pytest.raises(PollInsideTransaction), transaction.atomic(using="other"):
        poll_due()
    drive()
    task = FactPulseTask.objects.using("other").get(task_id=task_id)
    assert task.state == State.SUCCEEDED and task.artifacts.count() == 1
    assert not connections["other"].in_atomic_block
    assert signal_log.names_for(task_id) == ["signature_finished", "task_finished"]


def test_celery_soft_time_limit_stops_the_cycle_and_keeps_the_claims(
    fake: FakeFactPulse, settings: Any
) -> None:
    from celery.exceptions import SoftTimeLimitExceeded

    from factpulse_tasks.client import FactPulseClient

    class LimitedClient(FactPulseClient):
        """Stands for a Celery worker whose soft time limit fires during the first call."""

        def get_json(self, path: str) -> dict[str, Any]:
            raise SoftTimeLimitExceeded()

    for n in range(3):
        FactPulseTask.objects.track(f"soft-{n}", "generation")
    client = LimitedClient(fake.base_url, API_KEY)
    with pytest.raises(SoftTimeLimitExceeded):
        poll_due(client=client)
    tasks = FactPulseTask.objects.filter(task_id__startswith="soft-")
    assert [t.last_error for t in tasks] == ["", "", ""]
    assert all(t.next_poll_at > t.created_at for t in tasks)  # still leased
    assert FactPulseTask.objects.due().filter(task_id__startswith="soft-").count() == 0
