"""Receivers of the signals of factpulse_tasks: here they only record each delivery.

A real project would, in its ``generation_finished`` receiver, attach
``task.artifacts.get(role="document")`` to its invoice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from factpulse_tasks import signals
from factpulse_tasks.models import FactPulseTask

from .models import SignalReceipt

SIGNAL_NAMES = ("task_finished", "generation_finished", "signature_finished",
                "validation_finished", "conversion_finished", "verification_finished",
                "task_needs_input", "conversion_needs_input")


def recorder(name: str) -> Callable[..., None]:
    """A receiver that writes one SignalReceipt named ``name`` per delivery."""

    def receive(sender: Any, task: FactPulseTask, **kwargs: Any) -> None:
        SignalReceipt.objects.create(task=task, signal=name, state=task.state)

    return receive


def connect() -> None:
    for name in SIGNAL_NAMES:
        getattr(signals, name).connect(
            recorder(name), weak=False, dispatch_uid=f"factpulse-demo-{name}"
        )
