"""Receivers of the finished signals: here they only record each delivery."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from factpulse_tasks import signals
from factpulse_tasks.models import FactPulseTask

from .models import SignalReceipt


def _record(name: str, task: FactPulseTask) -> None:
    SignalReceipt.objects.create(task=task, signal=name, state=task.state)


@receiver(signals.task_finished)
def on_task_finished(sender: Any, task: FactPulseTask, **kwargs: Any) -> None:
    _record("task_finished", task)


@receiver(signals.generation_finished)
def on_generation_finished(sender: Any, task: FactPulseTask, **kwargs: Any) -> None:
    # A real project would attach task.artifacts.get(role="document") to its invoice here.
    _record("generation_finished", task)


@receiver(signals.signature_finished)
def on_signature_finished(sender: Any, task: FactPulseTask, **kwargs: Any) -> None:
    _record("signature_finished", task)


@receiver(signals.validation_finished)
def on_validation_finished(sender: Any, task: FactPulseTask, **kwargs: Any) -> None:
    _record("validation_finished", task)
