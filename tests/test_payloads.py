"""Parsing of status answers: pure code, no database, no network."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from factpulse_tasks.exceptions import PayloadError
from factpulse_tasks.payloads import (
    MALFORMED,
    Failure,
    Success,
    Waiting,
    canonical,
    decode_json,
    parse_status,
)
from factpulse_tasks.results import (
    parse_generation,
    parse_signature,
    parse_untyped,
    parse_validation,
    sniff_content_type,
)

PDF = b"%PDF-1.7\n%fake but recognisable\n"
PDF_B64 = base64.b64encode(PDF).decode()


def envelope(status: str, result: object = None) -> dict[str, object]:
    return {"taskId": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "status": status, "result": result}


@pytest.mark.parametrize("state", ["PENDING", "STARTED", "RETRY"])
def test_unfinished_celery_states_wait(state: str) -> None:
    update = parse_status(envelope(state), parse_generation)
    assert update == Waiting(state)
    assert update.running is (state != "PENDING")


def test_unknown_celery_state_keeps_waiting_and_is_recorded() -> None:
    assert parse_status(envelope("RECEIVED"), parse_generation) == Waiting("RECEIVED")


def test_generation_success_decodes_document_and_xml() -> None:
    update = parse_status(
        envelope("SUCCESS", {"status": "SUCCESS", "content_b64": PDF_B64,
                             "xml_content": "<rsm:CrossIndustryInvoice/>", "filename": "FA-1.pdf"}),
        parse_generation,
    )
    assert isinstance(update, Success)
    assert [(f.role, f.filename, f.content, f.content_type) for f in update.files] == [
        ("document", "FA-1.pdf", PDF, "application/pdf"),
        ("xml", "FA-1.xml", b"<rsm:CrossIndustryInvoice/>", "application/xml"),
    ]
    assert update.result == {"status": "SUCCESS", "filename": "FA-1.pdf"}


def test_camel_case_spelling_is_read_and_stored_in_reference_spelling() -> None:
    update = parse_status(
        {"taskId": "x", "status": "SUCCESS",
         "result": {"status": "SUCCESS", "contentB64": PDF_B64, "xmlContent": None,
                    "fileName": "a.pdf"}},
        parse_generation,
    )
    assert isinstance(update, Success)
    assert update.files[0].content == PDF
    assert update.result == {"status": "SUCCESS", "filename": "a.pdf"}


def test_both_spellings_present_the_reference_one_wins() -> None:
    assert canonical({"contentB64": "b", "content_b64": "a"}, ["content_b64"]) == {
        "content_b64": "a"
    }


def test_business_error_inside_celery_success_fails_the_task() -> None:
    details = [{"level": "Error", "item": "BR-FR-01", "reason": "SIRET manquant",
                "source": "schematron", "code": "SCHEMATRON_BR_FR_01"}]
    update = parse_status(
        envelope("SUCCESS", {"status": "ERROR", "errorCode": "VALIDATION_FAILED",
                             "errorMessage": "Factur-X invalide", "details": details,
                             "traceback": "Traceback (most recent call last): ..."}),
        parse_generation,
    )
    assert isinstance(update, Failure)
    assert (update.remote_status, update.code, update.message) == (
        "SUCCESS", "VALIDATION_FAILED", "Factur-X invalide")
    assert update.details == details
    # Code, message and details live in their own fields; the rest stays in the result.
    assert update.result == {"status": "ERROR",
                             "traceback": "Traceback (most recent call last): ..."}


def test_business_error_details_in_snake_case_and_odd_entries_are_kept() -> None:
    update = parse_status(
        envelope("SUCCESS", {"status": "ERROR", "error_code": "X", "error_message": "m",
                             "details": [{"Level": "Warning", "item": "i", "reason": "r"},
                                         "plain text detail"]}),
        parse_signature,
    )
    assert isinstance(update, Failure)
    assert update.code == "X"
    assert update.details == [
        {"level": "Warning", "item": "i", "reason": "r", "source": None, "code": None},
        {"level": None, "item": None, "reason": "plain text detail", "source": None,
         "code": None},
    ]


def test_celery_failure_fails_with_its_message() -> None:
    update = parse_status(
        envelope("FAILURE", {"errorCode": "TASK_FAILED", "errorMessage": "Worker lost"}),
        parse_generation,
    )
    assert update == Failure("FAILURE", "TASK_FAILED", "Worker lost", [], {})


@pytest.mark.parametrize("result", [None, "boom", {}])
def test_celery_failure_without_details_still_says_why(result: object) -> None:
    update = parse_status(envelope("FAILURE", result), parse_generation)
    assert isinstance(update, Failure)
    assert update.code == "TASK_FAILURE"
    assert update.message


def test_non_compliant_validation_is_a_success_with_the_verdict() -> None:
    verdict = {"isCompliant": False, "isSigned": False, "pdfaCompliant": False,
               "xmlCompliant": False, "xmlPresent": True, "xmpFacturxCompliant": True,
               "xmpPresent": True, "summaryMessage": "2 erreurs", "xmlErrors": ["BR-FR-01"]}
    update = parse_status(
        envelope("SUCCESS", {"status": "SUCCESS", "validation_result": verdict}),
        parse_validation,
    )
    assert isinstance(update, Success)
    assert update.files == ()
    assert update.result["validation_result"]["isCompliant"] is False
    assert update.result["validation_result"]["xmlErrors"] == ["BR-FR-01"]


def test_validation_verdict_in_snake_case_is_respelled() -> None:
    verdict = {"is_compliant": True, "is_signed": False, "pdfa_compliant": True,
               "xml_compliant": True, "xml_present": True, "xmp_facturx_compliant": True,
               "xmp_present": True, "summary_message": "ok"}
    update = parse_validation({"validationResult": verdict})
    assert update.result["validation_result"]["isCompliant"] is True
    assert update.result["validation_result"]["summaryMessage"] == "ok"


def test_signature_success_needs_every_required_field() -> None:
    result = {"status": "SUCCESS", "content_b64": PDF_B64, "filename": "s.pdf",
              "size_bytes": len(PDF), "is_signed": True, "signature_count": 1,
              "signer_cn": "ACME", "signing_date": "2026-01-01T00:00:00Z",
              "validation_details": {}}
    update = parse_signature(dict(result))
    assert update.files[0].content == PDF
    assert "content_b64" not in update.result
    del result["signer_cn"]
    with pytest.raises(PayloadError, match="signer_cn") as info:
        parse_signature(result)
    assert info.value.code == "INVALID_RESULT" and info.value.final


@pytest.mark.parametrize(
    ("result", "fragment"),
    [
        ({"status": "SUCCESS", "content_b64": "not*base64!", "filename": "a.pdf"}, "base64"),
        ({"status": "SUCCESS", "content_b64": PDF_B64}, "filename"),
        ({"status": "SUCCESS", "content_b64": 12, "filename": "a.pdf"}, "content_b64"),
        ({"status": "SUCCESS", "content_b64": PDF_B64, "filename": ["a"]}, "filename"),
        ({"status": "MAYBE", "filename": "a.pdf"}, "MAYBE"),
    ],
)
def test_result_that_breaks_its_schema_is_a_final_invalid_result(
    result: dict[str, object], fragment: str
) -> None:
    with pytest.raises(PayloadError, match=fragment) as info:
        parse_status(envelope("SUCCESS", result), parse_generation)
    assert (info.value.code, info.value.final) == ("INVALID_RESULT", True)


def test_success_without_result_object_is_invalid() -> None:
    with pytest.raises(PayloadError) as info:
        parse_status(envelope("SUCCESS", ["not", "an", "object"]), parse_generation)
    assert info.value.final


def test_validation_without_verdict_is_invalid() -> None:
    with pytest.raises(PayloadError, match="validation_result"):
        parse_validation({"status": "SUCCESS"})


def test_validation_verdict_with_wrong_types_is_invalid() -> None:
    with pytest.raises(PayloadError, match="isCompliant"):
        parse_validation({"validation_result": {"isCompliant": "yes"}})


@pytest.mark.parametrize(
    "raw", [b"<html>502 Bad Gateway</html>", b'{"status": "PEND', b"[1, 2]", b"\xff\xfe", b""]
)
def test_body_that_is_not_a_json_object_is_malformed_and_not_final(raw: bytes) -> None:
    with pytest.raises(PayloadError) as info:
        decode_json(raw)
    assert (info.value.code, info.value.final) == ("MALFORMED_RESPONSE", False)


@pytest.mark.parametrize("body", [{}, {"status": None}, {"status": 3}, {"taskId": "x"}])
def test_answer_without_status_is_malformed(body: dict[str, object]) -> None:
    with pytest.raises(PayloadError) as info:
        parse_status(body, parse_generation)
    assert info.value.code == "MALFORMED_RESPONSE"


def test_untyped_status_result_with_and_without_file() -> None:
    with_file = parse_untyped({"status": "SUCCESS", "content_b64": PDF_B64, "filename": "x.pdf",
                               "extra": {"kept": True}})
    assert with_file.files[0].content == PDF
    assert with_file.result == {"status": "SUCCESS", "filename": "x.pdf", "extra": {"kept": True}}
    assert parse_untyped({"anything": 1}).files == ()


def test_base64_with_line_breaks_is_accepted() -> None:
    wrapped = "\n".join(PDF_B64[i:i + 8] for i in range(0, len(PDF_B64), 8))
    update = parse_generation({"content_b64": wrapped, "filename": "a.pdf"})
    assert update.files[0].content == PDF


@pytest.mark.parametrize(
    ("content", "expected"),
    [(PDF, "application/pdf"), (b"\xef\xbb\xbf<?xml version='1.0'?>", "application/xml"),
     (b"PK\x03\x04", "application/octet-stream")],
)
def test_content_type_is_sniffed_from_the_bytes(content: bytes, expected: str) -> None:
    assert sniff_content_type(content) == expected


def test_parsing_runs_without_django_settings() -> None:
    """payloads and results import no Django machinery: they run with no settings at all."""
    root = Path(__file__).resolve().parent.parent
    code = (
        "import json, sys\n"
        "from factpulse_tasks.payloads import parse_status\n"
        "from factpulse_tasks.results import parse_generation\n"
        "print(parse_status(json.loads(sys.argv[1]), parse_generation))\n"
        "print(sorted(m for m in sys.modules if m.startswith('django.') and "
        "m.split('.')[1] not in ('core', 'utils')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(envelope("STARTED"))],
        cwd=root, env=env, capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    assert out == ["Waiting(remote_status='STARTED')", "[]"]


@pytest.mark.parametrize(
    "raw",
    [b'{"status": "SUCCESS", "result": {"x": NaN}}', b'{"status": "PENDING", "n": Infinity}',
     b'{"status": "PENDING", "n": 1e400}',
     b'{"status": "PENDING", "n": ' + b"9" * 5000 + b"}"],
    ids=["nan", "infinity", "overflow", "huge-integer"],
)
def test_json_that_no_database_can_store_is_malformed(raw: bytes) -> None:
    with pytest.raises(PayloadError) as info:
        decode_json(raw)
    assert info.value.code == "MALFORMED_RESPONSE"


def test_nul_characters_and_lone_surrogates_are_replaced_not_dropped() -> None:
    body = decode_json(
        b'{"status": "SUCCESS", "result": {"status": "ERROR", "errorCode": "E\\u0000",'
        b' "errorMessage": "bad \\ud800 text", "details": [{"item": "\\udfff", "level": "x",'
        b' "reason": "ok \\u00e9"}]}}'
    )
    update = parse_status(body, parse_generation)
    assert isinstance(update, Failure)
    assert (update.code, update.message) == ("E\ufffd", "bad \ufffd text")
    assert update.details[0]["item"] == "\ufffd"
    assert update.details[0]["reason"] == "ok é"


def test_business_status_is_read_whatever_its_case() -> None:
    update = parse_status(envelope("success", {"status": "error", "errorCode": "E",
                                               "errorMessage": "m"}), parse_generation)
    assert isinstance(update, Failure) and update.code == "E"


@pytest.mark.parametrize(
    "raw",
    [b'{"a": ' + b"[" * 70 + b"]" * 70 + b"}", b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
     b'{"a": [' + b'"x",' * 2_000_000 + b'"x"]}'],
    ids=["65-levels", "50000-levels", "two-million-strings"],
)
def test_answer_shaped_like_no_result_is_too_complex_and_final(raw: bytes) -> None:
    with pytest.raises(PayloadError) as info:
        decode_json(raw)
    assert (info.value.code, info.value.final) == ("RESPONSE_TOO_COMPLEX", True)


def test_commas_and_brackets_inside_strings_do_not_count() -> None:
    # 2.4 million commas and brackets: over MAX_TOKENS if they were counted.
    prose = "Remise de 2,5 %, escompte [BR-FR-05], note {PMT}, " * 400_000
    body = json.dumps({"status": "SUCCESS", "result": {"status": "SUCCESS", "filename": "a.xml",
                                                      "xml_content": f"<n>{prose}</n>"}})
    update = parse_status(decode_json(body.encode()), parse_generation)
    assert isinstance(update, Success) and update.files[0].content.count(b",") == 1_600_000


def test_afnor_details_are_capped_and_keep_their_extra_keys() -> None:
    details = [{"level": "Error", "item": f"BR-{n}", "reason": "r", "rule": "x"}
               for n in range(1_500)]
    update = parse_status(envelope("SUCCESS", {"status": "ERROR", "errorCode": "E",
                                               "errorMessage": "m" * 20_000,
                                               "details": details}), parse_generation)
    assert isinstance(update, Failure)
    assert len(update.details) == 1_001
    assert update.details[0] == {"level": "Error", "item": "BR-0", "reason": "r",
                                 "source": None, "code": None, "rule": "x"}
    assert update.details[-1]["reason"] == "500 more details not kept."
    assert len(update.message) < 10_100 and update.message.endswith("(10000 characters cut)")


def test_untyped_result_keeps_xml_content_as_an_xml_file() -> None:
    update = parse_untyped({"status": "SUCCESS", "xml_content": "<x/>", "filename": "x.xml"})
    assert [(f.role, f.filename, f.content) for f in update.files] == [("xml", "x.xml", b"<x/>")]


def test_long_traceback_is_cut_with_a_note() -> None:
    update = parse_status(envelope("SUCCESS", {"status": "ERROR", "errorCode": "E",
                                               "errorMessage": "m",
                                               "traceback": "t" * 50_000}), parse_generation)
    assert isinstance(update, Failure) and update.result is not None
    assert update.result["traceback"].endswith("(40000 characters cut)")


@pytest.mark.parametrize("body", [
    '"\\' * 500_000,  # a string that never closes, full of escapes
    '"\\"' * 300_000 + "\\",
    '"a\\\n' * 200_000,
])
def test_an_unclosed_string_is_scanned_once_not_once_per_quote(body: str) -> None:
    # Scanned from every quote, these took minutes; scanned once, milliseconds.
    with pytest.raises(PayloadError) as caught:
        decode_json(body.encode())
    assert caught.value.code == MALFORMED and not caught.value.final
