"""The JSON Schemas in tests/schemas agree with the FactPulse OpenAPI reference.

Field names, types (nullable or not), required fields, enums, bounds and the
discriminated results are compared one reference component at a time, and
every component the six status answers use must have its schema here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "factpulse-status.schema.json"
SPEC_PATH = Path("reference") / "factpulse-async-tasks.openapi.yaml"
STATUS_ANSWERS = (
    "AsyncTaskStatus",
    "GenerationTaskStatus",
    "SignatureTaskStatus",
    "ValidationTaskStatus",
    "ConversionTaskStatus",
    "VerificationTypedTaskStatus",
)
COMPONENT_REF = "#/components/schemas/"
DEF_REF = "#/$defs/"


def shared_dir() -> Path:
    configured = os.environ.get("FACTPULSE_SHARED_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared"


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    path = shared_dir() / SPEC_PATH
    if not path.is_file():
        pytest.skip(f"reference OpenAPI file not found at {path}; set FACTPULSE_SHARED_DIR "
                    "to the folder that holds reference/")
    yaml = pytest.importorskip("yaml")
    with path.open(encoding="utf-8") as handle:
        return dict(yaml.safe_load(handle)["components"]["schemas"])


@pytest.fixture(scope="module")
def defs() -> dict[str, Any]:
    return dict(json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))["$defs"])


def reference_shape(node: dict[str, Any]) -> tuple[Any, ...]:
    """(kind, nullable, enum, bounds) of one reference property."""
    nullable = bool(node.get("nullable", False))
    if "$ref" in node:
        kind: Any = ("ref", node["$ref"].removeprefix(COMPONENT_REF))
    elif "allOf" in node and len(node["allOf"]) == 1:
        kind = ("ref", node["allOf"][0]["$ref"].removeprefix(COMPONENT_REF))
    elif node.get("type") == "array":
        kind = ("array", reference_shape(node["items"]))
    else:
        kind = (node["type"],)
    return kind, nullable, _enum(node), _bounds(node)


def our_shape(node: dict[str, Any]) -> tuple[Any, ...]:
    """The same for a property of our JSON Schemas."""
    nullable = False
    if "anyOf" in node:
        others = [part for part in node["anyOf"] if part != {"type": "null"}]
        nullable = len(others) < len(node["anyOf"])
        assert len(others) == 1, node
        node = others[0]
    types = node.get("type")
    if isinstance(types, list):
        nullable = nullable or "null" in types
        (types,) = [t for t in types if t != "null"]
    if "$ref" in node:
        kind: Any = ("ref", node["$ref"].removeprefix(DEF_REF))
    elif types == "array":
        kind = ("array", our_shape(node["items"]))
    else:
        kind = (types,)
    return kind, nullable, _enum(node), _bounds(node)


def _enum(node: dict[str, Any]) -> tuple[str, ...] | None:
    return tuple(sorted(node["enum"])) if "enum" in node else None


def _bounds(node: dict[str, Any]) -> tuple[float | None, float | None]:
    low, high = node.get("minimum"), node.get("maximum")
    return (None if low is None else float(low), None if high is None else float(high))


def test_every_schema_here_has_its_reference_component(
    defs: dict[str, Any], components: dict[str, Any]
) -> None:
    assert sorted(set(defs) - set(components)) == []


def test_every_component_a_status_answer_uses_has_a_schema_here(
    defs: dict[str, Any], components: dict[str, Any]
) -> None:
    seen: set[str] = set()
    todo = list(STATUS_ANSWERS)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_refs(components[name]))
    assert sorted(seen - set(defs)) == []


def _refs(node: Any) -> list[str]:
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    if not isinstance(node, dict):
        return []
    found = [node["$ref"].removeprefix(COMPONENT_REF)] if "$ref" in node else []
    return found + [ref for key, value in node.items() if key != "$ref" for ref in _refs(value)]


@pytest.mark.parametrize(
    "name", sorted(json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))["$defs"])
)
def test_schema_agrees_with_the_reference(
    name: str, defs: dict[str, Any], components: dict[str, Any]
) -> None:
    ours, theirs = defs[name], components[name]
    if "discriminator" in theirs:
        mapping = {value: ref.removeprefix(COMPONENT_REF)
                   for value, ref in theirs["discriminator"]["mapping"].items()}
        assert ours["discriminator"]["propertyName"] == theirs["discriminator"]["propertyName"]
        assert ours["discriminator"]["mapping"] == mapping
        variants = [v for v in ours["oneOf"] if v != {"type": "null"}]
        assert sorted(v["allOf"][0]["$ref"].removeprefix(DEF_REF) for v in variants) == sorted(
            ref["$ref"].removeprefix(COMPONENT_REF) for ref in theirs["oneOf"])
        assert all(v["required"] == [theirs["discriminator"]["propertyName"]] for v in variants)
        assert ({"type": "null"} in ours["oneOf"]) is bool(theirs.get("nullable"))
        return
    # The reference leaves "type: object" out of most objects.
    their_type = theirs.get("type", "object" if "properties" in theirs else None)
    assert ours.get("type") == their_type
    assert _enum(ours) == _enum(theirs)
    if their_type != "object":
        return
    their_properties = theirs.get("properties", {})
    assert sorted(ours.get("properties", {})) == sorted(their_properties)
    assert sorted(ours.get("required", [])) == sorted(theirs.get("required", []))
    for field, node in their_properties.items():
        assert our_shape(ours["properties"][field]) == reference_shape(node), field
    # Both leave other fields allowed: FactPulse may add fields at any time.
    assert "additionalProperties" not in ours or ours["additionalProperties"] is not False


def test_the_comparison_sees_a_difference(defs: dict[str, Any], components: dict[str, Any]) -> None:
    """A schema that drifted from the reference must not pass."""
    drifted = json.loads(json.dumps(defs["GenerationSuccessResult"]))
    drifted["properties"]["content_b64"] = {"type": "string"}
    assert our_shape(drifted["properties"]["content_b64"]) != reference_shape(
        components["GenerationSuccessResult"]["properties"]["content_b64"])
