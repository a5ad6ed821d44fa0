"""The admin pages: list, filters, search, detail with the AFNOR error, downloads."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from factpulse_tasks.models import FactPulseTask
from factpulse_tasks.testing import FakeFactPulse, answers
from tests.conftest import API_KEY, drive

pytestmark = pytest.mark.django_db(transaction=True)

LIST_URL = "admin:factpulse_tasks_factpulsetask_changelist"


@pytest.fixture
def finished(fake: FakeFactPulse) -> dict[str, FactPulseTask]:
    scripts = {
        "ok-generation-1": ("generation", answers.generation_success(), "FA-2026-0001"),
        "ko-generation-2": ("generation", answers.business_error(), "FA-2026-0002"),
        "ok-validation-3": ("validation", answers.validation_success(compliant=False),
                            "FA-2026-0003"),
    }
    for task_id, (kind, answer, reference) in scripts.items():
        fake.script(task_id, answer)
        FactPulseTask.objects.track(task_id, kind, reference=reference)
    drive()
    return {t.task_id: t for t in FactPulseTask.objects.all()}


@pytest.fixture
def staff(client: Client) -> Client:
    user = User.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_factpulsetask"))
    client.force_login(user)
    return client


def test_list_shows_tasks_filters_and_search(staff: Client,
                                             finished: dict[str, FactPulseTask]) -> None:
    page = staff.get(reverse(LIST_URL)).content.decode()
    for task_id in finished:
        assert task_id in page
    failed = staff.get(reverse(LIST_URL), {"state__exact": "failed"}).content.decode()
    assert "ko-generation-2" in failed and "ok-generation-1" not in failed
    by_kind = staff.get(reverse(LIST_URL), {"kind__exact": "validation"}).content.decode()
    assert "ok-validation-3" in by_kind and "ok-generation-1" not in by_kind
    found = staff.get(reverse(LIST_URL), {"q": "FA-2026-0002"}).content.decode()
    assert "ko-generation-2" in found and "ok-validation-3" not in found


def test_list_costs_the_same_number_of_queries_for_more_tasks(
    staff: Client, finished: dict[str, FactPulseTask], django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(12):
        assert staff.get(reverse(LIST_URL)).status_code == 200


def test_detail_shows_the_afnor_error_as_a_table(staff: Client,
                                                 finished: dict[str, FactPulseTask]) -> None:
    task = finished["ko-generation-2"]
    page = staff.get(reverse("admin:factpulse_tasks_factpulsetask_change", args=[task.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "<th>level</th>" in html and "BR-FR-01" in html and "SCHEMATRON_BR_FR_01" in html
    assert task.error_code in html
    assert API_KEY not in html


def test_detail_shows_the_validation_verdict(staff: Client,
                                             finished: dict[str, FactPulseTask]) -> None:
    task = finished["ok-validation-3"]
    html = staff.get(
        reverse("admin:factpulse_tasks_factpulsetask_change", args=[task.pk])).content.decode()
    assert "&quot;isCompliant&quot;: false" in html
    assert "BR-FR-01" in html


def test_artifact_download_serves_the_stored_bytes(staff: Client,
                                                   finished: dict[str, FactPulseTask]) -> None:
    task = finished["ok-generation-1"]
    artifact = task.artifacts.get(role="document")
    detail = staff.get(reverse("admin:factpulse_tasks_factpulsetask_change", args=[task.pk]))
    url = reverse("admin:factpulse_tasks_factpulsetask_artifact_download",
                  args=[task.pk, artifact.pk])
    assert url in detail.content.decode()
    response = staff.get(url)
    body = b"".join(response.streaming_content)
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="FA-2026-0001.pdf"'
    assert hashlib.sha256(body).hexdigest() == artifact.sha256


def test_download_needs_the_view_permission(client: Client,
                                            finished: dict[str, FactPulseTask]) -> None:
    task = finished["ok-generation-1"]
    artifact = task.artifacts.get(role="document")
    url = reverse("admin:factpulse_tasks_factpulsetask_artifact_download",
                  args=[task.pk, artifact.pk])
    assert client.get(url).status_code == 302  # to the login page
    user = User.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(url).status_code == 403


def test_download_of_an_artifact_of_another_task_is_404(
    staff: Client, finished: dict[str, FactPulseTask]
) -> None:
    other = finished["ok-validation-3"]
    artifact = finished["ok-generation-1"].artifacts.first()
    url = reverse("admin:factpulse_tasks_factpulsetask_artifact_download",
                  args=[other.pk, artifact.pk])
    assert staff.get(url).status_code == 404


def test_tasks_cannot_be_added_or_edited_in_the_admin(
    staff: Client, finished: dict[str, FactPulseTask]
) -> None:
    user = User.objects.create_superuser("root", password="pw")
    staff.force_login(user)
    assert staff.get(reverse("admin:factpulse_tasks_factpulsetask_add")).status_code == 403
    task = finished["ok-generation-1"]
    response = staff.post(reverse("admin:factpulse_tasks_factpulsetask_change", args=[task.pk]),
                          {"state": "failed"})
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
