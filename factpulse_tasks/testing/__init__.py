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

from . import answers
from .answers import *  # noqa: F403  (every answer builder, listed in answers.__all__)
from .documents import make_cii_xml, make_facturx_pdf
from .endpoints import Submission
from .forms import UploadedFile
from .server import FakeFactPulse, RequestRecord
from .webhooks import Delivery, WebhookEvent

__all__ = [
    *answers.__all__,
    "Delivery",
    "FakeFactPulse",
    "RequestRecord",
    "Submission",
    "UploadedFile",
    "WebhookEvent",
    "make_cii_xml",
    "make_facturx_pdf",
]
