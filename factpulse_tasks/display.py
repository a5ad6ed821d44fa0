"""How a task is shown to people: state badges, ages, the result of each kind, AFNOR tables.

Everything returns HTML that is safe to insert in a page: values from FactPulse
are escaped by the templates and by ``format_html``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince
from django.utils.translation import gettext

from .models import Artifact, FactPulseTask
from .profiles import HEAD_BYTES, cii_profile

logger = logging.getLogger("factpulse_tasks")

TEMPLATES = "admin/factpulse_tasks/factpulsetask"

# Longest JSON shown on a detail page, in characters, and most AFNOR detail rows.
JSON_DISPLAY_LIMIT = 100_000
DETAILS_DISPLAY_LIMIT = 1_001
# Most entries shown of each list of a validation verdict.
VERDICT_LIST_LIMIT = 200

# Colours readable with white text, in light and dark admin themes alike.
STATE_COLOURS: dict[str, str] = {
    "pending": "#5f6b76",
    "running": "#1f6fb2",
    "awaiting_input": "#7a3fb2",
    "succeeded": "#2a7a3b",
    "failed": "#b3261e",
    "expired": "#9a5b00",
}

AFNOR_COLUMNS = ("level", "item", "reason", "source", "code")

VERDICT_LISTS = ("xmlErrors", "pdfaErrors", "pdfaWarnings", "xmpErrors", "signatureErrors")


def state_badge(state: str) -> SafeString:
    """A task state (``"failed"``…) as a coloured label."""
    try:
        label = FactPulseTask.State(state).label
    except ValueError:
        label = state
    return format_html(
        '<span class="factpulse-state" data-state="{}" style="background:{};color:#fff;'
        'padding:1px 8px;border-radius:9px;white-space:nowrap">{}</span>',
        state,
        STATE_COLOURS.get(state, "#5f6b76"),
        label,
    )


def age_or_duration(task: FactPulseTask, now: datetime | None = None) -> str:
    """How long a finished task took, or how long an unfinished one has been waiting."""
    if task.finished_at is not None:
        return gettext("took %(duration)s") % {
            "duration": timesince(task.created_at, task.finished_at, depth=1)
        }
    return gettext("waiting for %(age)s") % {
        "age": timesince(task.created_at, now or timezone.now(), depth=1)
    }


def json_block(value: Any) -> SafeString:
    """``value`` as indented JSON, cut at :data:`JSON_DISPLAY_LIMIT` characters."""
    if value in (None, {}, []):
        return format_html("{}", "-")
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    if len(text) > JSON_DISPLAY_LIMIT:
        more = len(text) - JSON_DISPLAY_LIMIT
        text = text[:JSON_DISPLAY_LIMIT] + "\n… " + gettext(
            "(%(count)d more characters not shown)"
        ) % {"count": more}
    return format_html('<pre style="white-space: pre-wrap">{}</pre>', text)


def afnor_table(details: Any) -> SafeString:
    """AFNOR error details (``{level, item, reason, source, code}``) as a table."""
    rows = [d for d in details or [] if isinstance(d, dict)]
    shown = rows[:DETAILS_DISPLAY_LIMIT]
    if not shown:
        return format_html("{}", "-")
    return render_to_string(
        f"{TEMPLATES}/afnor_details.html",
        {
            "rows": [[_text(row.get(column)) for column in AFNOR_COLUMNS] for row in shown],
            "hidden": len(rows) - len(shown),
        },
    )


def has_layout(task: FactPulseTask) -> bool:
    """Whether :func:`result_panel` lays the result out rather than showing its JSON."""
    result = task.result
    if not isinstance(result, dict):
        return False
    if task.kind == "validation":
        return isinstance(result.get("validation_result"), dict)
    if task.kind == "signature":
        return result.get("status") == "SUCCESS"
    return result.get("status") == "SUCCESS" and task.kind in ("generation", "status")


def result_panel(task: FactPulseTask) -> SafeString:
    """The result of a task, laid out for its kind, else as JSON; ``-`` when there is none."""
    if not has_layout(task):
        return json_block(task.result)
    result: dict[str, Any] = task.result or {}
    if task.kind == "validation":
        return _validation(result["validation_result"])
    if task.kind == "signature":
        return _signature(result)
    return _generation(task, result)


def _validation(verdict: dict[str, Any]) -> SafeString:
    lists = []
    for name, label in zip(VERDICT_LISTS, _verdict_list_labels(), strict=True):
        entries = verdict.get(name)
        if isinstance(entries, list) and entries:
            lists.append({
                "name": name,
                "label": label,
                "entries": [_text(e) for e in entries[:VERDICT_LIST_LIMIT]],
                "hidden": max(0, len(entries) - VERDICT_LIST_LIMIT),
            })
    return render_to_string(
        f"{TEMPLATES}/result_validation.html",
        {
            "compliant": verdict.get("isCompliant") is True,
            "summary": _text(verdict.get("summaryMessage")),
            "profile": _text(verdict.get("detectedProfile")),
            "checks": [
                (gettext("Factur-X XML"), verdict.get("xmlCompliant"), ""),
                (gettext("PDF/A"), verdict.get("pdfaCompliant"), _text(verdict.get("pdfaVersion"))),
                (gettext("XMP metadata"), verdict.get("xmpFacturxCompliant"),
                 _text(verdict.get("xmpProfile"))),
            ],
            "signed": verdict.get("isSigned") is True,
            "signature_count": _count(verdict.get("signatureCount")),
            "lists": lists,
        },
    )


def _verdict_list_labels() -> list[str]:
    return [
        gettext("XML errors"),
        gettext("PDF/A errors"),
        gettext("PDF/A warnings"),
        gettext("XMP errors"),
        gettext("Signature errors"),
    ]


def _signature(result: dict[str, Any]) -> SafeString:
    details = result.get("validation_details")
    return render_to_string(
        f"{TEMPLATES}/result_signature.html",
        {
            "signed": result.get("is_signed") is True,
            "signer": _text(result.get("signer_cn")),
            "signing_date": _text(result.get("signing_date")),
            "count": _count(result.get("signature_count")),
            "filename": _text(result.get("filename")),
            "details": sorted((_text(k), _text(v)) for k, v in details.items())
            if isinstance(details, dict) else [],
        },
    )


def _generation(task: FactPulseTask, result: dict[str, Any]) -> SafeString:
    return render_to_string(
        f"{TEMPLATES}/result_generation.html",
        {
            "filename": _text(result.get("filename")),
            "profile": generation_profile(task.artifacts.all()),
        },
    )


def generation_profile(artifacts: Iterable[Artifact]) -> str:
    """The Factur-X profile of a generated invoice, read from its stored CII XML."""
    by_role: dict[str, Artifact] = {a.role: a for a in artifacts}
    artifact = by_role.get("xml") or by_role.get("document")
    if artifact is None or artifact.content_type != "application/xml":
        return ""
    try:
        with artifact.file.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
    except Exception:  # a missing file must not break the page; the download says 404
        logger.warning("Could not read artifact %s to find its profile", artifact.pk)
        return ""
    return cii_profile(head)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
