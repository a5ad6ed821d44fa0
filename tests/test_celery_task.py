"""The Celery task that beat runs, executed through Celery itself."""

from __future__ import annotations

import pytest
from celery import Celery

from factpulse_tasks.models import FactPulseTask
from factpulse_tasks.testing import FakeFactPulse, answers

pytestmark = pytest.mark.django_db(transaction=True)


def test_poll_due_tasks_runs_a_cycle_and_reports_it(fake: FakeFactPulse, task_id: str) -> None:
    app = Celery("factpulse-tests", set_as_current=True)
    app.conf.task_always_eager = True
    from factpulse_tasks.tasks import poll_due_tasks

    assert app.tasks["factpulse_tasks.poll_due_tasks"].name == poll_due_tasks.name
    fake.script(task_id, answers.validation_success())
    FactPulseTask.objects.track(task_id, "validation")
    report = poll_due_tasks.delay().get()
    assert (report["claimed"], report["succeeded"]) == (1, 1)
    assert FactPulseTask.objects.get(task_id=task_id).state == FactPulseTask.State.SUCCEEDED
