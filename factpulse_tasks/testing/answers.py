"""Answers the fake server gives to status requests, and the builders that make them.

An :class:`Answer` is immutable and can be scripted for any number of tasks: the
``taskId`` of a JSON answer is always set to the id that was asked for. Answers that
carry files expose the exact bytes served in :attr:`Answer.files`, keyed by role:
``"document"`` for ``content_b64`` and ``"xml"`` for ``xml_content``.

Field names follow the FactPulse OpenAPI schemas (``GenerationSuccessResult``,
``SignatureSuccessResult``, ``ValidationSuccessTaskResult``, ``TaskErrorResult``,
``ConversionSuccessTaskResult``, ``VerificationSuccessTaskResult`` …).
"""

from __future__ import annotations

import base64
import hashlib
import http
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from . import documents

__all__ = [
    "Answer",
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

DEFAULT_INVOICE_NUMBER = "FA-2026-0001"
DEFAULT_CONVERSION_ID = "conv-7f3a2c41"

#: Not base64, whether decoded strictly or leniently (the lenient decoder keeps
#: "notbase64", 9 characters, which no padding can fix).
INVALID_BASE64 = "not*base64!"


@dataclass(frozen=True)
class Answer:
    """What the fake server does for one status request.

    Build answers with the functions of this module rather than by hand.
    ``payload_json`` is a JSON document whose ``taskId`` is replaced by the requested id;
    ``body`` is sent as is when there is no such document. ``delay`` seconds pass before
    anything is sent; ``reset`` closes the connection without answering.
    """

    status: int = 200
    payload_json: str | None = None
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    reset: bool = False
    files: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def payload(self) -> Any:
        """A fresh copy of the JSON document, ``None`` for a raw answer."""
        return None if self.payload_json is None else json.loads(self.payload_json)

    @property
    def sha256(self) -> dict[str, str]:
        """Hex SHA-256 of each file in :attr:`files`, by role."""
        return {role: hashlib.sha256(data).hexdigest() for role, data in self.files.items()}

    def json_for(self, task_id: str) -> Any:
        """The JSON document served for ``task_id`` (``None`` for a raw answer)."""
        document = self.payload
        if isinstance(document, dict) and "taskId" in document:
            document["taskId"] = task_id
        return document

    def body_for(self, task_id: str) -> bytes:
        """The exact body served for ``task_id``."""
        if self.payload_json is None:
            return self.body
        return json.dumps(self.json_for(task_id), ensure_ascii=False).encode("utf-8")


def _celery(
    state: str, result: Mapping[str, Any] | None, files: Mapping[str, bytes] | None = None
) -> Answer:
    document = {"taskId": "", "status": state, "result": result}
    return Answer(
        payload_json=json.dumps(document, ensure_ascii=False),
        files=MappingProxyType(dict(files or {})),
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def pending() -> Answer:
    """Celery ``PENDING`` (also what FactPulse says for an id it never heard of)."""
    return _celery("PENDING", None)


def started() -> Answer:
    """Celery ``STARTED``: a worker is on it."""
    return _celery("STARTED", None)


def retry() -> Answer:
    """Celery ``RETRY``: the task failed for a passing reason and will run again."""
    return _celery("RETRY", None)


def celery_success(
    result: Mapping[str, Any], *, files: Mapping[str, bytes] | None = None
) -> Answer:
    """Celery ``SUCCESS`` with any ``result`` object; ``files`` lists the bytes it carries."""
    return _celery("SUCCESS", dict(result), files=files)


def generation_success(
    *,
    output: str = "pdf",
    invoice_number: str = DEFAULT_INVOICE_NUMBER,
    filename: str | None = None,
    level: str = "en16931",
) -> Answer:
    """SUCCESS with a ``GenerationSuccessResult``.

    ``output="pdf"``: ``content_b64`` is a real Factur-X PDF; ``output="xml"`` (or
    ``"cii"``): it is the CII XML. ``xml_content`` is always the CII XML as text.
    ``files`` holds ``"document"`` and ``"xml"``.
    """
    if output not in ("pdf", "xml", "cii"):
        raise ValueError(f"output must be 'pdf' or 'xml', not {output!r}")
    xml = documents.make_cii_xml(invoice_number, level=level)
    if output == "pdf":
        document = documents.make_facturx_pdf(invoice_number, level=level)
        extension = "pdf"
    else:
        document = xml
        extension = "xml"
    result = {
        "status": "SUCCESS",
        "content_b64": _b64(document),
        "xml_content": xml.decode("utf-8"),
        "filename": filename or f"{invoice_number}.{extension}",
    }
    return celery_success(result, files={"document": document, "xml": xml})


def signature_success(
    *,
    pdf: bytes | None = None,
    filename: str = f"{DEFAULT_INVOICE_NUMBER}-signed.pdf",
    signer_cn: str = "Atelier Lumière SAS - Cachet serveur",
    signing_date: str = "2026-01-15T10:30:00+00:00",
) -> Answer:
    """SUCCESS with a ``SignatureSuccessResult`` (every required field).

    The fake does not sign: ``content_b64`` is ``pdf`` as given, by default a Factur-X
    PDF. ``size_bytes`` is its length; ``files`` holds ``"document"``.
    """
    document = documents.make_facturx_pdf() if pdf is None else bytes(pdf)
    result = {
        "status": "SUCCESS",
        "content_b64": _b64(document),
        "filename": filename,
        "size_bytes": len(document),
        "is_signed": True,
        "signature_count": 1,
        "signer_cn": signer_cn,
        "signing_date": signing_date,
        "validation_details": {
            "pades_level": "PAdES-B-T",
            "timestamped": True,
            "timestamp_authority": "FreeTSA",
            "certificate_issuer": "FactPulse Test CA",
            "field_name": "FactPulseSignature",
        },
    }
    return celery_success(result, files={"document": document})


def validation_result(*, compliant: bool = True, profile: str = "EN16931") -> dict[str, Any]:
    """A full ``PDFValidationResultAPI`` document, compliant or not."""
    if compliant:
        xml_errors: list[str] = []
        pdfa_errors: list[str] = []
        summary = f"Le PDF est conforme Factur-X (profil {profile})."
    else:
        xml_errors = [
            "[BR-FR-01] Le SIRET du vendeur est obligatoire pour une facture française.",
            "[BR-CO-15] Le montant TTC (BT-112) doit égaler le total HT (BT-109) plus la TVA "
            "(BT-110).",
        ]
        pdfa_errors = [
            "La police Helvetica n'est pas incorporée (ISO 19005-3, 6.2.11.4.1).",
        ]
        summary = "Le PDF n'est pas conforme : 2 erreurs XML, 1 erreur PDF/A."
    return {
        "isCompliant": compliant,
        "xmlPresent": True,
        "xmlCompliant": compliant,
        "detectedProfile": profile,
        "xmlErrors": xml_errors,
        "pdfaCompliant": compliant,
        "pdfaVersion": "PDF/A-3B",
        "pdfaValidationMethod": "metadata",
        "validatedRules": None,
        "failedRules": None,
        "pdfaErrors": pdfa_errors,
        "pdfaWarnings": [],
        "xmpPresent": True,
        "xmpFacturxCompliant": True,
        "xmpProfile": profile,
        "xmpVersion": "1.0",
        "xmpErrors": [],
        "xmpMetadata": {
            "fx:ConformanceLevel": profile,
            "fx:DocumentFileName": "factur-x.xml",
            "fx:DocumentType": "INVOICE",
            "fx:Version": "1.0",
        },
        "isSigned": False,
        "signatureCount": 0,
        "signatures": [],
        "signatureErrors": [],
        "summaryMessage": summary,
    }


def validation_success(*, compliant: bool = True, profile: str = "EN16931") -> Answer:
    """SUCCESS with a ``ValidationSuccessTaskResult``.

    The task itself succeeded either way; ``compliant=False`` gives a report with
    ``isCompliant: false`` and non-empty ``xmlErrors`` and ``pdfaErrors``. No files.
    """
    result = {
        "status": "SUCCESS",
        "validation_result": validation_result(compliant=compliant, profile=profile),
    }
    return celery_success(result)


def status_success(*, pdf: bool = True, invoice_number: str = DEFAULT_INVOICE_NUMBER) -> Answer:
    """SUCCESS for the untyped ``/status`` endpoint: ``{status, content_b64, filename}``.

    The content is a Factur-X PDF, or the CII XML with ``pdf=False``; ``files`` holds
    ``"document"``.
    """
    if pdf:
        document = documents.make_facturx_pdf(invoice_number)
        filename = f"{invoice_number}.pdf"
    else:
        document = documents.make_cii_xml(invoice_number)
        filename = f"{invoice_number}.xml"
    result = {"status": "SUCCESS", "content_b64": _b64(document), "filename": filename}
    return celery_success(result, files={"document": document})


def conversion_success(
    *,
    output: str = "pdf",
    invoice_number: str = DEFAULT_INVOICE_NUMBER,
    conversion_id: str = DEFAULT_CONVERSION_ID,
    profile: str = "EN16931",
) -> Answer:
    """SUCCESS with a ``ConversionSuccessTaskResult`` (a scanned invoice made Factur-X).

    ``output="pdf"``: ``content_b64`` is a Factur-X PDF; ``output="xml"``: it is the CII
    XML. ``xml_content`` is always the CII XML. ``files`` holds ``"document"`` and ``"xml"``.
    """
    if output not in ("pdf", "xml"):
        raise ValueError(f"output must be 'pdf' or 'xml', not {output!r}")
    level = profile.lower()
    xml = documents.make_cii_xml(invoice_number, level=level)
    document = documents.make_facturx_pdf(invoice_number, level=level) if output == "pdf" else xml
    result = {
        "status": "SUCCESS",
        "conversion_id": conversion_id,
        "document_type_code": 380,
        "profile": profile,
        "extraction": {"confidence_score": 0.94, "ocr_provider": "mistral_ocr"},
        "processing_time_ms": 4180,
        "pdf_regenerated": output == "pdf",
        "pdf_regenerated_reason": "source PDF was not PDF/A-3" if output == "pdf" else None,
        "content_b64": _b64(document),
        "xml_content": xml.decode("utf-8"),
    }
    return celery_success(result, files={"document": document, "xml": xml})


def conversion_pending_input(
    missing_fields: Sequence[str] = ("seller.siret", "buyer.vat_number"),
    *,
    conversion_id: str = DEFAULT_CONVERSION_ID,
) -> Answer:
    """SUCCESS whose result is a ``ConversionPendingInputResult``: fields are missing."""
    result = {
        "status": "PENDING_INPUT",
        "conversion_id": conversion_id,
        "message": "Des champs obligatoires n'ont pas pu être lus sur le document.",
        "missing_fields": list(missing_fields),
        "extracted_data": {
            "invoiceNumber": DEFAULT_INVOICE_NUMBER,
            "issueDate": "2026-01-15",
            "totalNetAmount": 1250.0,
            "seller": {"name": "Atelier Lumière SAS"},
        },
        "confidence_score": 0.71,
        "processing_time_ms": 3920,
    }
    return celery_success(result)


def conversion_validation_failed(*, conversion_id: str = DEFAULT_CONVERSION_ID) -> Answer:
    """SUCCESS whose result is a ``ConversionValidationFailedResult`` (Schematron errors)."""
    result = {
        "status": "VALIDATION_FAILED",
        "conversion_id": conversion_id,
        "message": "Les données extraites ne respectent pas les règles EN16931.",
        "extracted_data": {"invoiceNumber": DEFAULT_INVOICE_NUMBER, "totalNetAmount": 1250.0},
        "extraction": {"confidence_score": 0.88, "ocr_provider": "mistral_ocr"},
        "validation_errors": [
            {
                "level": "Error",
                "item": "BR-CO-15",
                "reason": "Le montant TTC (BT-112) doit égaler le total HT (BT-109) plus la "
                "TVA (BT-110).",
                "source": "schematron",
                "code": "SCHEMATRON_BR_CO_15",
            }
        ],
        "profile": "EN16931",
        "processing_time_ms": 5210,
        "correction_attempted": True,
    }
    return celery_success(result)


def conversion_error(
    code: str = "OCR_FAILED",
    message: str = "Le document n'a pas pu être lu",
    *,
    conversion_id: str | None = DEFAULT_CONVERSION_ID,
) -> Answer:
    """SUCCESS whose result is a ``ConversionErrorResult`` (``status: ERROR``)."""
    result = {
        "status": "ERROR",
        "conversion_id": conversion_id,
        "errorCode": code,
        "errorMessage": message,
        "details": [dict(_DEFAULT_DETAILS[0])],
        "traceback": None,
        "processing_time_ms": 812,
    }
    return celery_success(result)


def verification_result(*, compliant: bool = True) -> dict[str, Any]:
    """A ``VerificationSuccessResponse``: the PDF's visible fields against its XML."""
    amount = "1 500,00 €" if compliant else "1 450,00 €"
    fields = [
        {
            "businessTerm": "BT-1",
            "label": "Numéro de facture",
            "pdfValue": DEFAULT_INVOICE_NUMBER,
            "xmlValue": DEFAULT_INVOICE_NUMBER,
            "status": "COMPLIANT",
            "message": "Conforme",
            "confidence": 0.98,
            "source": "native_pdf",
            "bbox": {"x0": 350.5, "y0": 720.0, "x1": 420.8, "y1": 735.0, "page": 0,
                     "width": 70.3, "height": 15.0},
        },
        {
            "businessTerm": "BT-112",
            "label": "Montant TTC",
            "pdfValue": amount,
            "xmlValue": "1500.00",
            "status": "COMPLIANT" if compliant else "DISCREPANCY",
            "message": "Conforme" if compliant else "Le montant du PDF diffère du XML",
            "confidence": 0.93,
            "source": "native_pdf",
            "bbox": None,
        },
    ]
    return {
        "isCompliant": compliant,
        "complianceScore": 100.0 if compliant else 50.0,
        "verifiedFieldsCount": len(fields),
        "compliantFieldsCount": len(fields) if compliant else 1,
        "isFacturx": True,
        "facturxProfile": "EN16931",
        "fields": fields,
        "mandatoryNotes": [
            {
                "subjectCode": "PMT",
                "label": "Indemnité forfaitaire de recouvrement",
                "pdfValue": "indemnité forfaitaire de 40 euros",
                "xmlValue": "En cas de retard de paiement, une indemnité forfaitaire de 40 euros "
                "sera due.",
                "status": "COMPLIANT",
                "message": None,
                "bbox": None,
            }
        ],
        "pageDimensions": [{"width": 595.2, "height": 841.8}],
        "warnings": [] if compliant else ["Un montant diffère entre le PDF et le XML."],
    }


def verification_success(*, compliant: bool = True) -> Answer:
    """SUCCESS with a ``VerificationSuccessTaskResult``; no files.

    ``compliant=False`` gives a verdict with a ``DISCREPANCY`` field: the task still
    succeeded.
    """
    result = {"status": "SUCCESS", "verification_result": verification_result(compliant=compliant)}
    return celery_success(result)


_DEFAULT_DETAILS: tuple[Mapping[str, Any], ...] = (
    {
        "level": "Error",
        "item": "BR-FR-01",
        "reason": "Le SIRET du vendeur est obligatoire pour une facture française "
        "(BT-30, schemeID 0002).",
        "source": "schematron",
        "code": "SCHEMATRON_BR_FR_01",
    },
    {
        "level": "Warning",
        "item": "BR-FR-05",
        "reason": "La mention de l'indemnité forfaitaire de recouvrement (note PMT) est absente.",
        "source": "schematron",
        "code": "SCHEMATRON_BR_FR_05",
    },
)


def business_error(
    code: str = "VALIDATION_FAILED",
    message: str = "La validation Factur-X a échoué",
    details: Sequence[Mapping[str, Any]] | None = None,
) -> Answer:
    """Celery SUCCESS whose result is a ``TaskErrorResult`` (``status: ERROR``).

    ``details`` are AFNOR error details ``{level, item, reason, source, code}``; the
    default is a BR-FR rule about the supplier SIRET plus a warning.
    """
    chosen = _DEFAULT_DETAILS if details is None else details
    result = {
        "status": "ERROR",
        "errorCode": code,
        "errorMessage": message,
        "details": [dict(detail) for detail in chosen],
    }
    return celery_success(result)


def celery_failure(
    message: str = "Worker lost while processing the task",
    code: str = "TASK_FAILED",
) -> Answer:
    """Celery ``FAILURE``: the task crashed; ``result`` is ``{errorCode, errorMessage}``."""
    return _celery("FAILURE", {"errorCode": code, "errorMessage": message})


def camel_case(answer: Answer) -> Answer:
    """The same answer with the snake_case keys of ``result`` respelled in camelCase.

    ``content_b64`` becomes ``contentB64``, ``xml_content`` ``xmlContent``,
    ``validation_result`` ``validationResult`` …, as generated SDKs show them. Keys
    inside nested objects are left alone. Raw answers are returned unchanged.
    """
    document = answer.payload
    if not isinstance(document, dict) or not isinstance(document.get("result"), dict):
        return answer
    document["result"] = {_camel(key): value for key, value in document["result"].items()}
    return replace(answer, payload_json=json.dumps(document, ensure_ascii=False))


def _camel(key: str) -> str:
    first, *rest = key.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def _error_code(status: int) -> str:
    try:
        return http.HTTPStatus(status).name
    except ValueError:
        return f"HTTP_{status}"


def http_error(
    status: int,
    body: bytes | None = None,
    content_type: str | None = "application/json",
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """An HTTP error status (500, 502, 503, 429, 401 …) instead of a task status.

    Without ``body``, the body is an ``APIError`` JSON (``errorCode``, ``errorMessage``)
    naming the status. Pass ``headers={"Retry-After": "2"}`` for 429/503.
    """
    if body is None:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        body = json.dumps({"errorCode": _error_code(status), "errorMessage": phrase}).encode()
    return Answer(
        status=status,
        body=bytes(body),
        content_type=content_type,
        headers=tuple((headers or {}).items()),
    )


def raw(body: bytes, status: int = 200, content_type: str | None = "application/json") -> Answer:
    """Exactly ``body`` with ``status``: HTML pages, truncated JSON, a JSON list …"""
    return Answer(status=status, body=bytes(body), content_type=content_type)


def invalid_base64_success() -> Answer:
    """SUCCESS with a schema-valid generation result whose ``content_b64`` is not base64."""
    result = {
        "status": "SUCCESS",
        "content_b64": INVALID_BASE64,
        "xml_content": None,
        "filename": f"{DEFAULT_INVOICE_NUMBER}.pdf",
    }
    return celery_success(result)


def hang(seconds: float, then: Answer | None = None) -> Answer:
    """Wait ``seconds`` before answering ``then`` (``PENDING`` by default).

    Longer than the client timeout, it makes the client time out. Stopping the server
    ends the wait at once, without an answer.
    """
    if seconds < 0:
        raise ValueError("seconds must be positive")
    return replace(then or pending(), delay=float(seconds))


def reset() -> Answer:
    """Close the connection without sending anything (the client sees a connection error)."""
    return Answer(reset=True, content_type=None)
