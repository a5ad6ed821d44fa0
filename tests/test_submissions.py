"""Submit and track in one call: submit_generation, submit_signature, submit_validation."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

import pytest

from factpulse_tasks.client import field_errors
from factpulse_tasks.exceptions import (
    AuthenticationError,
    InvalidTrackingData,
    PayloadError,
    SubmissionRejected,
    TransientError,
)
from factpulse_tasks.models import FactPulseTask
from factpulse_tasks.submissions import submit_generation, submit_signature, submit_validation
from factpulse_tasks.testing import FakeFactPulse, make_facturx_pdf

from .conftest import SignalLog, drive

pytestmark = pytest.mark.django_db(transaction=True)

INVOICE = {"number": "FA-2026-0042", "supplier": {"siret": "92019522900017"},
           "lines": [{"description": "Conseil", "quantity": 2, "unitPrice": Decimal("150.00")}]}


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return make_facturx_pdf("FA-2026-0042")


def test_submit_generation_sends_the_invoice_and_tracks_the_task(
    fake: FakeFactPulse, signal_log: SignalLog
) -> None:
    task = submit_generation(INVOICE, profile="EN16931", output_format="xml",
                             reference="FA-2026-0042", metadata={"invoice": 42})
    submission = fake.submissions[-1]
    assert (task.task_id, task.kind) == (submission.task_id, "generation")
    assert (task.reference, task.metadata) == ("FA-2026-0042", {"invoice": 42})
    assert submission.path == "/api/v1/processing/generate-invoice"
    assert json.loads(submission.fields["invoice_data"])["lines"][0]["unitPrice"] == "150.00"
    assert (submission.fields["profile"], submission.fields["output_format"]) == ("EN16931",
                                                                                  "xml")
    assert submission.callback_url is None and "webhook_mode" not in submission.fields
    drive()
    task.refresh_from_db()
    assert task.state == FactPulseTask.State.SUCCEEDED
    assert signal_log.names_for(task.task_id) == ["generation_finished", "task_finished"]


def test_submit_generation_can_send_a_source_pdf_and_booleans(
    fake: FakeFactPulse, pdf: bytes
) -> None:
    submit_generation(json.dumps(INVOICE, default=str), output_format="pdf", source_pdf=pdf,
                      auto_enrich=False, skip_br_fr=True)
    submission = fake.submissions[-1]
    assert submission.files["source_pdf"].content == pdf
    assert (submission.fields["auto_enrich"], submission.fields["skip_br_fr"]) == ("false",
                                                                                    "true")


def test_submit_signature_uploads_the_pdf_and_tracks_a_signature(
    fake: FakeFactPulse, pdf: bytes
) -> None:
    task = submit_signature(io.BytesIO(pdf), filename="FA-2026-0042.pdf", reason="Facturation",
                            use_timestamp=False)
    submission = fake.submissions[-1]
    assert (task.kind, submission.path) == ("signature", "/api/v1/processing/sign-pdf-async")
    upload = submission.files["pdf_file"]
    assert (upload.filename, upload.content) == ("FA-2026-0042.pdf", pdf)
    assert (submission.fields["reason"], submission.fields["use_timestamp"]) == ("Facturation",
                                                                                 "false")
    drive()
    task.refresh_from_db()
    assert task.artifacts.get(role="document").size == len(pdf)


def test_submit_validation_tracks_a_validation(fake: FakeFactPulse, pdf: bytes) -> None:
    task = submit_validation(pdf, profile="EN16931", use_verapdf=True)
    submission = fake.submissions[-1]
    assert (task.kind, submission.path) == ("validation",
                                            "/api/v1/processing/validate-facturx-async")
    assert submission.fields == {"profile": "EN16931", "use_verapdf": "true"}
    drive()
    task.refresh_from_db()
    assert task.result["validation_result"]["isCompliant"] is True


def test_with_a_webhook_url_the_callback_url_is_sent(
    fake: FakeFactPulse, settings: Any, pdf: bytes
) -> None:
    url = "https://erp.example.fr/factpulse/webhook/"
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "WEBHOOK_URL": url}
    submit_validation(pdf)
    submission = fake.submissions[-1]
    assert submission.callback_url == url
    # The event only says the task moved; the file comes from the status endpoint.
    assert submission.fields["webhook_mode"] == "download_url"


def test_a_422_is_a_clear_error_with_the_field_errors_and_nothing_is_tracked(
    fake: FakeFactPulse, pdf: bytes
) -> None:
    before = len(fake.submissions)
    with pytest.raises(SubmissionRejected) as rejected:
        submit_validation(pdf, profile="PLATINUM")
    error = rejected.value
    assert error.status == 422 and not error.retryable
    assert error.errors == [{"loc": ["body"], "msg": "profile must be one of MINIMUM, BASICWL, "
                             "BASIC, EN16931, EXTENDED", "type": "enum"}]
    assert "HTTP 422" in str(error) and "profile must be one of" in str(error)
    assert len(fake.submissions) == before
    assert not FactPulseTask.objects.exists()


def test_a_missing_file_is_named_in_the_errors(fake: FakeFactPulse) -> None:
    from factpulse_tasks.client import FactPulseClient

    client = FactPulseClient.from_settings()
    with pytest.raises(SubmissionRejected) as rejected:
        client.post_form("/api/v1/processing/sign-pdf-async", {"reason": "x"}, {})
    assert rejected.value.errors == [{"loc": ["body", "pdf_file"], "msg": "Field required",
                                      "type": "missing"}]
    assert "body.pdf_file: Field required" in str(rejected.value)


def test_refused_credentials_track_nothing(fake: FakeFactPulse, settings: Any,
                                           pdf: bytes) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "API_KEY": "wrong-key-5e6f"}
    with pytest.raises(AuthenticationError) as refused:
        submit_validation(pdf)
    assert "wrong-key-5e6f" not in str(refused.value)
    assert not FactPulseTask.objects.exists()


def test_an_unreachable_factpulse_tracks_nothing(settings: Any, pdf: bytes) -> None:
    settings.FACTPULSE_TASKS = {"BASE_URL": "http://127.0.0.1:9", "API_KEY": "k"}
    with pytest.raises(TransientError):
        submit_validation(pdf)
    assert not FactPulseTask.objects.exists()


def test_a_reference_that_cannot_be_stored_is_refused_before_anything_is_sent(
    fake: FakeFactPulse, pdf: bytes
) -> None:
    before = len(fake.submissions)
    with pytest.raises(InvalidTrackingData):
        submit_validation(pdf, reference="x" * 300)
    with pytest.raises(InvalidTrackingData):
        submit_signature(pdf, metadata={"when": object()})
    assert len(fake.submissions) == before


def test_submissions_work_with_an_account_too(settings: Any, pdf: bytes) -> None:
    with FakeFactPulse(api_key=None, username="u@example.fr", password="p-3e1") as fake:
        settings.FACTPULSE_TASKS = {"BASE_URL": fake.base_url, "USERNAME": "u@example.fr",
                                    "PASSWORD": "p-3e1"}
        task = submit_validation(pdf)
        assert [r.route for r in fake.requests] == ["token", "submission"]
    assert task.task_id == fake.submissions[0].task_id


@pytest.mark.parametrize(
    ("document", "errors"),
    [
        ({"detail": [{"loc": ["body", "invoice_data", 0], "msg": "bad", "type": "t"}]},
         [{"loc": ["body", "invoice_data", 0], "msg": "bad", "type": "t"}]),
        ({"detail": "Invalid invoice data"}, [{"loc": [], "msg": "Invalid invoice data",
                                               "type": ""}]),
        ({"errorCode": "VALIDATION_FAILED", "errorMessage": "Factur-X validation failed",
          "details": [{"level": "Error", "item": "BR-FR-01", "reason": "SIRET is mandatory",
                       "source": "schematron", "code": "SCHEMATRON_BR_FR_01"}]},
         [{"loc": ["BR-FR-01"], "msg": "SIRET is mandatory", "type": "SCHEMATRON_BR_FR_01"}]),
        ({"errorCode": "INVALID_PDF", "errorMessage": "Unreadable PDF"},
         [{"loc": [], "msg": "Unreadable PDF", "type": "INVALID_PDF"}]),
        ({"detail": [42, {"msg": "x" * 900}]}, [{"loc": [], "msg": "x" * 500, "type": ""}]),
        ([], []),
        ({"something": "else"}, []),
    ],
)
def test_field_errors_read_fastapi_and_afnor_answers(document: Any, errors: Any) -> None:
    assert field_errors(document) == errors


class AnswersWithAnIdAlreadyTracked:
    """A client whose submission answer names a task this project already tracks."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id

    def post_form(self, path: str, fields: Any, files: Any) -> dict[str, Any]:
        return {"taskId": self.task_id, "status": "PENDING"}


def test_a_submission_answered_with_an_id_already_tracked_is_an_error(
    fake: FakeFactPulse, task_id: str
) -> None:
    old = FactPulseTask.objects.track(task_id, "generation", reference="INV-OLD")
    client: Any = AnswersWithAnIdAlreadyTracked(task_id)
    with pytest.raises(PayloadError, match="already tracked here") as caught:
        submit_generation({"number": "INV-NEW"}, reference="INV-NEW", client=client)
    assert caught.value.code == "DUPLICATE_TASK_ID"
    old.refresh_from_db()
    assert (old.reference, FactPulseTask.objects.count()) == ("INV-OLD", 1)
