from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from celery import Celery
from celery import _state as celery_state
from celery._state import _set_current_app, get_current_app
from hypothesis import HealthCheck, settings

from factpulse_tasks import signals
from factpulse_tasks.models import FactPulseTask
from factpulse_tasks.polling import CycleReport, poll_due
from factpulse_tasks.testing import FakeFactPulse

API_KEY = "fp-test-key-3b9d0c7e"

# Generated answers: a bounded, repeatable run by default (CI); "explore" draws
# many more, at random, for a local hunt: FACTPULSE_HYPOTHESIS_PROFILE=explore.
settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("FACTPULSE_HYPOTHESIS_EXAMPLES", "100")),
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("explore", max_examples=5_000, deadline=None)
settings.load_profile(os.environ.get("FACTPULSE_HYPOTHESIS_PROFILE", "ci"))


# Figures of the generated answers (tests/test_spec_fidelity.py), shown at the end.
FIGURES: Counter[str] = Counter()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say how many generated answers were read, and how often the SDK agreed."""
    if FIGURES:
        terminalreporter.write_sep("-", "generated status answers")
        for name, count in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{name}: {count}")


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeFactPulse]:
    with FakeFactPulse(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeFactPulse, settings: Any, tmp_path: Any) -> FakeFactPulse:
    """The fake FactPulse, with the app configured to poll it at once, every cycle."""
    settings.FACTPULSE_TASKS = {
        "BASE_URL": fake_server.base_url,
        "API_KEY": API_KEY,
        "POLL_INTERVAL": 0,
        "POLL_MAX_INTERVAL": 0,
        "READ_TIMEOUT": 2,
        "CONNECT_TIMEOUT": 2,
        # Tests drive cycles themselves; the worker tests turn it on.
        "POLL_ON_TRACK": False,
    }
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return fake_server


@contextmanager
def current_celery(**conf: Any) -> Iterator[Celery]:
    """A Celery app with ``conf``, current in every thread while the block runs."""
    previous, previous_default = get_current_app(), celery_state.default_app
    app = Celery("factpulse-tests", set_as_current=True)
    app.conf.update(conf)
    app.set_default()  # for the threads of a live server too
    try:
        yield app
    finally:
        _set_current_app(previous)
        celery_state.set_default_app(previous_default)


@pytest.fixture
def eager_celery() -> Iterator[Celery]:
    """A current Celery app that runs tasks here and now, as without a worker."""
    with current_celery(task_always_eager=True) as app:
        yield app


@pytest.fixture
def task_id() -> str:
    return str(uuid.uuid4())


@dataclass
class SignalLog:
    calls: list[tuple[str, str, str]] = field(default_factory=list)

    def names_for(self, task_id: str) -> list[str]:
        return sorted(name for name, tid, _ in self.calls if tid == task_id)


@pytest.fixture
def signal_log() -> Iterator[SignalLog]:
    log = SignalLog()
    receivers = []
    for name in ("task_finished", "generation_finished", "signature_finished",
                 "validation_finished"):
        def receiver(sender: Any, task: FactPulseTask, _name: str = name, **kwargs: Any) -> None:
            log.calls.append((_name, task.task_id, task.state))

        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((name, receiver))
    yield log
    for name, receiver in receivers:
        getattr(signals, name).disconnect(receiver)


def drive(max_cycles: int = 20) -> list[CycleReport]:
    """Run polling cycles until no task is unfinished (or give up after ``max_cycles``)."""
    reports = []
    for _ in range(max_cycles):
        reports.append(poll_due())
        if not FactPulseTask.objects.unfinished().exists():
            break
    return reports
