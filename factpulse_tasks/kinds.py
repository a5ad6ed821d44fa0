"""The kinds of FactPulse task the app follows: endpoint, result readers, files and signals.

Each kind is one :class:`KindSpec` in :data:`REGISTRY`. A host project adds its
own with :func:`register_kind`, typically from its ``AppConfig.ready()``; the
task table stores the kind as plain text, so no migration is needed.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from django.core.exceptions import ValidationError
from django.dispatch import Signal
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from . import results, signals
from .exceptions import InvalidKindSpec, PayloadError, UnknownKind
from .payloads import (
    ARTIFACT_ROLES,
    INVALID_RESULT,
    BusinessParser,
    ResultParser,
    StatusUpdate,
    Success,
    parse_status,
)

# As stored in FactPulseTask.kind (a CharField of 32 characters).
KIND_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
# Business statuses every kind reads the same way.
COMMON_BUSINESS_STATES = frozenset({"SUCCESS", "ERROR"})


@dataclass(frozen=True)
class KindSpec:
    """What the app needs to know to follow one kind of task.

    - ``name``: stored in ``FactPulseTask.kind``; lower-case letters, digits and
      ``_``, at most 32 characters.
    - ``status_path``: the status endpoint, with ``{task_id}`` where the id goes.
    - ``parse_result``: reads a result whose business status is ``SUCCESS`` into
      a :class:`~factpulse_tasks.payloads.Success` (with its files); raises
      :class:`~factpulse_tasks.exceptions.PayloadError` for a result that breaks
      its schema. Business ``ERROR`` results are read by the app.
    - ``artifacts``: the file roles its results may carry (``document``, ``xml``).
    - ``signal``: sent when a task of this kind finishes, after ``task_finished``.
    - ``business_states``: readers for other business statuses (``PENDING_INPUT``…).
    - ``input_signal``: sent when a task of this kind enters ``awaiting_input``,
      after ``task_needs_input``.
    - ``label``: shown in the admin.
    """

    name: str
    status_path: str
    parse_result: ResultParser
    signal: Signal | None = None
    artifacts: tuple[str, ...] = ()
    business_states: Mapping[str, BusinessParser] = field(
        default_factory=lambda: MappingProxyType({})
    )
    input_signal: Signal | None = None
    label: str | Promise = ""

    def path_for(self, task_id: str) -> str:
        """The status endpoint path of one task."""
        return self.status_path.format(task_id=quote(task_id, safe=""))

    def parse(self, body: Mapping[str, Any]) -> StatusUpdate:
        """Read one decoded status answer of this kind; raises ``PayloadError``."""
        update = parse_status(body, self.parse_result, self.business_states)
        if isinstance(update, Success):
            undeclared = {f.role for f in update.files} - set(self.artifacts)
            if undeclared:
                raise PayloadError(
                    f"The reader of kind {self.name!r} returned files ({', '.join(undeclared)}) "
                    "its spec does not declare in artifacts.",
                    code=INVALID_RESULT,
                    final=True,
                )
        return update

    @property
    def display_name(self) -> str:
        return str(self.label) if self.label else self.name.replace("_", " ").capitalize()


def validate_spec(spec: object) -> list[str]:
    """Every problem of ``spec`` as a sentence; an empty list when it can be used."""
    if not isinstance(spec, KindSpec):
        return [f"expected a KindSpec, not {type(spec).__name__}"]
    problems = []
    if not isinstance(spec.name, str) or not KIND_NAME.fullmatch(spec.name):
        problems.append(
            f"the name {spec.name!r} must be 1 to 32 lower-case letters, digits or '_', "
            "starting with a letter"
        )
    problems.extend(_path_problems(spec.status_path))
    if not callable(spec.parse_result):
        problems.append("parse_result must be callable")
    for attribute in ("signal", "input_signal"):
        value = getattr(spec, attribute)
        if value is not None and not isinstance(value, Signal):
            problems.append(f"{attribute} must be a django.dispatch.Signal or None")
    if not isinstance(spec.artifacts, tuple) or not set(spec.artifacts) <= set(ARTIFACT_ROLES):
        problems.append(f"artifacts must be a tuple of roles among {', '.join(ARTIFACT_ROLES)}")
    if not isinstance(spec.business_states, Mapping):
        problems.append("business_states must be a mapping of status to reader")
    else:
        for state, reader in spec.business_states.items():
            if not isinstance(state, str) or state != state.upper() or not state:
                problems.append(f"business status {state!r} must be an upper-case string")
            elif state in COMMON_BUSINESS_STATES:
                problems.append(f"business status {state} is read by the app itself")
            if not callable(reader):
                problems.append(f"the reader of business status {state!r} must be callable")
    if not isinstance(spec.label, (str, Promise)):
        problems.append("label must be a string")
    return problems


def _path_problems(path: object) -> list[str]:
    if not isinstance(path, str) or not path.startswith("/"):
        return ["status_path must be a string starting with '/'"]
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(path) if name is not None]
    except ValueError as exc:
        return [f"status_path is not a valid template: {exc}"]
    if names != ["task_id"]:
        return ["status_path must hold '{task_id}' once, and no other '{…}' field"]
    if "?" in path or "#" in path:
        return ["status_path must be a path, without query or fragment"]
    return []


REGISTRY: dict[str, KindSpec] = {}


def register_kind(spec: KindSpec) -> KindSpec:
    """Add a kind of task to :data:`REGISTRY` and return it.

    Raises :class:`~factpulse_tasks.exceptions.InvalidKindSpec` when the spec
    is not usable (see :class:`KindSpec`) or its name is already registered.
    """
    problems = validate_spec(spec)
    if problems:
        raise InvalidKindSpec(f"Cannot register kind {getattr(spec, 'name', spec)!r}: "
                              + "; ".join(problems) + ".")
    if spec.name in REGISTRY:
        raise InvalidKindSpec(f"A kind named {spec.name!r} is already registered.")
    REGISTRY[spec.name] = spec
    return spec


def unregister_kind(name: str) -> None:
    """Remove a kind added with :func:`register_kind` (for tests); built-in kinds stay."""
    if name in BUILTIN_KINDS:
        raise InvalidKindSpec(f"The built-in kind {name!r} cannot be removed.")
    REGISTRY.pop(name, None)


def get_kind(name: str) -> KindSpec:
    """The spec of kind ``name``; raises :class:`UnknownKind` for a name not registered."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(REGISTRY))
        raise UnknownKind(f"Unknown task kind {name!r}; expected one of: {known}.") from None


