"""Signals sent when a FactPulse task reaches a final state.

Each is sent once per task, after the change of state is committed, whether
the task succeeded, failed or expired; a finished task never changes again, so
it is never sent twice. (A process that dies between the commit and the
sending does not send it.) Arguments, for all of them:

- ``sender``: the :class:`~factpulse_tasks.models.FactPulseTask` class;
- ``task``: the finished :class:`~factpulse_tasks.models.FactPulseTask`; look at
  ``task.state`` (``succeeded``, ``failed`` or ``expired``), ``task.result``,
  ``task.error_code`` / ``task.error_message`` / ``task.error_details`` and
  ``task.artifacts``.

A receiver that raises is logged with the task id; it stops neither the other
receivers nor the polling.
"""

from __future__ import annotations

from django.dispatch import Signal

# Every kind. Arguments: sender, task.
task_finished = Signal()

# Invoice generation tasks only. Arguments: sender, task.
generation_finished = Signal()

# PDF signing tasks only. Arguments: sender, task.
signature_finished = Signal()

# Factur-X validation tasks only. Arguments: sender, task. A non-compliant PDF
# is still a succeeded validation: read task.result["validation_result"].
validation_finished = Signal()
