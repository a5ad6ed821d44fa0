"""The kinds of FactPulse task the app follows: endpoint, result reader and signal."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from django.dispatch import Signal

from . import results, signals
from .exceptions import UnknownKind
from .payloads import ResultParser


@dataclass(frozen=True)
class KindSpec:
    """What the app needs to know to follow one kind of task."""

    name: str
    status_path: str
    parse_result: ResultParser
    signal: Signal | None = None

    def path_for(self, task_id: str) -> str:
        """The status endpoint path of one task."""
        return self.status_path.format(task_id=quote(task_id, safe=""))


REGISTRY: dict[str, KindSpec] = {
    spec.name: spec
    for spec in (
        KindSpec(
            "generation",
            "/api/v1/processing/tasks/{task_id}/generation-status",
            results.parse_generation,
            signals.generation_finished,
        ),
        KindSpec(
            "signature",
            "/api/v1/processing/tasks/{task_id}/signature-status",
            results.parse_signature,
            signals.signature_finished,
        ),
        KindSpec(
            "validation",
            "/api/v1/processing/tasks/{task_id}/validation-status",
            results.parse_validation,
            signals.validation_finished,
        ),
        KindSpec(
            "status",
            "/api/v1/processing/tasks/{task_id}/status",
            results.parse_untyped,
        ),
    )
}


def get_kind(name: str) -> KindSpec:
    """The spec of kind ``name``; raises :class:`UnknownKind` for a name not registered."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(REGISTRY))
        raise UnknownKind(f"Unknown task kind {name!r}; expected one of: {known}.") from None
