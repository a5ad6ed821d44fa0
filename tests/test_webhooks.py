"""The webhook receiver: verify on the raw body, then poll the task at once.

Requests go through the Django test client (the whole stack: middleware, URLconf,
view); the poll they start is a real HTTP call to the fake FactPulse.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from celery import Celery
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from factpulse_tasks.exceptions import WebhookVerificationError
from factpulse_tasks.models import FactPulseTask
from factpulse_tasks.polling import poll_due
from factpulse_tasks.testing import FakeFactPulse, answers
from factpulse_tasks.webhooks import EVENT_TYPES, sign, verify_signature

from .conftest import SignalLog, current_celery

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "whsec-tests-6c1f0e5b9a8d4f3e2b1a0c9d8e7f6a5b"
URL = "/factpulse/webhook/"


@pytest.fixture
def hooks(fake: FakeFactPulse, settings: Any, eager_celery: Celery) -> FakeFactPulse:
    """The fake FactPulse, webhooks on, and polling slow enough that only events make it quick."""
    settings.FACTPULSE_TASKS = {
        **settings.FACTPULSE_TASKS,
        "WEBHOOK_SECRET": SECRET,
        "POLL_INTERVAL": 3600,
        "POLL_MAX_INTERVAL": 3600,
    }
    return fake


def event(task_id: str, event_type: str = "generation.completed") -> bytes:
    return json.dumps({"event_type": event_type, "data": {"task_id": task_id}}).encode()


def post(body: bytes, signature: str | None = None, *, secret: str = SECRET, **extra: Any) -> Any:
    headers = {}
    if signature is None:
        signature = sign(body, secret)
    if signature:
        headers["HTTP_X_WEBHOOK_SIGNATURE"] = signature
    return Client().post(URL, body, content_type="application/json", **headers, **extra)


def waiting_task(fake: FakeFactPulse, task_id: str, kind: str = "generation",
                 final: answers.Answer | None = None) -> FactPulseTask:
    """A tracked task, polled once (PENDING), next due in an hour."""
    fake.script(task_id, answers.pending(), final or answers.generation_success())
    FactPulseTask.objects.track(task_id, kind)
    assert poll_due().waiting == 1
    return FactPulseTask.objects.get(task_id=task_id)


def test_the_view_is_routed_under_its_name() -> None:
    assert reverse("factpulse_tasks:webhook") == URL


def test_signed_event_polls_its_task_at_once_and_finishes_it(
    hooks: FakeFactPulse, task_id: str, signal_log: SignalLog
) -> None:
    waiting_task(hooks, task_id)
    response = post(event(task_id))
    assert response.status_code == 200
    assert response.json() == {"status": "due"}
    task = FactPulseTask.objects.get(task_id=task_id)
    assert task.state == FactPulseTask.State.SUCCEEDED
    assert hooks.status_calls(task_id) == 2
    assert signal_log.names_for(task_id) == ["generation_finished", "task_finished"]


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_each_event_type_polls_the_typed_status_endpoint_of_the_task(
    hooks: FakeFactPulse, task_id: str, event_type: str, signal_log: SignalLog
) -> None:
    kind = EVENT_TYPES[event_type]
    final = {
        "generation": answers.generation_success(),
        "signature": answers.signature_success(),
        "validation": answers.validation_success(compliant=event_type.endswith("completed")),
    }[kind]
    waiting_task(hooks, task_id, kind, final)
    assert post(event(task_id, event_type)).json() == {"status": "due"}
    assert FactPulseTask.objects.get(task_id=task_id).state == FactPulseTask.State.SUCCEEDED
    paths = [r.path for r in hooks.requests if r.task_id == task_id]
    assert paths == [f"/api/v1/processing/tasks/{task_id}/{kind}-status"] * 2
    assert signal_log.names_for(task_id) == sorted([f"{kind}_finished", "task_finished"])


def test_the_event_body_is_not_trusted_for_the_outcome(
    hooks: FakeFactPulse, task_id: str
) -> None:
    # The event says completed; the status endpoint says the business check failed.
    waiting_task(hooks, task_id, final=answers.business_error())
    post(event(task_id, "generation.completed"))
    task = FactPulseTask.objects.get(task_id=task_id)
    assert (task.state, task.error_code) == (FactPulseTask.State.FAILED, "VALIDATION_FAILED")


def test_an_event_of_an_unknown_type_still_only_polls(
    hooks: FakeFactPulse, task_id: str
) -> None:
    waiting_task(hooks, task_id)
    assert post(event(task_id, "generation.progress")).json() == {"status": "due"}
    assert FactPulseTask.objects.get(task_id=task_id).state == FactPulseTask.State.SUCCEEDED


def test_duplicate_deliveries_make_one_final_move_and_one_set_of_signals(
    hooks: FakeFactPulse, task_id: str, signal_log: SignalLog
) -> None:
    waiting_task(hooks, task_id)
    statuses = [post(event(task_id)).json()["status"] for _ in range(3)]
    assert statuses == ["due", "finished", "finished"]
    assert hooks.status_calls(task_id) == 2
    assert signal_log.names_for(task_id) == ["generation_finished", "task_finished"]


def test_an_early_event_leaves_the_task_waiting_and_the_next_one_finishes_it(
    hooks: FakeFactPulse, task_id: str, signal_log: SignalLog
) -> None:
    # Out of order: an event arrives while the status endpoint still says STARTED.
    hooks.script(task_id, answers.pending(), answers.started(), answers.generation_success())
    FactPulseTask.objects.track(task_id, "generation")
    poll_due()
    assert post(event(task_id, "generation.failed")).json() == {"status": "due"}
    task = FactPulseTask.objects.get(task_id=task_id)
    assert task.state == FactPulseTask.State.RUNNING
    assert task.next_poll_at > timezone.now() + timedelta(minutes=30)
    assert post(event(task_id, "generation.completed")).json() == {"status": "due"}
    assert FactPulseTask.objects.get(task_id=task_id).state == FactPulseTask.State.SUCCEEDED
    assert signal_log.names_for(task_id) == ["generation_finished", "task_finished"]


def test_an_event_for_a_task_not_tracked_here_is_acknowledged_and_logged(
    hooks: FakeFactPulse, task_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="factpulse_tasks"):
        response = post(event(task_id))
    assert response.status_code == 200
    assert response.json() == {"status": "unknown"}
    assert task_id in caplog.text and "not tracked" in caplog.text
    assert hooks.status_calls(task_id) == 0
    assert not FactPulseTask.objects.exists()


def test_an_event_with_an_id_no_task_can_have_is_acknowledged(hooks: FakeFactPulse) -> None:
    response = post(event("../../etc/passwd"))
    assert (response.status_code, response.json()) == (200, {"status": "unknown"})


# -- requests that fail verification change nothing ----------------------------------


def assert_untouched(fake: FakeFactPulse, task: FactPulseTask) -> None:
    after = FactPulseTask.objects.get(pk=task.pk)
    assert (after.state, after.next_poll_at, after.poll_count) == (
        task.state, task.next_poll_at, task.poll_count)
    assert fake.status_calls(task.task_id) == 1


def test_a_tampered_body_is_refused(hooks: FakeFactPulse, task_id: str) -> None:
    task = waiting_task(hooks, task_id)
    body = event(task_id)
    tampered = body.replace(b"completed", b"failed")
    response = post(tampered, sign(body, SECRET))
    assert response.status_code == 401
    assert_untouched(hooks, task)


def test_a_signature_made_with_another_secret_is_refused(
    hooks: FakeFactPulse, task_id: str
) -> None:
    task = waiting_task(hooks, task_id)
    assert post(event(task_id), secret="not-the-shared-secret").status_code == 401
    assert_untouched(hooks, task)


def test_a_request_without_signature_is_refused(hooks: FakeFactPulse, task_id: str) -> None:
    task = waiting_task(hooks, task_id)
    assert post(event(task_id), "").status_code == 401
    assert_untouched(hooks, task)


def test_a_signature_of_the_reserialised_json_is_refused(
    hooks: FakeFactPulse, task_id: str
) -> None:
    # The signature covers the bytes received, not a JSON value equal to them.
    task = waiting_task(hooks, task_id)
    body = b'{ "event_type" : "generation.completed",\n  "data": {"task_id": "%s"} }' % (
        task_id.encode())
    reserialised = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert post(body, sign(reserialised, SECRET)).status_code == 401
    assert_untouched(hooks, task)
    assert post(body).status_code == 200  # the same body, signed as sent


@pytest.mark.parametrize(
    "header",
    ["sha256=", "sha256=zz", "md5=d41d8cd98f00b204e9800998ecf8427e", "sha256 = abc",
     "sha256=é", "Bearer abc", "sha1=" + "0" * 40],
)
def test_a_malformed_signature_header_is_refused(
    hooks: FakeFactPulse, task_id: str, header: str
) -> None:
    task = waiting_task(hooks, task_id)
    assert post(event(task_id), header).status_code == 401
    assert_untouched(hooks, task)


def test_the_signature_hex_may_be_upper_case(hooks: FakeFactPulse, task_id: str) -> None:
    waiting_task(hooks, task_id)
    body = event(task_id)
    signature = "sha256=" + sign(body, SECRET).removeprefix("sha256=").upper()
    assert post(body, signature).status_code == 200


def test_without_a_secret_every_request_is_refused(
    hooks: FakeFactPulse, task_id: str, settings: Any
) -> None:
    task = waiting_task(hooks, task_id)
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "WEBHOOK_SECRET": ""}
    # Even one signed with the empty secret, which anybody can compute.
    assert post(event(task_id), secret="").status_code == 403
    assert_untouched(hooks, task)
    with pytest.raises(WebhookVerificationError):
        verify_signature(b"{}", sign(b"{}", ""), "")


def test_a_body_over_the_size_limit_is_refused_with_413(
    hooks: FakeFactPulse, task_id: str, settings: Any
) -> None:
    task = waiting_task(hooks, task_id)
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "WEBHOOK_MAX_BYTES": 1024}
    body = json.dumps({"event_type": "generation.completed",
                       "data": {"task_id": task_id, "content_b64": "A" * 2000}}).encode()
    assert post(body).status_code == 413
    assert_untouched(hooks, task)


def test_a_chunked_body_without_length_is_refused_with_411(
    hooks: FakeFactPulse, task_id: str
) -> None:
    task = waiting_task(hooks, task_id)
    body = json.dumps({"event_type": "generation.completed",
                       "data": {"task_id": task_id}}).encode()
    response = post(body, CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked")
    assert response.status_code == 411
    assert_untouched(hooks, task)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe{}",
        b"[]",
        b'"generation.completed"',
        b'{"event_type": "generation.completed"}',
        b'{"event_type": "generation.completed", "data": []}',
        b'{"event_type": "generation.completed", "data": {}}',
        b'{"event_type": "generation.completed", "data": {"task_id": 42}}',
        b'{"event_type": "generation.completed", "data": {"task_id": ""}}',
        b'{"event_type": 7, "data": {"task_id": "abc"}}',
        b'{"event_type": "", "data": {"task_id": "abc"}}',
        b'{"event_type": "generation.completed", "data": {"task_id": "abc"}, "x": NaN}',
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_a_signed_body_that_is_not_an_event_gets_400(
    hooks: FakeFactPulse, task_id: str, body: bytes
) -> None:
    task = waiting_task(hooks, task_id)
    assert post(body).status_code == 400
    assert_untouched(hooks, task)


def test_only_post_is_accepted(hooks: FakeFactPulse) -> None:
    assert Client().get(URL).status_code == 405
    assert Client().put(URL, b"{}").status_code == 405


def test_the_view_needs_no_csrf_token(hooks: FakeFactPulse, task_id: str) -> None:
    waiting_task(hooks, task_id)
    body = event(task_id)
    response = Client(enforce_csrf_checks=True).post(
        URL, body, content_type="application/json",
        HTTP_X_WEBHOOK_SIGNATURE=sign(body, SECRET))
    assert response.status_code == 200


def test_refusals_never_show_the_secret_or_the_signature(
    hooks: FakeFactPulse, task_id: str, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    waiting_task(hooks, task_id)
    body = event(task_id)
    good = sign(body, SECRET)
    with caplog.at_level(logging.DEBUG):
        replies = [post(body.replace(b"completed", b"failed"), good), post(body, "sha256=00"),
                   post(body, good), post(b"nope")]
        settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "WEBHOOK_SECRET": "é-bad"}
        replies.append(post(body, good))
    shown = caplog.text + "".join(r.content.decode() for r in replies)
    assert [r.status_code for r in replies] == [401, 401, 200, 400, 403]
    for secret in (SECRET, good, good.removeprefix("sha256="), "é-bad"):
        assert secret not in shown


# -- when the poll runs --------------------------------------------------------------


def test_under_atomic_requests_the_poll_runs_after_the_commit(
    hooks: FakeFactPulse, task_id: str, signal_log: SignalLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiting_task(hooks, task_id)
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    assert post(event(task_id)).json() == {"status": "due"}
    assert FactPulseTask.objects.get(task_id=task_id).state == FactPulseTask.State.SUCCEEDED
    assert signal_log.names_for(task_id) == ["generation_finished", "task_finished"]


def test_without_a_reachable_broker_the_task_is_left_due_for_the_next_cycle(
    fake: FakeFactPulse, settings: Any, task_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "WEBHOOK_SECRET": SECRET,
                                "POLL_INTERVAL": 3600, "POLL_MAX_INTERVAL": 3600}
    waiting_task(fake, task_id)
    # Nothing listens on port 9.
    with current_celery(broker_url="redis://127.0.0.1:9/0", broker_connection_timeout=0.5), \
            caplog.at_level(logging.WARNING, logger="factpulse_tasks"):
        assert post(event(task_id)).json() == {"status": "due"}
    assert "Could not ask Celery to poll 1 task(s) now" in caplog.text
    task = FactPulseTask.objects.get(task_id=task_id)
    assert task.state == FactPulseTask.State.PENDING
    assert task.next_poll_at <= timezone.now()
    assert fake.status_calls(task_id) == 1
    assert poll_due().succeeded == 1


def test_refused_requests_make_no_database_query(
    hooks: FakeFactPulse, task_id: str, settings: Any
) -> None:
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    waiting_task(hooks, task_id)
    body = event(task_id)
    with CaptureQueriesContext(connections["default"]) as queries:
        assert post(body, "sha256=" + "0" * 64).status_code == 401
        assert post(body, "").status_code == 401
        assert post(b"x" * 2_000_000).status_code == 413
        settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "WEBHOOK_SECRET": ""}
        assert post(body).status_code == 403
    assert queries.captured_queries == []
