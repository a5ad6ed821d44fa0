"""Status answers generated from the JSON Schemas reach the outcome the reference gives them.

Every answer is drawn from ``tests/schemas`` (which ``test_schemas.py`` holds to
the FactPulse OpenAPI reference) and read by the kind's reader, in both key
spellings; the official ``factpulse`` SDK models read the same answers as an
oracle. Arbitrary JSON and bytes never raise anything but the app's own errors.
Pure code: no database, no network.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from factpulse_tasks.exceptions import FactPulseError, PayloadError
from factpulse_tasks.kinds import get_kind
from factpulse_tasks.payloads import Failure, NeedsInput, Success, Waiting, decode_json
from factpulse_tasks.testing import answers
from tests.conftest import FIGURES
from tests.schema_strategies import JSON, definitions, from_definition, schema_of

jsonschema = pytest.importorskip("jsonschema")

# kind -> the reference schema of its status answer
ANSWERS = {
    "generation": "GenerationTaskStatus",
    "signature": "SignatureTaskStatus",
    "validation": "ValidationTaskStatus",
    "conversion": "ConversionTaskStatus",
    "verification": "VerificationTypedTaskStatus",
    "status": "AsyncTaskStatus",
}
# Successful results the untyped /status endpoint may carry, drawn from their schemas.
UNTYPED_RESULTS = ("GenerationSuccessResult", "SignatureSuccessResult",
                   "ValidationSuccessTaskResult", "TaskErrorResult")
WHITESPACE = re.compile(r"[ \t\r\n\f\v]")


# -- outcomes ---------------------------------------------------------------------------


def outcome(update: Any) -> tuple[Any, ...]:
    """What a status update means for the task, in a form two readers can compare."""
    if isinstance(update, Waiting):
        return ("running",) if update.running else ("pending",)
    if isinstance(update, NeedsInput):
        return ("awaiting_input",)
    if isinstance(update, Success):
        return ("succeeded",)
    assert isinstance(update, Failure)
    return ("failed", update.code)


def app_outcome(kind: str, payload: Mapping[str, Any]) -> tuple[Any, ...]:
    """How the app reads ``payload``; a final PayloadError fails the task with its code."""
    try:
        return outcome(get_kind(kind).parse(payload))
    except PayloadError as exc:
        return ("failed", exc.code) if exc.final else ("retried", exc.code)


def is_base64(value: str) -> bool:
    try:
        base64.b64decode(WHITESPACE.sub("", value).encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        return False
    return True


def expected_outcome(payload: Mapping[str, Any]) -> tuple[Any, ...]:
    """The outcome the reference gives a schema-valid answer, read from the spec alone.

    Celery PENDING waits, STARTED and RETRY run, FAILURE fails. SUCCESS reads
    ``result.status``: SUCCESS succeeds (when its base64 content decodes),
    ERROR fails with its errorCode, PENDING_INPUT awaits input,
    VALIDATION_FAILED fails. A SUCCESS with no result has nothing to deliver.
    """
    status, result = payload["status"], payload.get("result")
    if status == "PENDING":
        return ("pending",)
    if status in ("STARTED", "RETRY"):
        return ("running",)
    if status == "FAILURE":
        code = result.get("errorCode") if isinstance(result, dict) else None
        return ("failed", code or "TASK_FAILURE")
    if not isinstance(result, dict):
        return ("failed", "INVALID_RESULT")
    business = result.get("status", "ERROR" if "errorCode" in result else "SUCCESS")
    if business == "ERROR":
        return ("failed", result["errorCode"] or "UNKNOWN_ERROR")
    if business == "PENDING_INPUT":
        return ("awaiting_input",)
    if business == "VALIDATION_FAILED":
        return ("failed", "VALIDATION_FAILED")
    content = result.get("content_b64")
    if isinstance(content, str) and not is_base64(content):
        return ("failed", "INVALID_RESULT")
    return ("succeeded",)


# -- answers ----------------------------------------------------------------------------


def respelled(payload: dict[str, Any]) -> dict[str, Any]:
    """The same answer in the other spelling: snake_case keys of the result (and of the
    verdict inside it) become camelCase and camelCase ones snake_case."""
    result = payload.get("result")
    if not isinstance(result, dict):
        return payload
    flipped = {}
    for key, value in result.items():
        if key in ("validation_result", "verification_result") and isinstance(value, dict):
            value = {_flip(k): v for k, v in value.items()}
        flipped[_flip(key)] = value
    return {**payload, "result": flipped}


def _flip(key: str) -> str:
    if "_" in key:
        first, *rest = key.split("_")
        return first + "".join(part[:1].upper() + part[1:] for part in rest)
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m[1].lower(), key)


def with_real_base64(draw: Callable[[Any], Any], payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` whose string ``content_b64`` holds real base64 of drawn bytes."""
    result = payload.get("result")
    if isinstance(result, dict) and isinstance(result.get("content_b64"), str):
        content = draw(st.binary(max_size=64))
        payload = {**payload, "result": {**result,
                                         "content_b64": base64.b64encode(content).decode()}}
    return payload


