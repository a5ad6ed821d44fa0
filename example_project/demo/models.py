"""What the example project keeps of the signals it receives."""

from __future__ import annotations

from django.db import models

from factpulse_tasks.models import FactPulseTask


class SignalReceipt(models.Model):
    """One delivery of a factpulse_tasks signal, written by the receivers of this app.

    Kept in the database so that deliveries made in a Celery worker process are
    visible to the demo command too.
    """

    task = models.ForeignKey(FactPulseTask, on_delete=models.CASCADE, related_name="+")
    signal = models.CharField(max_length=40)
    state = models.CharField(max_length=16)
    received_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.signal} for {self.task.task_id} ({self.state})"
