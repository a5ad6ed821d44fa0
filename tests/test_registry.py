from __future__ import annotations

from factpulse_tasks.kinds import REGISTRY, get_kind
from factpulse_tasks.models import FactPulseTask
from factpulse_tasks.querysets import FINISHED_STATES, UNFINISHED_STATES


def test_every_kind_choice_has_a_registry_entry_and_back() -> None:
    assert set(FactPulseTask.Kind.values) == set(REGISTRY)


def test_state_groups_cover_every_state_once() -> None:
    assert sorted(UNFINISHED_STATES + FINISHED_STATES) == sorted(FactPulseTask.State.values)


def test_task_ids_are_escaped_in_endpoint_paths() -> None:
    assert get_kind("generation").path_for("a b/c") == (
        "/api/v1/processing/tasks/a%20b%2Fc/generation-status")