def answers_of(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """Schema-valid answers of ``kind``; half of them Celery SUCCESS, the interesting half."""
    envelopes = from_definition(ANSWERS[kind])
    if kind == "status":
        typed = st.fixed_dictionaries({
            "taskId": st.text(max_size=8),
            "status": st.just("SUCCESS"),
            "result": st.one_of([from_definition(name) for name in UNTYPED_RESULTS]),
        })
        return envelopes | typed
    return envelopes | envelopes.map(lambda document: {**document, "status": "SUCCESS"})


SUCCESS_RESULTS = {
    "generation": ("GenerationSuccessResult",),
    "signature": ("SignatureSuccessResult",),
    "validation": ("ValidationSuccessTaskResult",),
    "conversion": ("ConversionSuccessTaskResult",),
    "verification": ("VerificationSuccessTaskResult",),
    "status": UNTYPED_RESULTS[:3],
}


def successes_of(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """Celery SUCCESS answers of ``kind`` whose result is one of its success results."""
    results = st.one_of([from_definition(name) for name in SUCCESS_RESULTS[kind]])
    return st.fixed_dictionaries({
        "taskId": st.text(max_size=8),
        "status": st.just("SUCCESS"),
        "result": results.map(lambda result: {**result, "status": "SUCCESS"}),
    })


VALIDATORS = {kind: jsonschema.Draft202012Validator(schema_of(name))
              for kind, name in ANSWERS.items()}


@pytest.mark.parametrize("kind", sorted(ANSWERS))
@given(data=st.data())
def test_every_answer_the_schema_allows_reaches_the_outcome_the_spec_gives_it(
    kind: str, data: st.DataObject
) -> None:
    payload = data.draw(answers_of(kind))
    if data.draw(st.booleans()):
        payload = with_real_base64(data.draw, payload)
    VALIDATORS[kind].validate(payload)
    note(json.dumps(payload)[:2000])

    expected = expected_outcome(payload)
    assert app_outcome(kind, payload) == expected
    assert app_outcome(kind, respelled(payload)) == expected
    FIGURES[f"schema answers read ({kind})"] += 1
    FIGURES[f"outcome {expected[0]}"] += 1


@pytest.mark.parametrize("kind", sorted(ANSWERS))
@given(data=st.data())
def test_success_results_keep_no_file_content_and_decode_it_exactly(
    kind: str, data: st.DataObject
) -> None:
    payload = with_real_base64(data.draw, data.draw(successes_of(kind)))
    VALIDATORS[kind].validate(payload)
    assert expected_outcome(payload) == ("succeeded",)
    update = get_kind(kind).parse(payload)
    again = get_kind(kind).parse(respelled(payload))

    assert isinstance(update, Success) and isinstance(again, Success)
    assert "content_b64" not in update.result and "xml_content" not in update.result
    assert update.files == again.files
    content = payload["result"].get("content_b64")
    documents = [f.content for f in update.files if f.role == "document"]
    assert documents == ([] if content is None else [base64.b64decode(content)])
    json.dumps(update.result)  # storable as it is


# -- hostile input ----------------------------------------------------------------------


@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_the_apps_own_errors(raw: bytes) -> None:
    for kind in ANSWERS:
        try:
            get_kind(kind).parse(decode_json(raw))
        except FactPulseError:
            pass


@given(raw=st.text(max_size=200).map(str.encode))
def test_arbitrary_text_raises_only_the_apps_own_errors(raw: bytes) -> None:
    for kind in ANSWERS:
        try:
            get_kind(kind).parse(decode_json(raw))
        except FactPulseError:
            pass


CELERY_STATES = st.sampled_from(["PENDING", "STARTED", "SUCCESS", "FAILURE", "RETRY",
                                 "REVOKED", "success", ""])
BUSINESS_STATES = st.sampled_from(["SUCCESS", "ERROR", "PENDING_INPUT", "VALIDATION_FAILED",
                                   "error", "", None, 0])


@given(body=JSON | st.fixed_dictionaries(
    {"taskId": JSON, "status": CELERY_STATES | JSON},
    optional={"result": JSON | st.dictionaries(st.text(max_size=20), JSON)},
))
def test_arbitrary_json_raises_only_the_apps_own_errors(body: Any) -> None:
    for kind in ANSWERS:
        try:
            get_kind(kind).parse(body)
        except FactPulseError:
            pass
        try:
            get_kind(kind).parse(decode_json(json.dumps(body).encode()))
        except FactPulseError:
            pass


FIELD_NAMES = st.sampled_from([
    "status", "content_b64", "contentB64", "xml_content", "filename", "errorCode",
    "errorMessage", "details", "validation_result", "verification_result", "conversion_id",
    "extraction", "missing_fields", "extracted_data", "document_type_code", "profile",
    "processing_time_ms", "message", "validation_errors", "signatures", "isCompliant",
    "complianceScore", "size_bytes", "is_signed", "signer_cn", "signing_date",
    "signature_count", "validation_details", "confidence_score", "traceback",
])


@given(result=st.dictionaries(FIELD_NAMES, JSON | BUSINESS_STATES, max_size=12),
       business=BUSINESS_STATES)
def test_results_with_known_fields_of_any_type_raise_only_the_apps_own_errors(
    result: dict[str, Any], business: Any
) -> None:
    for kind in ANSWERS:
        for candidate in (result, {**result, "status": business}):
            try:
                get_kind(kind).parse({"taskId": "t", "status": "SUCCESS", "result": candidate})
            except FactPulseError:
                pass


# -- the official SDK as an oracle ------------------------------------------------------


def oracle_model(kind: str) -> Any:
    models = pytest.importorskip("factpulse.models")
    return getattr(models, ANSWERS[kind])


def oracle_outcome(kind: str, payload: dict[str, Any]) -> tuple[Any, ...] | None:
    """How the official SDK reads ``payload``; None when it refuses it."""
    try:
        parsed = oracle_model(kind).from_dict(payload)
    except (ValueError, TypeError):
        return None
    status = parsed.status.value
    if status == "PENDING":
        return ("pending",)
    if status in ("STARTED", "RETRY"):
        return ("running",)
    if status == "FAILURE":
        return ("failed",)
    if parsed.result is None:
        return ("failed", "INVALID_RESULT")
    if kind == "status":
        return ("finished",)
    instance = parsed.result.actual_instance
    name = type(instance).__name__
    if name.endswith("ErrorResult"):
        return ("failed", instance.error_code or "UNKNOWN_ERROR")
    if name == "ConversionPendingInputResult":
        return ("awaiting_input",)
    if name == "ConversionValidationFailedResult":
        return ("failed", "VALIDATION_FAILED")
    assert "Success" in name, name
    return ("succeeded",)


def loosened(draw: Callable[[Any], Any], payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with one field of its result (never ``status``) dropped or made null:
    answers just outside the schema, where the SDK's leniency can be compared."""
    result = payload.get("result")
    if not isinstance(result, dict):
        return payload
    names = sorted(k for k in result if k != "status")
    if not names:
        return payload
    name = draw(st.sampled_from(names))
    if draw(st.booleans()):
        changed = {k: v for k, v in result.items() if k != name}
    else:
        changed = {**result, name: None}
    return {**payload, "result": changed}


@pytest.mark.parametrize("kind", sorted(ANSWERS))
@given(data=st.data())
def test_where_the_official_sdk_accepts_an_answer_the_app_reaches_the_same_outcome(
    kind: str, data: st.DataObject
) -> None:
    payload = with_real_base64(data.draw, data.draw(answers_of(kind)))
    if data.draw(st.booleans()):
        payload = loosened(data.draw, payload)
    theirs = oracle_outcome(kind, payload)
    if theirs is None:
        FIGURES[f"oracle refused ({kind})"] += 1
        return
    ours = app_outcome(kind, payload)
    if theirs == ("finished",) and ours[0] in ("succeeded", "failed"):
        ours = ("finished",)
    elif theirs == ("failed",):
        ours = ours[:1]
    note(json.dumps(payload)[:2000])
    assert ours == theirs
    FIGURES[f"oracle agreed ({kind})"] += 1


# -- named cases ------------------------------------------------------------------------

SUCCESS_ANSWERS: dict[str, Callable[[], Any]] = {
    "generation": answers.generation_success,
    "signature": answers.signature_success,
    "validation": answers.validation_success,
    "conversion": answers.conversion_success,
    "verification": answers.verification_success,
    "status": answers.status_success,
}
# Where the verdict of a kind sits inside its result, with the schema of that verdict.
VERDICTS = {
    "validation": ("validation_result", "PDFValidationResultAPI"),
    "verification": ("verification_result", "VerificationSuccessResponse"),
}


def success_payload(kind: str) -> dict[str, Any]:
    payload: dict[str, Any] = SUCCESS_ANSWERS[kind]().json_for("3f1c9a52-task")
    return payload


def required_fields(kind: str) -> list[tuple[str | None, str]]:
    """(verdict key or None, field) for every required field of the kind's success result."""
    if kind == "status":
        return []
    (name,) = SUCCESS_RESULTS[kind]
    fields: list[tuple[str | None, str]] = [
        (None, field) for field in definitions()[name]["required"]]
    if kind in VERDICTS:
        key, verdict = VERDICTS[kind]
        fields += [(key, field) for field in definitions()[verdict]["required"]]
    return fields


def nullable_fields(kind: str) -> list[str]:
    if kind == "status":
        return []
    (name,) = SUCCESS_RESULTS[kind]
    return sorted(field for field, node in definitions()[name]["properties"].items()
                  if "null" in (node.get("type") or []) or {"type": "null"} in node.get(
                      "anyOf", []))


@pytest.mark.parametrize("kind", sorted(ANSWERS))
def test_business_error_inside_celery_success_fails_the_task(kind: str) -> None:
    payload = (answers.conversion_error("OCR_FAILED", "Illisible") if kind == "conversion"
               else answers.business_error()).json_for("t")

    update = get_kind(kind).parse(payload)

    assert isinstance(update, Failure)
    assert (update.remote_status, update.code) == ("SUCCESS", payload["result"]["errorCode"])
    assert update.message == payload["result"]["errorMessage"]
    assert len(update.details) == len(payload["result"]["details"])


@pytest.mark.parametrize("kind", sorted(ANSWERS))
@pytest.mark.parametrize("business", ["ARCHIVED", "PARTIAL_SUCCESS", 7, ""])
def test_a_business_status_the_app_does_not_know_fails_as_an_invalid_result(
    kind: str, business: Any
) -> None:
    payload = success_payload(kind)
    payload["result"]["status"] = business

    assert app_outcome(kind, payload) == ("failed", "INVALID_RESULT")


@pytest.mark.parametrize("kind", sorted(set(ANSWERS) - {"conversion"}))
@pytest.mark.parametrize("business", ["PENDING_INPUT", "VALIDATION_FAILED"])
def test_a_business_status_of_another_kind_fails_as_an_invalid_result(
    kind: str, business: str
) -> None:
    payload = answers.conversion_pending_input().json_for("t")
    payload["result"]["status"] = business

    assert app_outcome(kind, payload) == ("failed", "INVALID_RESULT")


@pytest.mark.parametrize(
    ("kind", "where", "field"),
    [(kind, where, field) for kind in sorted(ANSWERS) for where, field in required_fields(kind)],
)
def test_a_success_result_without_a_required_field_fails_as_an_invalid_result(
    kind: str, where: str | None, field: str
) -> None:
    payload = success_payload(kind)
    container = payload["result"] if where is None else payload["result"][where]
    del container[field]

    assert app_outcome(kind, payload) == ("failed", "INVALID_RESULT")
    assert app_outcome(kind, respelled(payload)) == ("failed", "INVALID_RESULT")


@pytest.mark.parametrize("field", ["errorCode", "errorMessage", "details"])
def test_an_error_result_without_a_required_field_still_fails_the_task(field: str) -> None:
    payload = answers.business_error("BR_FR_01", "SIRET manquant").json_for("t")
    del payload["result"][field]

    update = get_kind("generation").parse(payload)

    assert isinstance(update, Failure)
    assert update.code == ("UNKNOWN_ERROR" if field == "errorCode" else "BR_FR_01")
    assert update.message == ("" if field == "errorMessage" else "SIRET manquant")


@pytest.mark.parametrize("kind", sorted(ANSWERS))
def test_extra_fields_are_kept_and_change_nothing(kind: str) -> None:
    payload = success_payload(kind)
    payload["result"]["archive_ref"] = {"bucket": "b", "days": 3650}
    payload["queuedAt"] = "2026-01-15T10:30:00Z"
    plain = get_kind(kind).parse(success_payload(kind))

    update = get_kind(kind).parse(payload)

    assert isinstance(update, Success) and isinstance(plain, Success)
    assert update.result == {**plain.result, "archive_ref": {"bucket": "b", "days": 3650}}
    assert update.files == plain.files


@pytest.mark.parametrize(
    ("kind", "field"),
    [(kind, field) for kind in sorted(ANSWERS) for field in nullable_fields(kind)],
)
def test_a_null_the_spec_allows_is_accepted(kind: str, field: str) -> None:
    payload = success_payload(kind)
    payload["result"][field] = None

    update = get_kind(kind).parse(payload)

    assert isinstance(update, Success)
    roles = {f.role for f in update.files}
    assert ("document" in roles) is (field != "content_b64" and kind != "verification")


def test_a_null_result_with_celery_success_fails_as_an_invalid_result() -> None:
    for kind in ANSWERS:
        payload = {"taskId": "t", "status": "SUCCESS", "result": None}
        assert app_outcome(kind, payload) == ("failed", "INVALID_RESULT")


@pytest.mark.parametrize("state", ["PENDING", "STARTED", "RETRY"])
def test_a_null_result_while_celery_works_is_waiting(state: str) -> None:
    for kind in ANSWERS:
        assert app_outcome(kind, {"taskId": "t", "status": state, "result": None})[0] in (
            "pending", "running")


def test_a_result_without_its_status_is_read_by_its_error_fields() -> None:
    error = answers.business_error("E1", "m").json_for("t")
    del error["result"]["status"]
    success = answers.generation_success().json_for("t")
    del success["result"]["status"]

    assert app_outcome("generation", error) == ("failed", "E1")
    assert app_outcome("generation", success) == ("succeeded",)


@pytest.mark.parametrize(
    ("kind", "where", "field"),
    [("verification", "verification_result", "warnings"),
     ("verification", "verification_result", "isFacturx"),
     ("validation", "validation_result", "xmlErrors"),
     ("conversion", None, "pdf_regenerated"),
     ("generation", None, "status")],
)
def test_a_null_in_an_optional_field_reads_as_absent_as_the_sdk_reads_it(
    kind: str, where: str | None, field: str
) -> None:
    payload = success_payload(kind)
    container = payload["result"] if where is None else payload["result"][where]
    container[field] = None

    assert app_outcome(kind, payload) == ("succeeded",)
    assert oracle_outcome(kind, payload) == ("succeeded",)
