"""Submit work to FactPulse and track the task it starts, in one call.

Each function posts one of the three asynchronous submissions of FactPulse,
reads the ``taskId`` of the 202 answer and tracks it with the matching kind
(see :meth:`FactPulseTaskQuerySet.track`). When ``FACTPULSE_TASKS["WEBHOOK_URL"]``
is set it is sent as ``callback_url``, with ``webhook_mode=download_url``: the
event only tells that the task moved, the status endpoint gives the result, so
the file need not travel in the event.

Errors: :class:`~factpulse_tasks.exceptions.SubmissionRejected` (HTTP 400/422,
with ``errors``) and the other
:class:`~factpulse_tasks.exceptions.TransportError` subclasses; nothing is
tracked then. A submission is never sent twice on its own: after a timeout,
whether FactPulse started the task is unknown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from .client import FactPulseClient
from .conf import app_settings
from .exceptions import PayloadError
from .models import FactPulseTask
from .names import validate_metadata, validate_reference, validate_task_id
from .payloads import MALFORMED

#: Submission endpoint of each kind.
SUBMISSION_PATHS = {
    "generation": "/api/v1/processing/generate-invoice",
    "signature": "/api/v1/processing/sign-pdf-async",
    "validation": "/api/v1/processing/validate-facturx-async",
}

Document = bytes | IO[bytes]


def submit_generation(
    invoice_data: Mapping[str, Any] | str,
    *,
    profile: str | None = None,
    output_format: str | None = None,
    source_pdf: Document | None = None,
    source_filename: str = "source.pdf",
    auto_enrich: bool | None = None,
    skip_br_fr: bool | None = None,
    reference: str = "",
    metadata: dict[str, Any] | None = None,
    client: FactPulseClient | None = None,
) -> FactPulseTask:
    """Ask FactPulse to generate an invoice and track the task (kind ``generation``).

    ``invoice_data`` is the invoice as a dict (sent as JSON; decimals and dates
    as text) or as a JSON string. ``profile`` (``MINIMUM``…``EXTENDED``),
    ``output_format`` (``xml``, ``cii``, ``ubl``, ``pdf``; ``pdf`` needs
    ``source_pdf``), ``auto_enrich`` and ``skip_br_fr`` are sent only when given.
    Returns the tracked task.
    """
    if not isinstance(invoice_data, str):
        invoice_data = json.dumps(invoice_data, ensure_ascii=False, default=str)
    fields = {
        "invoice_data": invoice_data,
        "profile": profile,
        "output_format": output_format,
        "auto_enrich": auto_enrich,
        "skip_br_fr": skip_br_fr,
    }
    files = {}
    if source_pdf is not None:
        files["source_pdf"] = (source_filename, _read(source_pdf), "application/pdf")
    return _submit("generation", fields, files, reference, metadata, client)


def submit_signature(
    pdf: Document,
    *,
    filename: str = "document.pdf",
    reason: str | None = None,
    location: str | None = None,
    contact: str | None = None,
    field_name: str | None = None,
    use_pades_lt: bool | None = None,
    use_timestamp: bool | None = None,
    reference: str = "",
    metadata: dict[str, Any] | None = None,
    client: FactPulseClient | None = None,
) -> FactPulseTask:
    """Ask FactPulse to sign a PDF and track the task (kind ``signature``).

    ``pdf`` is the bytes of the PDF or a binary file open for reading. The other
    fields are sent only when given. Returns the tracked task.
    """
    fields = {
        "reason": reason,
        "location": location,
        "contact": contact,
        "field_name": field_name,
        "use_pades_lt": use_pades_lt,
        "use_timestamp": use_timestamp,
    }
    files = {"pdf_file": (filename, _read(pdf), "application/pdf")}
    return _submit("signature", fields, files, reference, metadata, client)


def submit_validation(
    pdf: Document,
    *,
    filename: str = "invoice.pdf",
    profile: str | None = None,
    use_verapdf: bool | None = None,
    reference: str = "",
    metadata: dict[str, Any] | None = None,
    client: FactPulseClient | None = None,
) -> FactPulseTask:
    """Ask FactPulse to validate a Factur-X PDF and track the task (kind ``validation``).

    ``profile`` is the expected profile (detected when not given); ``use_verapdf``
    asks for the strict PDF/A check. Returns the tracked task.
    """
    fields = {"profile": profile, "use_verapdf": use_verapdf}
    files = {"pdf_file": (filename, _read(pdf), "application/pdf")}
    return _submit("validation", fields, files, reference, metadata, client)


def _submit(
    kind: str,
    fields: Mapping[str, str | bool | None],
    files: Mapping[str, tuple[str, bytes, str]],
    reference: str,
    metadata: dict[str, Any] | None,
    client: FactPulseClient | None,
) -> FactPulseTask:
    # Checked first: once FactPulse has started the task it must be trackable.
    validate_reference(reference)
    validate_metadata(metadata)
    form = {name: _form_value(value) for name, value in fields.items() if value is not None}
    callback_url = app_settings.WEBHOOK_URL
    if callback_url:
        form["callback_url"] = callback_url
        form["webhook_mode"] = "download_url"
    own_client = client is None
    client = client or FactPulseClient.from_settings()
    try:
        answer = client.post_form(SUBMISSION_PATHS[kind], form, files)
    finally:
        if own_client:
            client.close()
    task_id = answer.get("taskId", answer.get("task_id"))
    if not isinstance(task_id, str):
        raise PayloadError(
            f"FactPulse accepted the {kind} submission but gave no taskId; it cannot be tracked.",
            code=MALFORMED,
            final=True,
        )
    validate_task_id(task_id)
    existing = FactPulseTask.objects.filter(task_id=task_id).first()
    if existing is not None:
        # track() would hand back the old row and drop this reference and metadata.
        raise PayloadError(
            f"FactPulse answered the {kind} submission with task id {task_id}, which is "
            f"already tracked here (a {existing.kind} task, {existing.state}); the new "
            "submission was not tracked.",
            code="DUPLICATE_TASK_ID",
            final=True,
        )
    return FactPulseTask.objects.track(task_id, kind, reference=reference, metadata=metadata)


def _form_value(value: str | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _read(document: Document) -> bytes:
    if isinstance(document, (bytes, bytearray, memoryview)):
        return bytes(document)
    content = document.read()
    if not isinstance(content, bytes):
        raise TypeError("open the document in binary mode ('rb')")
    return content
