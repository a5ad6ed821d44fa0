"""The fake FactPulse server: real HTTP, answers checked against the reference OpenAPI schemas.

Needs no Django. The schemas come from ``<repo root>/../shared/reference`` or from
``$FACTPULSE_SHARED_DIR/reference``; schema tests are skipped when the file is not there.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import copy
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from factpulse_tasks.testing import (
    Answer,
    FakeFactPulse,
    business_error,
    camel_case,
    celery_failure,
    celery_success,
    conversion_error,
    conversion_pending_input,
    conversion_success,
    conversion_validation_failed,
    documents,
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
    validation_success,
    verification_success,
)

API_KEY = "test-key-5d1f"
USERNAME = "compta@example.fr"
PASSWORD = "s3cret-passw0rd"
REPO_ROOT = Path(__file__).resolve().parent.parent
SPEC_PATH = Path("reference") / "factpulse-async-tasks.openapi.yaml"

PROCESSING = "/api/v1/processing"
STATUS_PATHS = (
    PROCESSING + "/tasks/{}/status",
    PROCESSING + "/tasks/{}/generation-status",
    PROCESSING + "/tasks/{}/signature-status",
    PROCESSING + "/tasks/{}/validation-status",
    "/api/v1/convert/tasks/{}/conversion-status",
    "/api/v1/verification/verify-async/{}/typed-status",
)
TYPED_STATUS_SCHEMAS = (
    "AsyncTaskStatus",
    "GenerationTaskStatus",
    "SignatureTaskStatus",
    "ValidationTaskStatus",
    "ConversionTaskStatus",
    "VerificationTypedTaskStatus",
)


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FakeFactPulse]:
    with FakeFactPulse(api_key=API_KEY, username=USERNAME, password=PASSWORD) as fake:
        yield fake
    assert fake.errors == []


@pytest.fixture
def api(server: FakeFactPulse) -> Iterator[requests.Session]:
    """A session that sends the right API key."""
    with requests.Session() as session:
        session.headers["X-API-Key"] = API_KEY
        yield session


@pytest.fixture
def anonymous() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture(scope="session")
def facturx() -> Any:
    return pytest.importorskip("facturx")


def get_status(
    session: requests.Session,
    server: FakeFactPulse,
    task_id: str,
    path: str = STATUS_PATHS[0],
    **kwargs: Any,
) -> requests.Response:
    kwargs.setdefault("timeout", 5)
    return session.get(server.base_url + path.format(task_id), **kwargs)


def served(server: FakeFactPulse, api: requests.Session, answer: Answer) -> Any:
    """Script ``answer`` for a fresh task, fetch it over HTTP and return the JSON."""
    task_id = f"task-{time.monotonic_ns()}"
    server.script(task_id, answer)
    response = get_status(api, server, task_id)
    assert response.status_code == 200
    document = response.json()
    assert document["taskId"] == task_id
    return document


# -- the reference schemas ------------------------------------------------------------


def _shared_dir() -> Path:
    configured = os.environ.get("FACTPULSE_SHARED_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared"


def _to_json_schema(node: Any) -> Any:
    """Rewrite the OpenAPI-3.0 keywords the spec uses into JSON Schema 2020-12.

    ``nullable: true`` becomes "or null"; a ``discriminator`` becomes a required
    property whose value picks the schema to apply, as OpenAPI defines it.
    """
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _to_json_schema(value) for key, value in node.items()}
    discriminator = node.pop("discriminator", None)
    if discriminator is not None:
        name, mapping = discriminator["propertyName"], discriminator["mapping"]
        node.pop("oneOf", None)
        node.update(
            type="object",
            required=[name],
            properties={name: {"enum": list(mapping)}},
            allOf=[
                {"if": {"properties": {name: {"const": value}}}, "then": {"$ref": ref}}
                for value, ref in mapping.items()
            ],
        )
    if node.pop("nullable", False):
        if isinstance(node.get("type"), str) and "allOf" not in node and "$ref" not in node:
            node["type"] = [node["type"], "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
        else:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


@pytest.fixture(scope="session")
def openapi() -> dict[str, Any]:
    path = _shared_dir() / SPEC_PATH
    if not path.is_file():
        pytest.skip(
            f"reference OpenAPI file not found at {path}; "
            "set FACTPULSE_SHARED_DIR to the folder that holds reference/"
        )
    yaml = pytest.importorskip("yaml")
    with path.open(encoding="utf-8") as handle:
        return dict(yaml.safe_load(handle))


@pytest.fixture(scope="session")
def check(openapi: dict[str, Any]) -> Callable[[str, Any], None]:
    """``check(schema_name, document)`` raises ``ValidationError`` unless it conforms."""
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    from referencing.jsonschema import DRAFT202012

    document = copy.deepcopy(openapi)
    document["components"]["schemas"] = _to_json_schema(document["components"]["schemas"])
    resource = referencing.Resource(contents=document, specification=DRAFT202012)
    base = "urn:factpulse:openapi"
    registry = referencing.Registry().with_resource(base, resource)
    validators: dict[str, Any] = {}

    def check_(name: str, instance: Any) -> None:
        if name not in validators:
            assert name in document["components"]["schemas"], name
            schema = {"$ref": f"{base}#/components/schemas/{name}"}
            validators[name] = jsonschema.Draft202012Validator(schema, registry=registry)
        validators[name].validate(instance)

    return check_


# -- authentication -------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "wrong-key"}, {"Authorization": "Bearer not-a-token"}, {"X-API-Key": ""}],
    ids=["no-credentials", "wrong-key", "unknown-bearer", "empty-key"],
)
def test_status_without_valid_credentials_is_refused_with_the_api_error_body(
    server: FakeFactPulse, anonymous: requests.Session, headers: dict[str, str]
) -> None:
    server.script("task-1", started())

    response = get_status(anonymous, server, "task-1", headers=headers)

    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "errorCode": "AUTHENTICATION_REQUIRED",
        "errorMessage": "Invalid or missing JWT token",
    }
    # A refused request consumes nothing from the script.
    assert get_status(anonymous, server, "task-1", headers={"X-API-Key": API_KEY}).json()[
        "status"
    ] == "STARTED"


def test_submission_without_credentials_is_refused(
    server: FakeFactPulse, anonymous: requests.Session
) -> None:
    response = anonymous.post(
        server.base_url + PROCESSING + "/validate-facturx-async",
        files={"pdf_file": ("a.pdf", b"%PDF-1.7", "application/pdf")},
        timeout=5,
    )

    assert response.status_code == 401
    assert response.json()["errorCode"] == "AUTHENTICATION_REQUIRED"
    assert server.submissions == []


def test_token_flow_gives_a_bearer_token_that_replaces_the_api_key(
    server: FakeFactPulse, anonymous: requests.Session
) -> None:
    response = anonymous.post(
        server.base_url + "/api/token/",
        json={"username": USERNAME, "password": PASSWORD, "client_uid": "client-42"},
        timeout=5,
    )

    assert response.status_code == 200
    pair = response.json()
    assert set(pair) == {"access", "refresh"}
    assert pair["access"] != pair["refresh"]
    header, claims, signature = pair["access"].split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert decoded["token_type"] == "access"
    assert decoded["client_uid"] == "client-42"
    assert 1790 <= decoded["exp"] - time.time() <= 1810
    bearer = {"Authorization": f"Bearer {pair['access']}"}
    assert get_status(anonymous, server, "task-1", headers=bearer).status_code == 200

    again = anonymous.post(
        server.base_url + "/api/token/", json={"username": USERNAME, "password": PASSWORD},
        timeout=5,
    )
    new_bearer = {"Authorization": f"Bearer {again.json()['access']}"}
    assert get_status(anonymous, server, "task-1", headers=new_bearer).status_code == 200

    server.expire_tokens()
    assert get_status(anonymous, server, "task-1", headers=bearer).status_code == 401
    assert get_status(anonymous, server, "task-1", headers=new_bearer).status_code == 401


def test_access_token_stops_working_after_its_lifetime(anonymous: requests.Session) -> None:
    with FakeFactPulse(username="u", password="p", token_lifetime=0.2) as fake:
        access = anonymous.post(
            fake.base_url + "/api/token/", json={"username": "u", "password": "p"}, timeout=5
        ).json()["access"]
        bearer = {"Authorization": f"Bearer {access}"}
        assert get_status(anonymous, fake, "t", headers=bearer).status_code == 200
        time.sleep(0.3)
        assert get_status(anonymous, fake, "t", headers=bearer).status_code == 401


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"username": USERNAME, "password": "wrong"}, 401),
        ({"username": "someone@example.fr", "password": PASSWORD}, 401),
        ({"username": USERNAME}, 400),
        ({}, 400),
    ],
    ids=["wrong-password", "wrong-user", "no-password", "empty"],
)
def test_token_endpoint_refuses_bad_credentials(
    server: FakeFactPulse, anonymous: requests.Session, body: dict[str, str], status: int
) -> None:
    response = anonymous.post(server.base_url + "/api/token/", json=body, timeout=5)

    assert response.status_code == status
    assert "access" not in response.json()


def test_token_endpoint_is_closed_without_configured_credentials(
    anonymous: requests.Session,
) -> None:
    with FakeFactPulse() as fake:
        response = anonymous.post(
            fake.base_url + "/api/token/", json={"username": "a", "password": "b"}, timeout=5
        )
    assert response.status_code == 401


def test_request_log_never_holds_credentials(
    server: FakeFactPulse, api: requests.Session, anonymous: requests.Session
) -> None:
    pair = anonymous.post(
        server.base_url + "/api/token/",
        json={"username": USERNAME, "password": PASSWORD},
        timeout=5,
    ).json()
    get_status(api, server, "task-1")
    get_status(anonymous, server, "task-1", headers={"Authorization": f"Bearer {pair['access']}"})
    api.post(
        server.base_url + PROCESSING + "/validate-facturx-async",
        files={"pdf_file": ("a.pdf", b"%PDF-1.7", "application/pdf")},
        timeout=5,
    )

    logged = repr(server.requests) + repr(server.submissions)
    for secret in (API_KEY, PASSWORD, pair["access"], pair["refresh"]):
        assert secret not in logged


# -- scripted status answers -----------------------------------------------------------


def test_scripted_answers_are_consumed_in_order_and_the_last_one_repeats(
    server: FakeFactPulse, api: requests.Session
) -> None:
    server.script("task-1", pending(), started(), retry(), status_success(pdf=False))

    states = [get_status(api, server, "task-1").json()["status"] for _ in range(6)]

    assert states == ["PENDING", "STARTED", "RETRY", "SUCCESS", "SUCCESS", "SUCCESS"]
    assert server.status_calls("task-1") == 6


def test_an_unknown_task_id_answers_pending_like_celery(
    server: FakeFactPulse, api: requests.Session
) -> None:
    response = get_status(api, server, "never-heard-of")

    assert response.json() == {"taskId": "never-heard-of", "status": "PENDING", "result": None}


@pytest.mark.parametrize("path", STATUS_PATHS)
def test_every_status_endpoint_serves_the_script_with_the_requested_task_id(
    server: FakeFactPulse, api: requests.Session, path: str
) -> None:
    task_id = "3f2b8c1e-7a4d-4e5f-9b6a-0c1d2e3f4a5b"
    server.script(task_id, retry(), celery_failure())

    first = get_status(api, server, task_id, path)
    second = get_status(api, server, task_id, path)

    assert first.json() == {"taskId": task_id, "status": "RETRY", "result": None}
    assert second.json()["taskId"] == task_id
    assert second.json()["status"] == "FAILURE"


def test_one_answer_serves_many_tasks_with_their_own_ids(
    server: FakeFactPulse, api: requests.Session
) -> None:
    answer = started()
    server.script("task-a", answer)
    server.script("task-b", pending(), answer)

    assert get_status(api, server, "task-a").json()["taskId"] == "task-a"
    assert get_status(api, server, "task-b").json()["status"] == "PENDING"
    assert get_status(api, server, "task-b").json() == {
        "taskId": "task-b",
        "status": "STARTED",
        "result": None,
    }
    assert server.status_calls("task-a") == 1
    assert server.status_calls("task-b") == 2
    assert server.status_calls() == 3


def test_scripting_again_restarts_from_the_first_answer(
    server: FakeFactPulse, api: requests.Session
) -> None:
    server.script("task-1", pending(), started())
    get_status(api, server, "task-1")
    get_status(api, server, "task-1")

    server.script("task-1", retry(), started())

    assert get_status(api, server, "task-1").json()["status"] == "RETRY"


def test_script_needs_answers(server: FakeFactPulse) -> None:
    with pytest.raises(ValueError):
        server.script("task-1")
    with pytest.raises(TypeError):
        server.script("task-1", {"status": "PENDING"})  # type: ignore[arg-type]


def test_concurrent_requests_each_consume_exactly_one_answer(
    server: FakeFactPulse, api: requests.Session
) -> None:
    count = 40
    server.script("task-1", *(raw(b'{"n": %d}' % n) for n in range(count)), raw(b'{"n": -1}'))

    def fetch(_: int) -> int:
        with requests.Session() as session:
            session.headers["X-API-Key"] = API_KEY
            return int(get_status(session, server, "task-1").json()["n"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        seen = sorted(pool.map(fetch, range(count)))

    assert seen == list(range(count))
    assert server.status_calls("task-1") == count


def test_the_request_log_records_what_was_asked_and_answered(
    server: FakeFactPulse, api: requests.Session, anonymous: requests.Session
) -> None:
    server.script("task-1", http_error(503, headers={"Retry-After": "2"}))
    before = time.monotonic()
    get_status(api, server, "task-1", PROCESSING + "/tasks/{}/signature-status")
    get_status(anonymous, server, "task-2")
    anonymous.get(server.base_url + "/api/v1/nowhere", timeout=5)

    records = server.requests

    assert [(r.method, r.path, r.route, r.task_id, r.status) for r in records] == [
        ("GET", PROCESSING + "/tasks/task-1/signature-status", "status", "task-1", 503),
        ("GET", PROCESSING + "/tasks/task-2/status", "status", "task-2", 401),
        ("GET", "/api/v1/nowhere", "unknown", None, 404),
    ]
    assert before <= records[0].at <= records[1].at <= records[2].at <= time.monotonic()


# -- every builder against the reference schemas ----------------------------------------

SCHEMA_CASES: dict[str, tuple[Callable[[], Answer], tuple[str, ...]]] = {
    "pending": (pending, TYPED_STATUS_SCHEMAS),
    "started": (started, TYPED_STATUS_SCHEMAS),
    "retry": (retry, TYPED_STATUS_SCHEMAS),
    "generation-pdf": (
        lambda: generation_success(output="pdf"),
        ("AsyncTaskStatus", "GenerationTaskStatus"),
    ),
    "generation-xml-minimum": (
        lambda: generation_success(output="xml", level="minimum", filename="min.xml"),
        ("AsyncTaskStatus", "GenerationTaskStatus"),
    ),
    "generation-camel-case": (
        lambda: camel_case(generation_success()),
        ("AsyncTaskStatus", "GenerationTaskStatus"),
    ),
    "signature": (signature_success, ("AsyncTaskStatus", "SignatureTaskStatus")),
    "validation-compliant": (validation_success, ("AsyncTaskStatus", "ValidationTaskStatus")),
    "validation-not-compliant": (
        lambda: validation_success(compliant=False, profile="BASIC"),
        ("AsyncTaskStatus", "ValidationTaskStatus"),
    ),
    "conversion-pdf": (conversion_success, ("AsyncTaskStatus", "ConversionTaskStatus")),
    "conversion-xml": (
        lambda: conversion_success(output="xml", profile="BASIC"),
        ("AsyncTaskStatus", "ConversionTaskStatus"),
    ),
    "conversion-pending-input": (
        conversion_pending_input,
        ("AsyncTaskStatus", "ConversionTaskStatus"),
    ),
    "conversion-validation-failed": (
        conversion_validation_failed,
        ("AsyncTaskStatus", "ConversionTaskStatus"),
    ),
    "conversion-error": (conversion_error, ("AsyncTaskStatus", "ConversionTaskStatus")),
    "verification-compliant": (
        verification_success,
        ("AsyncTaskStatus", "VerificationTypedTaskStatus"),
    ),
    "verification-discrepancy": (
        lambda: verification_success(compliant=False),
        ("AsyncTaskStatus", "VerificationTypedTaskStatus"),
    ),
    "status-pdf": (status_success, ("AsyncTaskStatus",)),
    "status-xml": (lambda: status_success(pdf=False), ("AsyncTaskStatus",)),
    "business-error": (
        business_error,
        (
            "AsyncTaskStatus",
            "GenerationTaskStatus",
            "SignatureTaskStatus",
            "ValidationTaskStatus",
            "VerificationTypedTaskStatus",
        ),
    ),
    "celery-failure": (celery_failure, ("AsyncTaskStatus",)),
    "invalid-base64": (invalid_base64_success, ("AsyncTaskStatus", "GenerationTaskStatus")),
    "custom-success": (
        lambda: celery_success({"status": "SUCCESS", "filename": "f.xml", "content_b64": None}),
        ("AsyncTaskStatus", "GenerationTaskStatus"),
    ),
}


@pytest.mark.parametrize("case", list(SCHEMA_CASES))
def test_builder_answers_match_the_reference_schemas(
    server: FakeFactPulse,
    api: requests.Session,
    check: Callable[[str, Any], None],
    facturx: Any,
    case: str,
) -> None:
    build, schema_names = SCHEMA_CASES[case]

    document = served(server, api, build())

    for name in schema_names:
        check(name, document)


def test_error_results_match_the_afnor_schemas(check: Callable[[str, Any], None]) -> None:
    error = business_error()
    failure = celery_failure("Worker lost", code="WORKER_LOST")

    check("TaskErrorResult", error.payload["result"])
    for detail in error.payload["result"]["details"]:
        check("AFNORErrorDetail", detail)
        check("ValidationErrorDetail", detail)
    check("TaskErrorResult", failure.payload["result"])
    assert failure.payload["result"] == {"errorCode": "WORKER_LOST", "errorMessage": "Worker lost"}


def test_an_unscripted_task_matches_every_status_schema(
    server: FakeFactPulse, api: requests.Session, check: Callable[[str, Any], None]
) -> None:
    for path, name in zip(STATUS_PATHS[1:], TYPED_STATUS_SCHEMAS[1:], strict=True):
        check(name, get_status(api, server, "never-heard-of", path).json())
    check("AsyncTaskStatus", get_status(api, server, "never-heard-of").json())


def test_error_bodies_match_the_api_error_schema(
    server: FakeFactPulse,
    api: requests.Session,
    anonymous: requests.Session,
    check: Callable[[str, Any], None],
) -> None:
    statuses = (401, 429, 500, 502, 503, 504)
    server.script("task-1", *(http_error(status) for status in statuses))
    bodies = [get_status(api, server, "task-1").json() for _ in statuses]
    bodies.append(get_status(anonymous, server, "task-1").json())
    bodies.append(api.get(server.base_url + "/api/v1/nowhere", timeout=5).json())
    bodies.append(api.delete(server.base_url + STATUS_PATHS[0].format("t"), timeout=5).json())

    for body in bodies:
        check("APIError", body)


def test_business_error_defaults_to_a_french_invoice_rule(
    server: FakeFactPulse, api: requests.Session
) -> None:
    document = served(server, api, business_error())

    assert document["status"] == "SUCCESS"
    result = document["result"]
    assert (result["status"], result["errorCode"]) == ("ERROR", "VALIDATION_FAILED")
    assert result["details"][0]["item"].startswith("BR-FR-")
    assert "SIRET" in result["details"][0]["reason"]
    assert {detail["level"] for detail in result["details"]} <= {"Error", "Warning"}


def test_business_error_takes_custom_details(check: Callable[[str, Any], None]) -> None:
    details = [{"level": "Error", "item": "BT-1", "reason": "Numéro en double"}]

    answer = business_error("DUPLICATE_INVOICE", "Facture déjà déposée", details)

    result = answer.payload["result"]
    assert (result["errorCode"], result["errorMessage"]) == (
        "DUPLICATE_INVOICE",
        "Facture déjà déposée",
    )
    assert result["details"] == details
    check("TaskErrorResult", result)


def test_schema_check_refuses_what_the_spec_forbids(check: Callable[[str, Any], None]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    signature = signature_success(pdf=b"%PDF-1.7 test").payload
    without_signer = copy.deepcopy(signature)
    del without_signer["result"]["signer_cn"]
    unknown_result_status = copy.deepcopy(signature)
    unknown_result_status["result"]["status"] = "DONE"
    bad_cases = [
        ("AsyncTaskStatus", {"status": "PENDING", "result": None}),
        ("AsyncTaskStatus", {"taskId": "t", "status": "DONE", "result": None}),
        ("SignatureTaskStatus", without_signer),
        ("SignatureTaskStatus", unknown_result_status),
        ("SignatureTaskStatus", camel_case(signature_success(pdf=b"%PDF-1.7")).payload),
        ("TaskErrorResult", {"status": "ERROR", "errorMessage": "no code"}),
        ("APIError", {"errorCode": "X"}),
    ]
    for name, document in bad_cases:
        with pytest.raises(jsonschema.ValidationError):
            check(name, document)


# -- submissions ----------------------------------------------------------------------

SUBMISSIONS = {
    "generation": (
        "/generate-invoice",
        {
            "invoice_data": json.dumps({"invoiceNumber": "FA-2026-0042"}),
            "output_format": "pdf",
            "profile": "EN16931",
            "callback_url": "https://erp.example.fr/hooks/factpulse",
        },
        {"source_pdf": ("source.pdf", b"%PDF-1.7 source")},
        "GenerationTaskStatus",
    ),
    "signature": (
        "/sign-pdf-async",
        {"reason": "Facturation", "callback_url": "https://erp.example.fr/hooks/factpulse"},
        {"pdf_file": ("FA-2026-0042.pdf", b"%PDF-1.7\n\x00\xff\r\n--binary--\n%%EOF\n")},
        "SignatureTaskStatus",
    ),
    "validation": (
        "/validate-facturx-async",
        {"profile": "BASIC", "use_verapdf": "false"},
        {"pdf_file": ("facture.pdf", b"%PDF-1.7 fake")},
        "ValidationTaskStatus",
    ),
}


@pytest.mark.parametrize("kind", list(SUBMISSIONS))
def test_submission_answers_202_and_the_new_task_walks_to_its_success(
    server: FakeFactPulse,
    api: requests.Session,
    check: Callable[[str, Any], None],
    facturx: Any,
    kind: str,
) -> None:
    path, fields, files, schema = SUBMISSIONS[kind]

    response = api.post(server.base_url + PROCESSING + path, data=fields, files=files, timeout=5)

    assert response.status_code == 202
    check("TaskResponse", response.json())
    task_id = response.json()["taskId"]
    (submission,) = server.submissions
    assert (submission.kind, submission.task_id, submission.path) == (
        kind,
        task_id,
        PROCESSING + path,
    )
    assert dict(submission.fields) == fields
    assert {name: upload.content for name, upload in submission.files.items()} == {
        name: content for name, (_, content) in files.items()
    }
    assert submission.callback_url == fields.get("callback_url")
    typed_path = PROCESSING + "/tasks/{}/" + f"{kind}-status"
    documents_seen = [get_status(api, server, task_id, typed_path).json() for _ in range(3)]
    assert [d["status"] for d in documents_seen] == ["PENDING", "STARTED", "SUCCESS"]
    for document in documents_seen:
        assert document["taskId"] == task_id
        check(schema, document)
    assert documents_seen[-1]["result"]["status"] == "SUCCESS"


def get_walked_result(server: FakeFactPulse, api: requests.Session, task_id: str) -> Any:
    for _ in range(5):
        document = get_status(api, server, task_id).json()
        if document["status"] == "SUCCESS":
            return document["result"]
    raise AssertionError("task never reached SUCCESS")


def test_generation_submission_serves_the_requested_invoice_and_format(
    server: FakeFactPulse, api: requests.Session, facturx: Any
) -> None:
    path, fields, _, _ = SUBMISSIONS["generation"]

    # Without a file, requests sends the form urlencoded: the fake takes that too.
    response = api.post(server.base_url + PROCESSING + path, data=fields, timeout=5)
    result = get_walked_result(server, api, response.json()["taskId"])

    pdf = base64.b64decode(result["content_b64"], validate=True)
    _, xml = facturx.get_xml_from_pdf(pdf)
    assert xml == result["xml_content"].encode("utf-8")
    assert b"<ram:ID>FA-2026-0042</ram:ID>" in xml
    assert result["filename"] == "FA-2026-0042.pdf"


def test_signature_submission_returns_the_uploaded_pdf_unchanged(
    server: FakeFactPulse, api: requests.Session
) -> None:
    path, fields, files, _ = SUBMISSIONS["signature"]
    response = api.post(server.base_url + PROCESSING + path, data=fields, files=files, timeout=5)

    result = get_walked_result(server, api, response.json()["taskId"])

    uploaded = files["pdf_file"][1]
    assert base64.b64decode(result["content_b64"]) == uploaded
    assert result["size_bytes"] == len(uploaded)
    assert result["filename"] == "FA-2026-0042_signed.pdf"


def test_script_submissions_replaces_the_default_script(
    server: FakeFactPulse, api: requests.Session
) -> None:
    server.script_submissions("validation", started(), business_error())
    path, fields, files, _ = SUBMISSIONS["validation"]

    task_id = api.post(
        server.base_url + PROCESSING + path, data=fields, files=files, timeout=5
    ).json()["taskId"]

    states = [get_status(api, server, task_id).json() for _ in range(3)]
    assert [s["status"] for s in states] == ["STARTED", "SUCCESS", "SUCCESS"]
    assert states[-1]["result"]["status"] == "ERROR"
    with pytest.raises(ValueError):
        server.script_submissions("conversion", started())


@pytest.mark.parametrize(
    ("path", "data", "files", "missing"),
    [
        ("/generate-invoice", {"output_format": "pdf"}, None, "invoice_data"),
        ("/sign-pdf-async", {"reason": "x"}, None, "pdf_file"),
        ("/validate-facturx-async", {}, {"other": ("a.pdf", b"%PDF")}, "pdf_file"),
    ],
)
def test_submission_missing_a_required_field_is_422(
    server: FakeFactPulse,
    api: requests.Session,
    path: str,
    data: dict[str, str],
    files: dict[str, Any] | None,
    missing: str,
) -> None:
    response = api.post(server.base_url + PROCESSING + path, data=data, files=files, timeout=5)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", missing]
    assert server.submissions == []


def test_a_body_that_is_not_a_form_is_422(server: FakeFactPulse, api: requests.Session) -> None:
    url = server.base_url + PROCESSING + "/sign-pdf-async"
    broken = {"Content-Type": "multipart/form-data; boundary=xyz"}

    responses = [
        api.post(url, json={"pdf_file": "JVBERi0="}, timeout=5),
        api.post(url, data=b"--xyz\r\nno headers here", headers=broken, timeout=5),
    ]

    assert [response.status_code for response in responses] == [422, 422]
    assert server.submissions == []


# -- documents --------------------------------------------------------------------------


@pytest.mark.parametrize("level", documents.LEVELS)
def test_cii_xml_passes_the_factur_x_xsd(facturx: Any, level: str) -> None:
    xml = documents.make_cii_xml("FA-2026-0007", level=level)

    assert facturx.xml_check_xsd(xml, flavor="factur-x", level=level) is True
    assert b"<ram:ID>FA-2026-0007</ram:ID>" in xml


@pytest.mark.parametrize("level", ["minimum", "en16931"])
def test_facturx_pdf_embeds_its_xml(facturx: Any, level: str) -> None:
    pdf = documents.make_facturx_pdf("FA-2026-0007", level=level)

    filename, xml = facturx.get_xml_from_pdf(pdf)

    assert pdf.startswith(b"%PDF-")
    assert filename == "factur-x.xml"
    assert xml == documents.make_cii_xml("FA-2026-0007", level=level)
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level=level) is True


def test_invoice_numbers_are_escaped_in_the_xml(facturx: Any) -> None:
    xml = documents.make_cii_xml("FA<&>1", level="minimum")

    assert b"<ram:ID>FA&lt;&amp;&gt;1</ram:ID>" in xml


def test_documents_are_built_once_per_arguments(facturx: Any) -> None:
    assert documents.make_facturx_pdf("FA-CACHE") is documents.make_facturx_pdf("FA-CACHE")
    assert documents.make_cii_xml("FA-CACHE") is not documents.make_cii_xml(
        "FA-CACHE", level="extended"
    )


def test_an_unknown_level_is_refused(facturx: Any) -> None:
    with pytest.raises(ValueError, match="unknown Factur-X level"):
        documents.make_cii_xml(level="comfort")


def test_a_missing_factur_x_package_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "facturx", None)

    with pytest.raises(ImportError) as raised:
        documents.make_cii_xml("FA-WITHOUT-EXTRA")

    assert str(raised.value) == (
        "factpulse_tasks.testing needs the factur-x package: "
        "pip install 'factpulse-tasks[testing]'"
    )


def test_importing_the_package_loads_neither_factur_x_nor_django() -> None:
    code = (
        "import sys, factpulse_tasks.testing as t; "
        "t.pending(); t.reset(); t.http_error(500); "
        "print(sorted(m for m in ('facturx', 'django', 'pypdf') if m in sys.modules))"
    )
    package_root = Path(documents.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    env.pop("DJANGO_SETTINGS_MODULE", None)

    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout

    assert output.strip() == "[]"


# -- files served -----------------------------------------------------------------------


def test_generation_pdf_serves_a_real_factur_x_pdf_and_its_exact_bytes(
    server: FakeFactPulse, api: requests.Session, facturx: Any
) -> None:
    answer = generation_success(output="pdf", invoice_number="FA-2026-0100")

    result = served(server, api, answer)["result"]

    pdf = base64.b64decode(result["content_b64"], validate=True)
    xml = result["xml_content"].encode("utf-8")
    assert hashlib.sha256(pdf).hexdigest() == answer.sha256["document"]
    assert xml == answer.files["xml"]
    assert hashlib.sha256(xml).hexdigest() == answer.sha256["xml"]
    _, embedded = facturx.get_xml_from_pdf(pdf)
    assert embedded == xml
    assert facturx.xml_check_xsd(embedded, flavor="factur-x", level="en16931") is True
    assert result["filename"] == "FA-2026-0100.pdf"


def test_generation_xml_serves_the_cii_xml_as_the_document(
    server: FakeFactPulse, api: requests.Session, facturx: Any
) -> None:
    answer = generation_success(output="xml", invoice_number="FA-2026-0101")

    result = served(server, api, answer)["result"]

    document = base64.b64decode(result["content_b64"], validate=True)
    assert document == answer.files["document"] == answer.files["xml"]
    assert document == result["xml_content"].encode("utf-8")
    assert facturx.xml_check_xsd(document, flavor="factur-x", level="en16931") is True
    assert result["filename"] == "FA-2026-0101.xml"
    with pytest.raises(ValueError):
        generation_success(output="docx")


def test_signature_success_describes_the_pdf_it_carries(
    server: FakeFactPulse, api: requests.Session, facturx: Any
) -> None:
    answer = signature_success()

    result = served(server, api, answer)["result"]

    pdf = base64.b64decode(result["content_b64"], validate=True)
    assert pdf == answer.files["document"]
    assert result["size_bytes"] == len(pdf)
    assert (result["is_signed"], result["signature_count"]) == (True, 1)
    assert facturx.get_xml_from_pdf(pdf)[1]


@pytest.mark.parametrize("pdf", [True, False], ids=["pdf", "xml"])
def test_status_success_serves_a_document(
    server: FakeFactPulse, api: requests.Session, facturx: Any, pdf: bool
) -> None:
    answer = status_success(pdf=pdf)

    result = served(server, api, answer)["result"]

    assert set(result) == {"status", "content_b64", "filename"}
    document = base64.b64decode(result["content_b64"], validate=True)
    assert document == answer.files["document"]
    assert document.startswith(b"%PDF-" if pdf else b"<?xml")


def test_validation_success_reports_compliance_or_its_errors() -> None:
    compliant = validation_success().payload["result"]["validation_result"]
    refused = validation_success(compliant=False).payload["result"]["validation_result"]

    assert compliant["isCompliant"] is True
    assert compliant["xmlErrors"] == compliant["pdfaErrors"] == []
    assert refused["isCompliant"] is False
    assert refused["xmlErrors"] and refused["pdfaErrors"]
    assert validation_success().files == {}


# -- camelCase --------------------------------------------------------------------------


def test_camel_case_respells_the_result_keys_and_keeps_the_files(facturx: Any) -> None:
    generation = generation_success()
    signature = signature_success()

    camel_generation = camel_case(generation).payload
    camel_signature = camel_case(signature).payload["result"]
    camel_validation = camel_case(validation_success()).payload["result"]

    assert set(camel_generation) == {"taskId", "status", "result"}
    assert set(camel_generation["result"]) == {"status", "contentB64", "xmlContent", "filename"}
    assert camel_generation["result"]["contentB64"] == generation.payload["result"]["content_b64"]
    assert set(camel_signature) == {
        "status",
        "contentB64",
        "filename",
        "sizeBytes",
        "isSigned",
        "signatureCount",
        "signerCn",
        "signingDate",
        "validationDetails",
    }
    assert camel_signature["validationDetails"] == signature.payload["result"]["validation_details"]
    assert set(camel_validation) == {"status", "validationResult"}
    assert camel_case(generation).files == generation.files
    assert camel_case(business_error()).payload == business_error().payload
    assert camel_case(pending()) == pending()
    plain = raw(b"<html/>", content_type="text/html")
    assert camel_case(plain) is plain


# -- malformed, slow and broken answers ----------------------------------------------------

RAW_BODIES = {
    "html": (b"<html><body>Maintenance en cours</body></html>", "text/html; charset=utf-8"),
    "truncated-json": (b'{"taskId": "x", "status": "SUCC', "application/json"),
    "json-list": (b'["SUCCESS"]', "application/json"),
    "empty": (b"", "application/json"),
}


@pytest.mark.parametrize("case", list(RAW_BODIES))
def test_raw_answers_are_served_byte_for_byte(
    server: FakeFactPulse, api: requests.Session, case: str
) -> None:
    body, content_type = RAW_BODIES[case]
    server.script("task-1", raw(body, content_type=content_type))

    response = get_status(api, server, "task-1")

    assert response.status_code == 200
    assert response.content == body
    assert response.headers["Content-Type"] == content_type


def test_invalid_base64_success_cannot_be_decoded(
    server: FakeFactPulse, api: requests.Session
) -> None:
    content = served(server, api, invalid_base64_success())["result"]["content_b64"]

    with pytest.raises(binascii.Error):
        base64.b64decode(content, validate=True)
    with pytest.raises(binascii.Error):
        base64.b64decode(content)


@pytest.mark.parametrize(
    ("status", "headers"),
    [(500, {}), (502, {}), (503, {"Retry-After": "2"}), (429, {"Retry-After": "30"}), (401, {})],
)
def test_http_errors_carry_their_status_headers_and_an_api_error_body(
    server: FakeFactPulse, api: requests.Session, status: int, headers: dict[str, str]
) -> None:
    server.script("task-1", http_error(status, headers=headers), started())

    response = get_status(api, server, "task-1")

    assert response.status_code == status
    for name, value in headers.items():
        assert response.headers[name] == value
    assert set(response.json()) == {"errorCode", "errorMessage"}
    assert get_status(api, server, "task-1").json()["status"] == "STARTED"


def test_http_error_with_a_custom_body(server: FakeFactPulse, api: requests.Session) -> None:
    server.script("task-1", http_error(502, b"<h1>Bad Gateway</h1>", "text/html"))

    response = get_status(api, server, "task-1")

    assert (response.status_code, response.content) == (502, b"<h1>Bad Gateway</h1>")
    assert response.headers["Content-Type"] == "text/html"


def test_reset_closes_the_connection_without_an_answer(
    server: FakeFactPulse, api: requests.Session
) -> None:
    server.script("task-1", reset(), started())

    with pytest.raises(requests.ConnectionError):
        get_status(api, server, "task-1")

    assert server.requests[-1].status is None
    assert get_status(api, server, "task-1").json()["status"] == "STARTED"


def test_hang_makes_a_short_client_timeout_fire(
    server: FakeFactPulse, api: requests.Session
) -> None:
    server.script("task-1", hang(5), started())
    began = time.monotonic()

    with pytest.raises(requests.Timeout):
        get_status(api, server, "task-1", timeout=0.2)

    assert time.monotonic() - began < 1
    assert server.status_calls("task-1") == 1


def test_hang_answers_after_its_delay(server: FakeFactPulse, api: requests.Session) -> None:
    server.script("task-1", hang(0.2, then=started()))
    began = time.monotonic()

    response = get_status(api, server, "task-1")

    assert time.monotonic() - began >= 0.2
    assert response.json()["status"] == "STARTED"


def test_latency_is_added_to_every_answer(anonymous: requests.Session) -> None:
    with FakeFactPulse(api_key=API_KEY, latency=0.15) as fake:
        began = time.monotonic()
        get_status(anonymous, fake, "task-1", headers={"X-API-Key": API_KEY})
        anonymous.get(fake.base_url + "/nowhere", timeout=5)
        assert time.monotonic() - began >= 0.3


# -- routing and life cycle ----------------------------------------------------------------


def test_an_unknown_path_is_a_json_404(server: FakeFactPulse, api: requests.Session) -> None:
    response = api.get(server.base_url + "/api/v1/processing/tasks/t/unknown-status", timeout=5)

    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["errorCode"] == "NOT_FOUND"


def test_a_wrong_method_is_a_json_405(server: FakeFactPulse, api: requests.Session) -> None:
    response = api.post(server.base_url + PROCESSING + "/tasks/t/status", timeout=5)

    assert response.status_code == 405
    assert response.json()["errorCode"] == "METHOD_NOT_ALLOWED"


def test_the_server_listens_on_loopback_only_and_only_while_running() -> None:
    fake = FakeFactPulse()
    with pytest.raises(RuntimeError):
        _ = fake.base_url

    fake.start()
    try:
        assert fake.base_url.startswith("http://127.0.0.1:")
        assert fake._httpd is not None and fake._httpd.server_address[0] == "127.0.0.1"
        with pytest.raises(RuntimeError):
            fake.start()
    finally:
        fake.stop()
    fake.stop()  # idempotent


def test_stop_is_quick_even_with_a_hanging_request_and_kept_alive_connections(
    api: requests.Session,
) -> None:
    fake = FakeFactPulse(api_key=API_KEY).start()
    base_url = fake.base_url
    get_status(api, fake, "task-1")  # leaves a kept-alive connection in the session pool
    fake.script("task-2", hang(30))
    outcome: list[BaseException] = []

    def wait_for_hang() -> None:
        with requests.Session() as session:
            try:
                session.get(
                    base_url + STATUS_PATHS[0].format("task-2"),
                    headers={"X-API-Key": API_KEY},
                    timeout=10,
                )
            except requests.RequestException as exc:
                outcome.append(exc)

    waiter = threading.Thread(target=wait_for_hang)
    waiter.start()
    while fake.status_calls("task-2") == 0:
        time.sleep(0.01)
    began = time.monotonic()

    fake.stop()

    assert time.monotonic() - began < 1
    waiter.join(timeout=5)
    assert len(outcome) == 1 and isinstance(outcome[0], requests.ConnectionError)
    with pytest.raises(requests.ConnectionError):
        api.get(base_url + STATUS_PATHS[0].format("task-1"), timeout=2)
