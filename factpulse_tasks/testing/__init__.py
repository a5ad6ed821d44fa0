"""A fake FactPulse server for tests and demos, usable from any test (no Django needed).

::

    from factpulse_tasks.testing import FakeFactPulse, generation_success, pending

    with FakeFactPulse(api_key="test-key") as fake:
        fake.script("task-1", pending(), generation_success(output="pdf"))
        ...  # point the code under test at fake.base_url

Documents are real Factur-X files built with the ``factur-x`` package, which is
imported only when a document is needed (``pip install 'factpulse-tasks[testing]'``).
"""

from __future__ import annotations

from .answers import (
    Answer,
    business_error,
    camel_case,
    celery_failure,
    celery_success,
    conversion_error,
    conversion_pending_input,
    conversion_success,
    conversion_validation_failed,
    generation_success,
    hang,
    http_error,
    invalid_base64_success,
    pending,
    raw,
    reset,
    retry,
    signature_success,
    started,
    status_success,
    validation_result,
    validation_success,
    verification_result,
    verification_success,
)
from .documents import make_cii_xml, make_facturx_pdf
from .endpoints import Submission
from .forms import UploadedFile
from .server import FakeFactPulse, RequestRecord
from .webhooks import Delivery, WebhookEvent

__all__ = [
    "Answer",
    "Delivery",
    "FakeFactPulse",
    "RequestRecord",
    "Submission",
    "UploadedFile",
    "WebhookEvent",
    "business_error",
    "camel_case",
    "celery_failure",
    "celery_success",
    "conversion_error",
    "conversion_pending_input",
    "conversion_success",
    "conversion_validation_failed",
    "generation_success",
    "hang",
    "http_error",
    "invalid_base64_success",
    "make_cii_xml",
    "make_facturx_pdf",
    "pending",
    "raw",
    "reset",
    "retry",
    "signature_success",
    "started",
    "status_success",
    "validation_result",
    "validation_success",
    "verification_result",
    "verification_success",
]