def validate_kind_name(name: str) -> None:
    """Model field validator: ``name`` must be a registered kind (raises ``ValidationError``)."""
    if name not in REGISTRY:
        raise ValidationError(
            _("%(kind)s is not a registered kind of task."), params={"kind": name}, code="kind"
        )


def kind_label(name: str) -> str:
    """What the admin shows for kind ``name``, registered or not."""
    spec = REGISTRY.get(name)
    return spec.display_name if spec is not None else name


for _spec in (
    KindSpec(
        "generation",
        "/api/v1/processing/tasks/{task_id}/generation-status",
        results.parse_generation,
        signals.generation_finished,
        artifacts=("document", "xml"),
        label=_("Invoice generation"),
    ),
    KindSpec(
        "signature",
        "/api/v1/processing/tasks/{task_id}/signature-status",
        results.parse_signature,
        signals.signature_finished,
        artifacts=("document",),
        label=_("PDF signature"),
    ),
    KindSpec(
        "validation",
        "/api/v1/processing/tasks/{task_id}/validation-status",
        results.parse_validation,
        signals.validation_finished,
        label=_("Factur-X validation"),
    ),
    KindSpec(
        "status",
        "/api/v1/processing/tasks/{task_id}/status",
        results.parse_untyped,
        artifacts=("document", "xml"),
        label=_("Untyped task"),
    ),
    KindSpec(
        "conversion",
        "/api/v1/convert/tasks/{task_id}/conversion-status",
        results.parse_conversion,
        signals.conversion_finished,
        artifacts=("document", "xml"),
        business_states=MappingProxyType(dict(results.CONVERSION_STATES)),
        input_signal=signals.conversion_needs_input,
        label=_("Document conversion"),
    ),
    KindSpec(
        "verification",
        "/api/v1/verification/verify-async/{task_id}/typed-status",
        results.parse_verification,
        signals.verification_finished,
        label=_("PDF/XML verification"),
    ),
):
    register_kind(_spec)

BUILTIN_KINDS = frozenset(REGISTRY)
