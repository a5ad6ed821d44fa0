"""Signals sent when a FactPulse task reaches a final state, or stops to wait for input.

The *finished* signals are sent once per task, after the change of state is
committed, whether the task succeeded, failed or expired; a finished task never
changes again, so they are never sent twice. (A process that dies between the
commit and the sending does not send them; the next polling cycle sends them
late.) Arguments, for all of them:

- ``sender``: the :class:`~factpulse_tasks.models.FactPulseTask` class;
- ``task``: the finished :class:`~factpulse_tasks.models.FactPulseTask`; look at
  ``task.state`` (``succeeded``, ``failed`` or ``expired``), ``task.result``,
  ``task.error_code`` / ``task.error_message`` / ``task.error_details`` and
  ``task.artifacts``.

The *needs input* signals are sent when a task enters the ``awaiting_input``
state (FactPulse answered a business status such as ``PENDING_INPUT``): once
per entry, after the commit (a process that dies in between does not send
them). The task is not finished: it is still polled, and ends like any other
task (or expires). Same arguments; ``task.result`` holds what FactPulse asks for.

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

# Document conversion tasks only. Arguments: sender, task. A conversion whose
# extracted invoice broke the rules has failed with error_code
# "VALIDATION_FAILED"; the rules are in task.error_details and the extracted
# data in task.result["extracted_data"].
conversion_finished = Signal()

# PDF/XML verification tasks only. Arguments: sender, task. Fields that disagree
# still make a succeeded verification: read task.result["verification_result"].
verification_finished = Signal()

# Every kind, when a task enters the awaiting_input state. Arguments: sender, task.
task_needs_input = Signal()

# Document conversion tasks only, when FactPulse answers PENDING_INPUT.
# Arguments: sender, task. task.result["missing_fields"] lists the fields to
# supply; task.result["extracted_data"] holds what was read so far.
conversion_needs_input = Signal()
