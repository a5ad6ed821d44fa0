"""Conversion and verification tasks end to end, and kinds registered by a host project.

Real HTTP to the fake FactPulse: track, poll, signals, artifacts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.dispatch import Signal

from factpulse_tasks import signals
from factpulse_tasks.exceptions import InvalidKindSpec, PayloadError, UnknownKind
from factpulse_tasks.kinds import (
    REGISTRY,
    KindSpec,
    get_kind,
    register_kind,
    unregister_kind,
    validate_kind_name,
)
from factpulse_tasks.models import FactPulseTask
from factpulse_tasks.payloads import File, Success
from factpulse_tasks.results import parse_untyped
from factpulse_tasks.testing import FakeFactPulse, answers
from tests.conftest import drive

State = FactPulseTask.State
SIGNALS = ("task_finished", "conversion_finished", "verification_finished",
           "task_needs_input", "conversion_needs_input")


@pytest.fixture
def sent() -> Iterator[list[tuple[str, str, str]]]:
    """Every signal of :data:`SIGNALS` received: (name, task id, state when sent)."""
    log: list[tuple[str, str, str]] = []
    receivers = []
    for name in SIGNALS:
        def receiver(sender: Any, task: FactPulseTask, _name: str = name, **kw: Any) -> None:
            log.append((_name, task.task_id, task.state))

        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((name, receiver))
    yield log
    for name, receiver in receivers:
        getattr(signals, name).disconnect(receiver)


def stored(task: FactPulseTask, role: str) -> bytes:
    with task.artifacts.get(role=role).file.open("rb") as handle:
        return bytes(handle.read())


pytestmark = pytest.mark.django_db(transaction=True)


# -- conversion -------------------------------------------------------------------------


@pytest.mark.parametrize("camel", [False, True], ids=["snake_case", "camelCase"])
def test_conversion_succeeds_with_its_document_and_xml(
    fake: FakeFactPulse, task_id: str, sent: list[tuple[str, str, str]], camel: bool
) -> None:
    success = answers.conversion_success()
    fake.script(task_id, answers.pending(), answers.started(),
                answers.camel_case(success) if camel else success)
    FactPulseTask.objects.track(task_id, "conversion")

    drive()

    task = FactPulseTask.objects.get(task_id=task_id)
    assert task.state == State.SUCCEEDED
    assert task.result is not None
    assert task.result["conversion_id"] == answers.DEFAULT_CONVERSION_ID
    assert task.result["extraction"]["ocr_provider"] == "mistral_ocr"
    assert "content_b64" not in task.result and "xml_content" not in task.result
    assert stored(task, "document") == success.files["document"]
    assert stored(task, "xml") == success.files["xml"]
    document = task.artifacts.get(role="document")
    assert (document.filename, document.content_type) == (
        f"conversion-{answers.DEFAULT_CONVERSION_ID}.pdf", "application/pdf")
    assert document.sha256 == hashlib.sha256(success.files["document"]).hexdigest()
    assert sorted(name for name, _, _ in sent) == ["conversion_finished", "task_finished"]


def test_pending_input_is_visible_signalled_once_and_the_task_goes_on(
    fake: FakeFactPulse, task_id: str, sent: list[tuple[str, str, str]]
) -> None:
    asked = answers.conversion_pending_input(["seller.siret"])
    fake.script(task_id, answers.started(), asked, asked, asked, answers.started(),
                asked, answers.conversion_success(output="xml"))
    FactPulseTask.objects.track(task_id, "conversion")
    from factpulse_tasks.polling import poll_due

    poll_due()
    poll_due()
    task = FactPulseTask.objects.get(task_id=task_id)
    assert task.state == State.AWAITING_INPUT
    assert FactPulseTask.objects.awaiting_input().get() == task
    assert task.result is not None and task.result["missing_fields"] == ["seller.siret"]
    assert task.finished_at is None and task.next_poll_at is not None
    assert sent == [("task_needs_input", task_id, "awaiting_input"),
                    ("conversion_needs_input", task_id, "awaiting_input")]

    poll_due()
    poll_due()  # still awaiting: no new signal
    assert len(sent) == 2
    poll_due()  # FactPulse works again
    assert FactPulseTask.objects.get(task_id=task_id).state == State.RUNNING
    assert FactPulseTask.objects.get(task_id=task_id).result is None
    poll_due()  # asks again: a new entry, a new signal
    assert [name for name, _, _ in sent].count("conversion_needs_input") == 2

    drive()
    assert FactPulseTask.objects.get(task_id=task_id).state == State.SUCCEEDED
    assert [name for name, _, _ in sent][-2:] == ["task_finished", "conversion_finished"]


def test_task_awaiting_input_expires_at_its_deadline(
    fake: FakeFactPulse, task_id: str, settings: Any, sent: list[tuple[str, str, str]]
) -> None:
    fake.script(task_id, answers.conversion_pending_input())
    FactPulseTask.objects.track(task_id, "conversion")
    drive(max_cycles=1)
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "TASK_TIMEOUT": 0.001}

    drive(max_cycles=1)

    task = FactPulseTask.objects.get(task_id=task_id)
    assert (task.state, task.error_code) == (State.EXPIRED, "TASK_EXPIRED")
    assert "awaiting input" in task.error_message
    assert [name for name, _, _ in sent] == [
        "task_needs_input", "conversion_needs_input", "task_finished", "conversion_finished"]


def test_conversion_validation_failed_fails_with_the_rules_broken(
    fake: FakeFactPulse, task_id: str, sent: list[tuple[str, str, str]]
) -> None:
    fake.script(task_id, answers.conversion_validation_failed())
    FactPulseTask.objects.track(task_id, "conversion")

    drive()

    task = FactPulseTask.objects.get(task_id=task_id)
    assert (task.state, task.error_code) == (State.FAILED, "VALIDATION_FAILED")
    assert task.error_message.startswith("Les données extraites")
    assert [d["item"] for d in task.error_details] == ["BR-CO-15"]
    assert task.result is not None and task.result["extracted_data"]["totalNetAmount"] == 1250.0
    assert not task.artifacts.exists()
    assert sorted(name for name, _, _ in sent) == ["conversion_finished", "task_finished"]


def test_conversion_error_fails_with_the_afnor_error_and_keeps_the_conversion_id(
    fake: FakeFactPulse, task_id: str
) -> None:
    fake.script(task_id, answers.conversion_error("OCR_FAILED", "Illisible"))
    FactPulseTask.objects.track(task_id, "conversion")

    drive()

    task = FactPulseTask.objects.get(task_id=task_id)
    assert (task.state, task.error_code, task.error_message) == (
        State.FAILED, "OCR_FAILED", "Illisible")
    assert task.result is not None
    assert task.result["conversion_id"] == answers.DEFAULT_CONVERSION_ID


@pytest.mark.parametrize(
    "result",
    [
        {"status": "PENDING_INPUT", "conversion_id": "c", "message": "m"},
        {"status": "PENDING_INPUT", "conversion_id": "c", "message": "m", "missing_fields": [1],
         "extracted_data": {}, "confidence_score": 0.5, "processing_time_ms": 1},
        {"status": "VALIDATION_FAILED", "conversion_id": "c", "message": None},
        {"status": "SUCCESS", "conversion_id": "c", "document_type_code": "380",
         "profile": "EN16931", "extraction": {"confidence_score": 1}, "processing_time_ms": 1},
        {"status": "SUCCESS", "conversion_id": "c", "document_type_code": 380,
         "profile": "EN16931", "extraction": {"confidence_score": 1}, "processing_time_ms": 1,
         "content_b64": answers.INVALID_BASE64},
    ],
    ids=["input-missing-fields", "input-not-strings", "rejected-no-message", "code-as-text",
         "bad-base64"],
)
def test_broken_conversion_result_fails_as_invalid(
    fake: FakeFactPulse, task_id: str, result: dict[str, Any]
) -> None:
    fake.script(task_id, answers.celery_success(result))
    FactPulseTask.objects.track(task_id, "conversion")

    drive()

    task = FactPulseTask.objects.get(task_id=task_id)
    assert (task.state, task.error_code) == (State.FAILED, "INVALID_RESULT")


# -- verification -----------------------------------------------------------------------


@pytest.mark.parametrize("compliant", [True, False])
def test_verification_succeeds_with_its_verdict_and_no_file(
    fake: FakeFactPulse, task_id: str, sent: list[tuple[str, str, str]], compliant: bool
) -> None:
    fake.script(task_id, answers.started(), answers.verification_success(compliant=compliant))
    FactPulseTask.objects.track(task_id, FactPulseTask.Kind.VERIFICATION)

    drive()

    task = FactPulseTask.objects.get(task_id=task_id)
    assert task.state == State.SUCCEEDED
    assert task.result is not None
    assert task.result["verification_result"]["isCompliant"] is compliant
    assert not task.artifacts.exists()
    assert fake.requests[-1].path.endswith(f"/verify-async/{task_id}/typed-status")
    assert sorted(name for name, _, _ in sent) == ["task_finished", "verification_finished"]


@pytest.mark.parametrize(
    "result",
    [
        {"status": "SUCCESS"},
        {"status": "SUCCESS", "verification_result": {"isCompliant": "yes", "complianceScore": 1}},
        {"status": "SUCCESS", "verification_result": {"isCompliant": True}},
        {"status": "PENDING_INPUT", "conversion_id": "c"},
    ],
    ids=["no-verdict", "compliance-as-text", "no-score", "state-of-another-kind"],
)
def test_broken_verification_result_fails_as_invalid(
    fake: FakeFactPulse, task_id: str, result: dict[str, Any]
) -> None:
    fake.script(task_id, answers.celery_success(result))
    FactPulseTask.objects.track(task_id, "verification")

    drive()

    task = FactPulseTask.objects.get(task_id=task_id)
    assert (task.state, task.error_code) == (State.FAILED, "INVALID_RESULT")


@pytest.mark.parametrize("kind", ["conversion", "verification"])
def test_unreadable_answers_of_the_new_kinds_are_retried_not_failed(
    fake: FakeFactPulse, task_id: str, kind: str
) -> None:
    fake.script(task_id, answers.raw(b"<html>502</html>"), answers.raw(b"[1, 2]"),
                answers.http_error(503), answers.pending())
    FactPulseTask.objects.track(task_id, kind)

    drive(max_cycles=4)

    task = FactPulseTask.objects.get(task_id=task_id)
    assert (task.state, task.error_count, task.poll_count) == (State.PENDING, 0, 4)


# -- kinds registered by a host project -----------------------------------------------


receipt_finished = Signal()


def parse_receipt(result: dict[str, Any]) -> Success:
    base = parse_untyped(result)
    return Success("SUCCESS", base.result, tuple(
        File(f.role, "receipt.pdf", f.content, f.content_type) for f in base.files))


@pytest.fixture
def receipt_kind() -> Iterator[KindSpec]:
    spec = register_kind(KindSpec(
        "receipt",
        "/api/v1/processing/tasks/{task_id}/status",
        parse_receipt,
        receipt_finished,
        artifacts=("document",),
        label="Receipt",
    ))
    yield spec
    unregister_kind("receipt")


def test_a_host_kind_is_polled_stored_and_signalled_without_a_migration(
    fake: FakeFactPulse, task_id: str, receipt_kind: KindSpec
) -> None:
    got: list[str] = []

    def on_receipt(sender: Any, task: FactPulseTask, **kwargs: Any) -> None:
        got.append(task.state)

    receipt_finished.connect(on_receipt)
    success = answers.status_success()
    fake.script(task_id, answers.started(), success)
    FactPulseTask.objects.track(task_id, "receipt", reference="R-1")

    drive()

    task = FactPulseTask.objects.get(task_id=task_id)
    assert task.state == State.SUCCEEDED and got == ["succeeded"]
    assert stored(task, "document") == success.files["document"]
    assert str(task) == f"Receipt {task_id}"
    task.full_clean()
    receipt_finished.disconnect(on_receipt)


def test_a_reader_returning_undeclared_files_fails_the_task(
    fake: FakeFactPulse, task_id: str
) -> None:
    spec = register_kind(KindSpec("no_files", "/api/v1/processing/tasks/{task_id}/status",
                                  parse_untyped))
    try:
        fake.script(task_id, answers.status_success())
        FactPulseTask.objects.track(task_id, spec.name)
        drive()
    finally:
        unregister_kind(spec.name)
    task = FactPulseTask.objects.get(task_id=task_id)
    assert (task.state, task.error_code) == (State.FAILED, "INVALID_RESULT")
    assert "does not declare" in task.error_message


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "Receipt"}, "lower-case"),
        ({"name": "x" * 33}, "1 to 32"),
        ({"status_path": "/api/v1/receipts/status"}, "{task_id}"),
        ({"status_path": "/api/{task_id}/{other}"}, "no other"),
        ({"status_path": "api/{task_id}"}, "starting with '/'"),
        ({"status_path": "/api/{task_id}?x=1"}, "without query"),
        ({"parse_result": "parse_untyped"}, "callable"),
        ({"signal": "receipt_finished"}, "Signal"),
        ({"artifacts": ("pdf",)}, "roles"),
        ({"business_states": {"SUCCESS": parse_untyped}}, "read by the app"),
        ({"business_states": {"pending": parse_untyped}}, "upper-case"),
    ],
)
def test_register_kind_refuses_a_spec_it_cannot_use(changes: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {"name": "receipt", "status_path": "/api/{task_id}/status",
                              "parse_result": parse_untyped, **changes}
    with pytest.raises(InvalidKindSpec, match=message.replace("?", r"\?")):
        register_kind(KindSpec(**fields))
    assert "receipt" not in REGISTRY


def test_register_kind_refuses_a_name_already_taken() -> None:
    with pytest.raises(InvalidKindSpec, match="already registered"):
        register_kind(KindSpec("generation", "/x/{task_id}", parse_untyped))
    with pytest.raises(InvalidKindSpec, match="built-in"):
        unregister_kind("generation")


def test_the_kind_field_accepts_registered_kinds_only(receipt_kind: KindSpec) -> None:
    validate_kind_name("receipt")
    validate_kind_name("conversion")
    with pytest.raises(ValidationError):
        validate_kind_name("teleportation")
    with pytest.raises(UnknownKind):
        get_kind("teleportation")


def test_every_builtin_kind_reads_a_business_error_the_same_way() -> None:
    error = answers.business_error().payload
    for name in ("generation", "signature", "validation", "status", "conversion",
                 "verification"):
        update = get_kind(name).parse(error)
        assert getattr(update, "code", None) == "VALIDATION_FAILED", name


def test_payload_errors_name_the_reader_problem() -> None:
    with pytest.raises(PayloadError, match="conversion_id"):
        get_kind("conversion").parse(answers.celery_success({"status": "SUCCESS"}).payload)
