from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone


@pytest.mark.django_db
def test_models_and_migrations_agree() -> None:
    out = StringIO()
    call_command("makemigrations", "factpulse_tasks", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_0003_keeps_existing_tasks_and_lets_them_await_input() -> None:
    """Back to 0002 with a task in flight, forward again: the row survives and may await input."""
    app = "factpulse_tasks"
    executor = MigrationExecutor(connection)
    executor.migrate([(app, "0002_notifications_and_retries")])
    old_state = executor.loader.project_state((app, "0002_notifications_and_retries")).apps
    old_task = old_state.get_model(app, "FactPulseTask")
    old_task.objects.create(task_id="t-0002", kind="generation", state="running",
                            next_poll_at=timezone.now())

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes(app))

    from factpulse_tasks.models import FactPulseTask

    task = FactPulseTask.objects.get(task_id="t-0002")
    assert (task.kind, task.state) == ("generation", "running")
    FactPulseTask.objects.filter(pk=task.pk).update(state="awaiting_input")
    assert FactPulseTask.objects.unfinished().get().state == "awaiting_input"
