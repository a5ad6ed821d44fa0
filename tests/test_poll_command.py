"""manage.py factpulse_poll: cycles without beat, for cron."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from factpulse_tasks.models import FactPulseTask
from factpulse_tasks.testing import FakeFactPulse, answers

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = StringIO()
    call_command("factpulse_poll", *args, stdout=out)
    return out.getvalue()


def test_one_cycle_by_default(fake: FakeFactPulse, task_id: str) -> None:
    fake.script(task_id, answers.pending(), answers.validation_success())
    FactPulseTask.objects.track(task_id, "validation")
    out = run()
    assert out.count("claimed") == 1 and "claimed 1, polled 1, finished 0" in out
    assert FactPulseTask.objects.get(task_id=task_id).state == "pending"


def test_until_idle_polls_until_every_task_is_finished(fake: FakeFactPulse, task_id: str,
                                                       settings: Any) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "POLL_INTERVAL": 0.2,
                                "POLL_MAX_INTERVAL": 0.2}
    fake.script(task_id, answers.pending(), answers.started(), answers.validation_success())
    FactPulseTask.objects.track(task_id, "validation")
    out = run("--until-idle", "--max-seconds", "30")
    assert "finished 1 (succeeded 1" in out and out.endswith("No unfinished task left.\n")
    assert FactPulseTask.objects.get(task_id=task_id).state == "succeeded"
    assert fake.status_calls(task_id) == 3


def test_until_idle_gives_up_after_max_seconds(fake: FakeFactPulse, task_id: str,
                                               settings: Any) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "POLL_INTERVAL": 0.3,
                                "POLL_MAX_INTERVAL": 0.3}
    FactPulseTask.objects.track(task_id, "validation")  # PENDING for ever
    out = run("--until-idle", "--max-seconds", "1")
    assert "Stopped after --max-seconds; 1 task(s) still unfinished." in out


def test_bad_arguments_and_settings_are_command_errors(settings: Any) -> None:
    with pytest.raises(CommandError, match="must be positive"):
        run("--max-sleep", "0")
    settings.FACTPULSE_TASKS = {"API_KEY": "k"}
    FactPulseTask.objects.track("4b1c2d3e-0000-4000-8000-000000000001", "validation")
    with pytest.raises(CommandError, match="BASE_URL"):
        run()


def test_until_idle_does_not_wait_on_tasks_awaiting_input(fake: FakeFactPulse, task_id: str,
                                                          settings: Any) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "POLL_INTERVAL": 0.2,
                                "POLL_MAX_INTERVAL": 0.2}
    fake.script(task_id, answers.conversion_pending_input())
    FactPulseTask.objects.track(task_id, "conversion")
    out = run("--until-idle", "--max-seconds", "30")
    assert out.endswith("No task left but 1 awaiting input.\n")
    assert FactPulseTask.objects.get(task_id=task_id).state == "awaiting_input"
