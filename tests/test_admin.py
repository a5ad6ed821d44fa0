"""The admin pages: list, summary, filters, search, detail, downloads and actions."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from factpulse_tasks import tasks
from factpulse_tasks.models import FactPulseTask
from factpulse_tasks.testing import FakeFactPulse, answers
from tests.conftest import API_KEY, SignalLog, drive

pytestmark = pytest.mark.django_db(transaction=True)

LIST_URL = "admin:factpulse_tasks_factpulsetask_changelist"
CHANGE_URL = "admin:factpulse_tasks_factpulsetask_change"
DOWNLOAD_URL = "admin:factpulse_tasks_factpulsetask_artifact_download"


def detail(client: Client, task: FactPulseTask) -> str:
    response = client.get(reverse(CHANGE_URL, args=[task.pk]))
    assert response.status_code == 200
    return response.content.decode()


def run_action(client: Client, action: str, *tasks: FactPulseTask) -> list[str]:
    """Run an admin action on ``tasks``; return the messages shown after the redirect."""
    response = client.post(
        reverse(LIST_URL),
        {"action": action, "_selected_action": [t.pk for t in tasks]},
        follow=True,
    )
    assert response.status_code == 200
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def finished(fake: FakeFactPulse) -> dict[str, FactPulseTask]:
    scripts = {
        "ok-generation-1": ("generation", answers.generation_success(), "FA-2026-0001"),
        "ko-generation-2": ("generation", answers.business_error(), "FA-2026-0002"),
        "ok-validation-3": ("validation", answers.validation_success(compliant=False),
                            "FA-2026-0003"),
        "ok-signature-4": ("signature", answers.signature_success(), "FA-2026-0004"),
    }
    for task_id, (kind, answer, reference) in scripts.items():
        fake.script(task_id, answer)
        FactPulseTask.objects.track(task_id, kind, reference=reference)
    drive()
    return {t.task_id: t for t in FactPulseTask.objects.all()}


@pytest.fixture
def staff(client: Client) -> Client:
    """A client logged in as a staff user who may view tasks, and do nothing else."""
    user = User.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_factpulsetask"))
    client.force_login(user)
    return client


@pytest.fixture
def operator(db: Any) -> Client:
    """A client logged in as a staff user who may view tasks and run the actions."""
    client = Client()
    user = User.objects.create_user("lead", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(
        codename__in=["view_factpulsetask", "change_factpulsetask"]))
    client.force_login(user)
    return client


# The list -------------------------------------------------------------------


def test_list_shows_tasks_filters_and_search(staff: Client,
                                             finished: dict[str, FactPulseTask]) -> None:
    page = staff.get(reverse(LIST_URL)).content.decode()
    for task_id in finished:
        assert task_id in page
    failed = staff.get(reverse(LIST_URL), {"state__exact": "failed"}).content.decode()
    assert "ko-generation-2" in failed and "ok-generation-1" not in failed
    by_kind = staff.get(reverse(LIST_URL), {"kind": "validation"}).content.decode()
    assert "ok-validation-3" in by_kind and "ok-generation-1" not in by_kind
    # The kind filter names every registered kind by its label.
    assert "Factur-X validation</a>" in page and "Document conversion</a>" in page
    found = staff.get(reverse(LIST_URL), {"q": "FA-2026-0002"}).content.decode()
    assert "ko-generation-2" in found and "ok-validation-3" not in found


def test_list_searches_error_codes_and_filters_remote_status_and_date(
    staff: Client, finished: dict[str, FactPulseTask], fake: FakeFactPulse
) -> None:
    fake.script("crash-signature-5", answers.celery_failure())
    FactPulseTask.objects.track("crash-signature-5", "signature")
    drive()
    found = staff.get(reverse(LIST_URL), {"q": "TASK_FAILED"}).content.decode()
    assert "crash-signature-5" in found and "ko-generation-2" not in found
    by_remote = staff.get(reverse(LIST_URL), {"remote_status": "FAILURE"}).content.decode()
    assert "crash-signature-5" in by_remote and "ok-generation-1" not in by_remote
    today = timezone.localdate()
    by_day = staff.get(reverse(LIST_URL), {"created_at__year": today.year,
                                           "created_at__month": today.month,
                                           "created_at__day": today.day})
    assert "ok-generation-1" in by_day.content.decode()
    yesterday = today - timedelta(days=1)
    before = staff.get(reverse(LIST_URL), {"created_at__year": yesterday.year,
                                           "created_at__month": yesterday.month,
                                           "created_at__day": yesterday.day})
    assert "ok-generation-1" not in before.content.decode()


def test_list_shows_state_badges_durations_and_artifact_links(
    staff: Client, finished: dict[str, FactPulseTask]
) -> None:
    page = staff.get(reverse(LIST_URL)).content.decode()
    assert 'class="factpulse-state" data-state="failed"' in page
    assert 'data-state="succeeded"' in page
    assert "took " in page
    for artifact in finished["ok-generation-1"].artifacts.all():
        assert reverse(DOWNLOAD_URL, args=[artifact.task_id, artifact.pk]) in page


def test_list_summary_counts_states_and_names_the_oldest_unfinished_task(
    staff: Client, finished: dict[str, FactPulseTask]
) -> None:
    waiting = FactPulseTask.objects.track("wait-generation-6", "generation")
    FactPulseTask.objects.track("wait-generation-7", "generation")
    response = staff.get(reverse(LIST_URL), {"state__exact": "failed"})
    summary = response.context["factpulse_summary"]
    # The summary counts every task, whatever the list shows.
    assert {s["value"]: s["count"] for s in summary["states"]} == {
        "pending": 2, "running": 0, "awaiting_input": 0, "succeeded": 3, "failed": 1,
        "expired": 0,
    }
    assert summary["oldest"].pk == waiting.pk
    assert summary["late"] == 0
    html = response.content.decode()
    assert 'id="factpulse-summary"' in html
    assert reverse(CHANGE_URL, args=[waiting.pk]) in html
    assert "overdue for polling" not in html


def test_list_summary_warns_when_tasks_are_overdue_for_polling(staff: Client, db: Any) -> None:
    task = FactPulseTask.objects.track("stuck-generation-8", "generation")
    # Nobody polled it for ten minutes: no worker or no beat.
    FactPulseTask.objects.filter(pk=task.pk).update(
        next_poll_at=timezone.now() - timedelta(minutes=10))
    html = staff.get(reverse(LIST_URL)).content.decode()
    assert "1 task is overdue for polling" in html


def test_summary_with_no_task_says_so(staff: Client, db: Any) -> None:
    assert "No unfinished task." in staff.get(reverse(LIST_URL)).content.decode()


def count_list_queries(client: Client) -> int:
    with CaptureQueriesContext(connections["default"]) as queries:
        assert client.get(reverse(LIST_URL)).status_code == 200
    return len(queries)


def test_list_costs_the_same_number_of_queries_for_1_or_30_tasks(
    staff: Client, fake: FakeFactPulse
) -> None:
    answer = answers.generation_success()
    fake.script("one-generation", answer)
    FactPulseTask.objects.track("one-generation", "generation")
    drive()
    one = count_list_queries(staff)
    for n in range(29):
        task_id = f"more-generation-{n}"
        fake.script(task_id, answer)
        FactPulseTask.objects.track(task_id, "generation")
    drive()
    assert FactPulseTask.objects.filter(state="succeeded").count() == 30
    assert count_list_queries(staff) == one


# The detail page ------------------------------------------------------------


def test_detail_shows_the_afnor_error_as_a_table(staff: Client,
                                                 finished: dict[str, FactPulseTask]) -> None:
    task = finished["ko-generation-2"]
    html = detail(staff, task)
    # Nothing folded: the error is open, and the result is shown as JSON only once.
    assert html.count('<fieldset class="module aligned collapse"') == 0
    for header in ("Level", "Item", "Reason", "Source", "Code"):
        assert f'<th scope="col">{header}</th>' in html
    assert "<td>BR-FR-01</td>" in html and "<td>SCHEMATRON_BR_FR_01</td>" in html
    assert "<td>Warning</td>" in html and "<td>schematron</td>" in html
    assert task.error_code in html
    assert API_KEY not in html


def test_detail_shows_the_validation_verdict_with_its_error_lists(
    staff: Client, finished: dict[str, FactPulseTask]
) -> None:
    html = detail(staff, finished["ok-validation-3"])
    assert 'data-compliant="false">Not compliant</strong>' in html
    assert "profile EN16931" in html
    assert "<li>PDF/A: not compliant (PDF/A-3B)</li>" in html
    assert "<li>Not signed</li>" in html
    assert "XML errors (2)" in html and "PDF/A errors (1)" in html
    assert "[BR-FR-01] Le SIRET du vendeur" in html
    assert "La police Helvetica n&#x27;est pas incorporée" in html
    # The raw JSON stays available, folded.
    assert "&quot;isCompliant&quot;: false" in html


def test_detail_shows_the_signer_date_and_signature_count(
    staff: Client, finished: dict[str, FactPulseTask]
) -> None:
    html = detail(staff, finished["ok-signature-4"])
    assert "<dt>Signer</dt><dd>Atelier Lumière SAS - Cachet serveur</dd>" in html
    assert "<dt>Signing date</dt><dd>2026-01-15T10:30:00+00:00</dd>" in html
    assert "<dt>Number of signatures</dt><dd>1</dd>" in html


def test_detail_shows_the_generated_file_name_and_its_factur_x_profile(
    staff: Client, finished: dict[str, FactPulseTask]
) -> None:
    html = detail(staff, finished["ok-generation-1"])
    # Folded: the empty error section and the raw result.
    assert html.count('<fieldset class="module aligned collapse"') == 2
    assert "<dt>File name</dt><dd>FA-2026-0001.pdf</dd>" in html
    assert "<dt>Factur-X profile</dt><dd>EN16931</dd>" in html


def test_detail_lists_artifacts_with_size_type_and_sha256(
    staff: Client, finished: dict[str, FactPulseTask]
) -> None:
    task = finished["ok-generation-1"]
    html = detail(staff, task)
    for artifact in task.artifacts.all():
        assert artifact.sha256 in html
        assert f"{artifact.size} bytes" in html
        assert reverse(DOWNLOAD_URL, args=[task.pk, artifact.pk]) in html
    assert "application/pdf" in html and "application/xml" in html


def test_detail_shows_a_failed_notification(
    staff: Client, finished: dict[str, FactPulseTask], signal_log: SignalLog, fake: FakeFactPulse
) -> None:
    from factpulse_tasks import signals

    def broken(sender: Any, task: FactPulseTask, **kwargs: Any) -> None:
        raise RuntimeError("the accounting system is down")

    signals.task_finished.connect(broken)
    try:
        fake.script("ko-signature-9", answers.celery_failure())
        FactPulseTask.objects.track("ko-signature-9", "signature")
        drive()
    finally:
        signals.task_finished.disconnect(broken)
    task = FactPulseTask.objects.get(task_id="ko-signature-9")
    assert "the accounting system is down" in detail(staff, task)
    failing = staff.get(reverse(LIST_URL), {"notification": "failed"}).content.decode()
    assert "ko-signature-9" in failing and "ok-generation-1" not in failing


# Downloads --------------------------------------------------------------------


def test_artifact_download_serves_the_stored_bytes(staff: Client,
                                                   finished: dict[str, FactPulseTask]) -> None:
    task = finished["ok-generation-1"]
    artifact = task.artifacts.get(role="document")
    url = reverse(DOWNLOAD_URL, args=[task.pk, artifact.pk])
    assert url in detail(staff, task)
    response = staff.get(url)
    body = b"".join(response.streaming_content)
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="FA-2026-0001.pdf"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert {"private", "no-store"} <= set(response["Cache-Control"].split(", "))
    assert response["Content-Security-Policy"].startswith("sandbox")
    assert hashlib.sha256(body).hexdigest() == artifact.sha256


def test_download_of_an_xml_artifact_is_served_as_xml(
    staff: Client, finished: dict[str, FactPulseTask]
) -> None:
    artifact = finished["ok-generation-1"].artifacts.get(role="xml")
    response = staff.get(reverse(DOWNLOAD_URL, args=[artifact.task_id, artifact.pk]))
    assert response["Content-Type"] == "application/xml"
    assert response["Content-Disposition"] == 'attachment; filename="FA-2026-0001.xml"'


def test_download_needs_the_view_permission(client: Client,
                                            finished: dict[str, FactPulseTask]) -> None:
    task = finished["ok-generation-1"]
    artifact = task.artifacts.get(role="document")
    url = reverse(DOWNLOAD_URL, args=[task.pk, artifact.pk])
    assert client.get(url).status_code == 302  # to the login page
    user = User.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(url).status_code == 403


def test_download_of_an_artifact_of_another_task_is_404(
    staff: Client, finished: dict[str, FactPulseTask]
) -> None:
    other = finished["ok-validation-3"]
    artifact = finished["ok-generation-1"].artifacts.first()
    assert artifact is not None
    url = reverse(DOWNLOAD_URL, args=[other.pk, artifact.pk])
    assert staff.get(url).status_code == 404


def test_download_of_a_file_missing_from_storage_is_404(
    staff: Client, finished: dict[str, FactPulseTask]
) -> None:
    artifact = finished["ok-generation-1"].artifacts.get(role="document")
    artifact.file.storage.delete(artifact.file.name)
    assert staff.get(reverse(DOWNLOAD_URL, args=[artifact.task_id, artifact.pk])).status_code \
        == 404


def test_tasks_cannot_be_added_or_edited_in_the_admin(
    staff: Client, finished: dict[str, FactPulseTask]
) -> None:
    user = User.objects.create_superuser("root", password="pw")
    staff.force_login(user)
    assert staff.get(reverse("admin:factpulse_tasks_factpulsetask_add")).status_code == 403
    task = finished["ok-generation-1"]
    response = staff.post(reverse(CHANGE_URL, args=[task.pk]), {"state": "failed"})
    assert response.status_code == 403
    task.refresh_from_db()
    assert task.state == FactPulseTask.State.SUCCEEDED


def test_deleting_a_task_deletes_its_files(staff: Client,
                                           finished: dict[str, FactPulseTask]) -> None:
    task = finished["ok-generation-1"]
    storage_names = [(a.file.storage, a.file.name) for a in task.artifacts.all()]
    assert all(storage.exists(name) for storage, name in storage_names)
    task.delete()
    assert not any(storage.exists(name) for storage, name in storage_names)


# Actions ----------------------------------------------------------------------


def test_actions_need_the_change_permission(staff: Client, operator: Client,
                                            db: Any) -> None:
    FactPulseTask.objects.track("wait-generation-10", "generation")
    # A viewer gets no action at all, not even the selection checkboxes.
    assert staff.get(reverse(LIST_URL)).context["action_form"] is None
    choices = operator.get(reverse(LIST_URL)).context["action_form"].fields["action"].choices
    assert [value for value, _ in choices if value] == [
        "poll_now", "retry_tasks", "resend_finished_signals", "mark_tasks_expired",
    ]


def test_a_viewer_cannot_post_an_action(staff: Client, fake: FakeFactPulse) -> None:
    task = FactPulseTask.objects.track("wait-generation-11", "generation")
    staff.post(reverse(LIST_URL), {"action": "mark_tasks_expired",
                                   "_selected_action": [task.pk]})
    task.refresh_from_db()
    assert task.state == FactPulseTask.State.PENDING


def test_poll_now_polls_the_selected_tasks_over_http(
    operator: Client, fake: FakeFactPulse, signal_log: SignalLog, finished: Any
) -> None:
    task_id = str(uuid.uuid4())
    fake.script(task_id, answers.generation_success(invoice_number="FA-2026-0012"))
    task = FactPulseTask.objects.track(task_id, "generation")
    # Not due for an hour: "poll now" does not wait for it.
    FactPulseTask.objects.filter(pk=task.pk).update(
        next_poll_at=timezone.now() + timedelta(hours=1))
    calls = fake.status_calls(task_id)
    shown = run_action(operator, "poll_now", task, finished["ok-generation-1"])
    assert "1 task polled, 1 finished." in shown
    assert "1 selected task was left alone: only unfinished tasks are polled." in shown
    assert fake.status_calls(task_id) == calls + 1
    task.refresh_from_db()
    assert task.state == FactPulseTask.State.SUCCEEDED
    assert signal_log.names_for(task_id) == ["generation_finished", "task_finished"]


def test_poll_now_reports_tasks_without_a_usable_answer(
    operator: Client, fake: FakeFactPulse
) -> None:
    task_id = str(uuid.uuid4())
    fake.script(task_id, answers.http_error(503))
    task = FactPulseTask.objects.track(task_id, "generation")
    shown = run_action(operator, "poll_now", task)
    assert "1 task polled, 0 finished." in shown
    assert "1 task got no usable answer; see its last polling error." in shown


def test_poll_now_inside_a_transaction_leaves_it_to_the_next_cycle(
    operator: Client, fake: FakeFactPulse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(connections["default"].settings_dict, "ATOMIC_REQUESTS", True)
    asked: list[bool] = []
    monkeypatch.setattr(tasks, "request_poll", lambda: asked.append(True) or True)
    task_id = str(uuid.uuid4())
    fake.script(task_id, answers.generation_success())
    task = FactPulseTask.objects.track(task_id, "generation")
    FactPulseTask.objects.filter(pk=task.pk).update(
        next_poll_at=timezone.now() + timedelta(hours=1))
    asked.clear()  # the one track() asked for
    shown = run_action(operator, "poll_now", task)
    assert "1 task will be polled by the next polling cycle." in shown
    assert asked == [True]  # a Celery cycle, asked for once the request committed
    assert fake.status_calls(task_id) == 0
    task.refresh_from_db()
    assert task.next_poll_at is not None and task.next_poll_at <= timezone.now()
    assert FactPulseTask.objects.due().filter(pk=task.pk).exists()


def test_retry_puts_a_failed_task_back_and_its_signals_are_sent_for_the_new_outcome(
    operator: Client, fake: FakeFactPulse, signal_log: SignalLog,
    finished: dict[str, FactPulseTask]
) -> None:
    failed = finished["ko-generation-2"]
    assert signal_log.names_for(failed.task_id) == ["generation_finished", "task_finished"]
    fake.script(failed.task_id, answers.generation_success(invoice_number="FA-2026-0002"))
    shown = run_action(operator, "retry_tasks", failed, finished["ok-generation-1"])
    assert ("1 task was put back to pending; its finished signals will be sent again for "
            "its new outcome.") in shown
    assert ("1 selected task was left alone: only failed or expired tasks can be retried."
            in shown)
    failed.refresh_from_db()
    assert failed.state == FactPulseTask.State.PENDING and failed.retried_at is not None
    assert failed.error_code == "" and failed.error_details == []
    drive()
    failed.refresh_from_db()
    assert failed.state == FactPulseTask.State.SUCCEEDED
    assert signal_log.names_for(failed.task_id) == [
        "generation_finished", "generation_finished", "task_finished", "task_finished",
    ]


def test_resend_sends_the_finished_signals_again(
    operator: Client, signal_log: SignalLog, finished: dict[str, FactPulseTask]
) -> None:
    task = finished["ok-signature-4"]
    waiting = FactPulseTask.objects.track("wait-generation-13", "generation")
    shown = run_action(operator, "resend_finished_signals", task, waiting)
    assert "The finished signals of 1 task were sent again." in shown
    assert "1 selected task was left alone: only finished tasks have signals." in shown
    assert signal_log.names_for(task.task_id) == [
        "signature_finished", "signature_finished", "task_finished", "task_finished",
    ]


def test_resend_reports_a_receiver_that_fails_again(
    operator: Client, finished: dict[str, FactPulseTask]
) -> None:
    from factpulse_tasks import signals

    def broken(sender: Any, task: FactPulseTask, **kwargs: Any) -> None:
        raise RuntimeError("still down")

    task = finished["ok-signature-4"]
    signals.signature_finished.connect(broken)
    try:
        shown = run_action(operator, "resend_finished_signals", task)
    finally:
        signals.signature_finished.disconnect(broken)
    assert "A receiver failed for 1 task; see its notification error." in shown
    task.refresh_from_db()
    assert "still down" in task.notification_error


def test_mark_expired_ends_unfinished_tasks_and_sends_their_signals(
    operator: Client, signal_log: SignalLog, finished: dict[str, FactPulseTask]
) -> None:
    waiting = FactPulseTask.objects.track("wait-generation-14", "generation")
    shown = run_action(operator, "mark_tasks_expired", waiting, finished["ok-generation-1"])
    assert "1 task was marked expired." in shown
    assert ("1 selected task was left alone: only unfinished tasks can be marked expired."
            in shown)
    waiting.refresh_from_db()
    assert waiting.state == FactPulseTask.State.EXPIRED
    assert waiting.error_code == "TASK_EXPIRED"
    assert signal_log.names_for("wait-generation-14") == ["generation_finished",
                                                          "task_finished"]


def test_detail_names_the_kind_by_its_label(staff: Client,
                                           finished: dict[str, FactPulseTask]) -> None:
    task = finished["ok-validation-3"]
    page = staff.get(reverse("admin:factpulse_tasks_factpulsetask_change", args=[task.pk]))
    assert '<div class="readonly">Factur-X validation</div>' in page.content.decode()
