"""Readers of the business result of each kind of task, and of the files it carries.

Pure code like :mod:`factpulse_tasks.payloads`: a result object goes in, a
:class:`~factpulse_tasks.payloads.Success` comes out, or
:class:`~factpulse_tasks.exceptions.PayloadError` is raised with the code
``INVALID_RESULT`` when the result does not match its schema.
"""

from __future__ import annotations

import base64
import binascii
import sys
from collections.abc import Mapping
from typing import Any

from .exceptions import PayloadError
from .payloads import (
    INVALID_RESULT,
    BusinessParser,
    Failure,
    File,
    NeedsInput,
    Success,
    canonical,
    error_details,
)

GENERATION_FIELDS = ("status", "content_b64", "xml_content", "filename")
SIGNATURE_FIELDS = (
    "status", "content_b64", "filename", "size_bytes", "is_signed", "signature_count",
    "signer_cn", "signing_date", "validation_details",
)
VALIDATION_FIELDS = ("status", "validation_result")
VALIDATION_RESULT_FIELDS = (
    "isCompliant", "xmlPresent", "xmlCompliant", "detectedProfile", "xmlErrors",
    "pdfaCompliant", "pdfaVersion", "pdfaValidationMethod", "validatedRules", "failedRules",
    "pdfaErrors", "pdfaWarnings", "xmpPresent", "xmpFacturxCompliant", "xmpProfile",
    "xmpVersion", "xmpErrors", "xmpMetadata", "isSigned", "signatureCount", "signatures",
    "signatureErrors", "summaryMessage",
)
SIGNATURE_INFO_FIELDS = ("fieldName", "signer", "signingDate", "reason", "location", "isValid")
CONVERSION_FIELDS = (
    "status", "conversion_id", "document_type_code", "profile", "extraction",
    "processing_time_ms", "pdf_regenerated", "pdf_regenerated_reason", "content_b64",
    "xml_content",
)
CONVERSION_EXTRACTION_FIELDS = ("confidence_score", "ocr_provider")
CONVERSION_INPUT_FIELDS = (
    "status", "conversion_id", "message", "missing_fields", "extracted_data",
    "confidence_score", "processing_time_ms",
)
CONVERSION_REJECTED_FIELDS = (
    "status", "conversion_id", "message", "extracted_data", "extraction", "validation_errors",
    "profile", "processing_time_ms", "correction_attempted",
)
VERIFICATION_FIELDS = ("status", "verification_result")
VERIFICATION_RESULT_FIELDS = (
    "isCompliant", "complianceScore", "verifiedFieldsCount", "compliantFieldsCount",
    "isFacturx", "facturxProfile", "fields", "mandatoryNotes", "pageDimensions", "warnings",
)
UNTYPED_FIELDS = ("status", "content_b64", "xml_content", "filename", "errorCode", "errorMessage")


def _invalid(message: str) -> PayloadError:
    return PayloadError(message, code=INVALID_RESULT, final=True)


def _check(result: Mapping[str, Any], name: str, kind: type | tuple[type, ...], *,
           required: bool = True, nullable: bool = False) -> Any:
    if name not in result:
        if required:
            raise _invalid(f"The result has no '{name}' field.")
        return None
    value = result[name]
    if value is None and (nullable or not required):
        # An optional field sent as null reads as absent, as the official SDK reads it.
        return None
    # bool is an int in Python; the schema keeps them apart.
    wrong_bool = isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple)
                                                          else (kind,))
    if not isinstance(value, kind) or wrong_bool:
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise _invalid(
            f"The result field '{name}' should be {expected}, not {type(value).__name__}."
        )
    return value


_NO_WHITESPACE = dict.fromkeys(map(ord, " \t\r\n\f\v"))


