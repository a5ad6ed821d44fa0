"""Recording a task id: FactPulseTask.objects.track()."""

from __future__ import annotations

import pytest

from factpulse_tasks.exceptions import (
    InvalidTaskId,
    InvalidTrackingData,
    TaskKindMismatch,
    UnknownKind,
)
from factpulse_tasks.models import FactPulseTask

pytestmark = pytest.mark.django_db


def test_track_creates_a_pending_row_due_at_once(task_id: str) -> None:
    task = FactPulseTask.objects.track(task_id, "generation", reference="FA-2026-0042",
                                       metadata={"invoice_pk": 42})
    assert task.state == FactPulseTask.State.PENDING
    assert (task.kind, task.reference, task.metadata) == ("generation", "FA-2026-0042",
                                                         {"invoice_pk": 42})
    assert FactPulseTask.objects.due().filter(pk=task.pk).exists()


def test_tracking_the_same_id_twice_returns_the_same_row(task_id: str) -> None:
    first = FactPulseTask.objects.track(task_id, "signature", reference="a")
    second = FactPulseTask.objects.track(task_id, "signature", reference="b")
    assert first.pk == second.pk
    assert second.reference == "a"
    assert FactPulseTask.objects.count() == 1


def test_same_id_with_another_kind_is_an_error(task_id: str) -> None:
    FactPulseTask.objects.track(task_id, "signature")
    with pytest.raises(TaskKindMismatch, match="already tracked as a signature task"):
        FactPulseTask.objects.track(task_id, "validation")


def test_unknown_kind_is_refused(task_id: str) -> None:
    known = "conversion, generation, signature, status, validation, verification"
    with pytest.raises(UnknownKind, match=f"expected one of: {known}"):
        FactPulseTask.objects.track(task_id, "teleportation")
    assert not FactPulseTask.objects.exists()


@pytest.mark.parametrize(
    ("task_id", "message"),
    [
        ("", "empty"),
        ("a" * 65, "65 characters"),
        ("../../admin", "not shaped"),
        ("abc/def", "not shaped"),
        ("abc?x=1", "not shaped"),
        ("abc def", "not shaped"),
        ("abc%2F", "not shaped"),
        ("-leading-dash", "not shaped"),
        ("é" * 5, "not shaped"),
        ("abc\n", "not shaped"),
        (None, "string"),
        (123, "string"),
    ],
)
def test_task_id_that_is_not_uuid_like_is_refused(task_id: object, message: str) -> None:
    with pytest.raises(InvalidTaskId, match=message):
        FactPulseTask.objects.track(task_id, "generation")  # type: ignore[arg-type]
    assert not FactPulseTask.objects.exists()


def test_uuid_and_celery_style_ids_are_accepted() -> None:
    for task_id in ("550e8400-e29b-41d4-a716-446655440000", "a1b2c3", "task_2026_01"):
        assert FactPulseTask.objects.track(task_id, "status").task_id == task_id


def test_queryset_helpers_split_finished_from_unfinished(task_id: str) -> None:
    FactPulseTask.objects.track(task_id, "status")
    assert FactPulseTask.objects.unfinished().count() == 1
    assert FactPulseTask.objects.finished().count() == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reference": "x" * 256}, "256 characters"),
        ({"reference": "FA\x00001"}, "NUL"),
        ({"reference": "FA-\ud800"}, "surrogate"),
        ({"reference": 42}, "string"),
        ({"metadata": {"note": "a\x00b"}}, "NUL"),
        ({"metadata": {"note": "a\ud800b"}}, "surrogate"),
        ({"metadata": {"amount": float("nan")}}, "JSON"),
        ({"metadata": {"when": object()}}, "JSON"),
        ({"metadata": ["not", "a", "dict"]}, "dict"),
    ],
)
def test_reference_and_metadata_that_no_database_stores_are_refused(
    task_id: str, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidTrackingData, match=message):
        FactPulseTask.objects.track(task_id, "generation", **kwargs)  # type: ignore[arg-type]
    assert not FactPulseTask.objects.exists()