def decode_base64(value: str, name: str) -> bytes:
    """Decode strict base64 (line breaks allowed); raise :class:`PayloadError` otherwise."""
    if sys.version_info >= (3, 11):
        try:
            # Reads the text in place: no copy of a 67 MB field before decoding it.
            return binascii.a2b_base64(value, strict_mode=True)
        except (binascii.Error, ValueError):
            pass  # line breaks, or not base64 at all: the slower path tells
    compact = value.translate(_NO_WHITESPACE)
    try:
        return base64.b64decode(compact.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise _invalid(f"The result field '{name}' is not valid base64.") from exc


def sniff_content_type(content: bytes) -> str:
    """Guess the media type of a FactPulse file from its first bytes."""
    head = content[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"<"):
        return "application/xml"
    return "application/octet-stream"


def _without(result: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in names}


def _document(result: Mapping[str, Any], filename: str) -> File | None:
    encoded = result.get("content_b64")
    if encoded is None:
        return None
    content = decode_base64(encoded, "content_b64")
    return File("document", filename, content, sniff_content_type(content))


def _xml(result: Mapping[str, Any], filename: str) -> File | None:
    text = result.get("xml_content")
    if text is None:
        return None
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    content = text.encode("utf-8", "replace")  # a lone surrogate cannot be encoded
    return File("xml", f"{stem or 'invoice'}.xml", content, "application/xml")


def parse_generation(raw: dict[str, Any]) -> Success:
    """``GenerationSuccessResult``: ``content_b64`` (PDF or XML) and ``xml_content``."""
    result = canonical(raw, GENERATION_FIELDS)
    filename = _check(result, "filename", str)
    _check(result, "content_b64", str, required=False, nullable=True)
    _check(result, "xml_content", str, required=False, nullable=True)
    files = tuple(f for f in (_document(result, filename), _xml(result, filename)) if f)
    return Success("SUCCESS", _without(result, "content_b64", "xml_content"), files)


def parse_signature(raw: dict[str, Any]) -> Success:
    """``SignatureSuccessResult``: the signed PDF in ``content_b64`` and signer details."""
    result = canonical(raw, SIGNATURE_FIELDS)
    _check(result, "content_b64", str)
    filename = _check(result, "filename", str)
    _check(result, "size_bytes", int)
    _check(result, "is_signed", bool)
    _check(result, "signature_count", int)
    _check(result, "signer_cn", str)
    _check(result, "signing_date", str)
    _check(result, "validation_details", dict)
    document = _document(result, filename)
    assert document is not None
    return Success("SUCCESS", _without(result, "content_b64"), (document,))


def parse_validation(raw: dict[str, Any]) -> Success:
    """``ValidationSuccessTaskResult``: the verdict is the product, there is no file.

    A PDF found non-compliant is still a successful validation: the verdict
    (``isCompliant`` and the error lists) is in the result.
    """
    result = canonical(raw, VALIDATION_FIELDS)
    verdict = canonical(_check(result, "validation_result", dict), VALIDATION_RESULT_FIELDS)
    for name in ("isCompliant", "isSigned", "pdfaCompliant", "xmlCompliant", "xmlPresent",
                 "xmpFacturxCompliant", "xmpPresent"):
        _check(verdict, name, bool)
    _check(verdict, "summaryMessage", str)
    for name in ("xmlErrors", "pdfaErrors", "pdfaWarnings", "xmpErrors", "signatureErrors"):
        _check(verdict, name, list, required=False)
    signatures = _check(verdict, "signatures", list, required=False)
    if signatures is not None:
        verdict["signatures"] = [
            canonical(s, SIGNATURE_INFO_FIELDS) if isinstance(s, dict) else s for s in signatures
        ]
    return Success("SUCCESS", {**result, "validation_result": verdict})


def parse_untyped(raw: dict[str, Any]) -> Success:
    """The untyped ``/status`` result: any object, with ``content_b64`` when there is a file."""
    result = canonical(raw, UNTYPED_FIELDS)
    filename = _check(result, "filename", str, required=False, nullable=True) or "document"
    _check(result, "content_b64", str, required=False, nullable=True)
    _check(result, "xml_content", str, required=False, nullable=True)
    files = tuple(f for f in (_document(result, filename), _xml(result, filename)) if f)
    return Success("SUCCESS", _without(result, "content_b64", "xml_content"), files)


def _conversion_stem(result: Mapping[str, Any]) -> str:
    conversion_id = result.get("conversion_id")
    return f"conversion-{conversion_id}" if conversion_id else "conversion"


def _check_extraction(result: dict[str, Any], *, required: bool) -> None:
    extraction = _check(result, "extraction", dict, required=required, nullable=not required)
    if extraction is not None:
        extraction = canonical(extraction, CONVERSION_EXTRACTION_FIELDS)
        _check(extraction, "confidence_score", (int, float))
        _check(extraction, "ocr_provider", str, required=False)
        result["extraction"] = extraction


def parse_conversion(raw: dict[str, Any]) -> Success:
    """``ConversionSuccessTaskResult``: the Factur-X document and its XML, when sent.

    The result has no file name: files are named after ``conversion_id``.
    """
    result = canonical(raw, CONVERSION_FIELDS)
    _check(result, "conversion_id", str)
    _check(result, "document_type_code", int)
    _check(result, "profile", str)
    _check(result, "processing_time_ms", int)
    _check_extraction(result, required=True)
    _check(result, "pdf_regenerated", bool, required=False)
    _check(result, "pdf_regenerated_reason", str, required=False, nullable=True)
    _check(result, "content_b64", str, required=False, nullable=True)
    _check(result, "xml_content", str, required=False, nullable=True)
    stem = _conversion_stem(result)
    document = _document(result, stem)
    if document is not None:
        extension = {"application/pdf": ".pdf", "application/xml": ".xml"}.get(
            document.content_type, ""
        )
        document = File(document.role, stem + extension, document.content,
                        document.content_type)
    files = tuple(f for f in (document, _xml(result, stem + ".xml")) if f)
    return Success("SUCCESS", _without(result, "content_b64", "xml_content"), files)


def parse_conversion_pending_input(raw: dict[str, Any]) -> NeedsInput:
    """``ConversionPendingInputResult``: the conversion waits for ``missing_fields``."""
    result = canonical(raw, CONVERSION_INPUT_FIELDS)
    result["status"] = "PENDING_INPUT"
    _check(result, "conversion_id", str)
    _check(result, "message", str)
    missing = _check(result, "missing_fields", list)
    if not all(isinstance(name, str) for name in missing):
        raise _invalid("The result field 'missing_fields' should hold only strings.")
    _check(result, "extracted_data", dict)
    _check(result, "confidence_score", (int, float))
    _check(result, "processing_time_ms", int)
    return NeedsInput("SUCCESS", result)


def parse_conversion_validation_failed(raw: dict[str, Any]) -> Failure:
    """``ConversionValidationFailedResult``: the extracted invoice broke the rules.

    A failed task with the code ``VALIDATION_FAILED``; the rule violations are
    the error details, the extracted data stays in the result.
    """
    result = canonical(raw, CONVERSION_REJECTED_FIELDS)
    result["status"] = "VALIDATION_FAILED"
    _check(result, "conversion_id", str)
    message = _check(result, "message", str)
    _check(result, "extracted_data", dict)
    _check(result, "profile", str)
    _check(result, "processing_time_ms", int)
    _check_extraction(result, required=False)
    violations = _check(result, "validation_errors", list, required=False)
    _check(result, "correction_attempted", bool, required=False)
    return Failure(
        "SUCCESS",
        code="VALIDATION_FAILED",
        message=message,
        details=error_details(violations),
        result=_without(result, "validation_errors"),
    )


CONVERSION_STATES: dict[str, BusinessParser] = {
    "PENDING_INPUT": parse_conversion_pending_input,
    "VALIDATION_FAILED": parse_conversion_validation_failed,
}


def parse_verification(raw: dict[str, Any]) -> Success:
    """``VerificationSuccessTaskResult``: the verdict is the product, there is no file.

    A PDF whose fields disagree with its XML is still a successful verification:
    read ``isCompliant`` and ``fields`` in ``verification_result``.
    """
    result = canonical(raw, VERIFICATION_FIELDS)
    verdict = canonical(_check(result, "verification_result", dict), VERIFICATION_RESULT_FIELDS)
    _check(verdict, "isCompliant", bool)
    _check(verdict, "complianceScore", (int, float))
    _check(verdict, "verifiedFieldsCount", int, required=False)
    _check(verdict, "compliantFieldsCount", int, required=False)
    _check(verdict, "isFacturx", bool, required=False)
    _check(verdict, "facturxProfile", str, required=False, nullable=True)
    for name in ("fields", "mandatoryNotes", "pageDimensions", "warnings"):
        _check(verdict, name, list, required=False)
    return Success("SUCCESS", {**result, "verification_result": verdict})
