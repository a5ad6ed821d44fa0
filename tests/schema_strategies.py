"""Hypothesis strategies drawn from the JSON Schemas in tests/schemas.

A small reader of the part of JSON Schema those files use (``$ref`` to
``$defs``, ``type``, ``enum``, ``properties``, ``required``, ``items``,
``anyOf``/``oneOf``, ``allOf`` around a ``$ref``, ``minimum``/``maximum``), so
that every example is a document the schema allows. Objects also get a few
fields the schema does not name, as the reference allows. The ``oneOf`` lists
of these files have disjoint branches (null, or a distinct ``status``), so any
branch drawn matches exactly one.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "factpulse-status.schema.json"
REF_PREFIX = "#/$defs/"

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8,
)


def fold(name: str) -> str:
    """Key spellings that a reader folding case and ``_`` would take as the same field."""
    return name.replace("_", "").replace("-", "").lower()


@cache
def definitions() -> dict[str, Any]:
    return dict(json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))["$defs"])


def schema_of(name: str) -> dict[str, Any]:
    """A standalone schema for ``$defs[name]`` (refs still resolve), for validators."""
    return {"$defs": definitions(), **definitions()[name]}


def from_definition(name: str, *, extra_fields: bool = True) -> st.SearchStrategy[Any]:
    """Documents that ``$defs[name]`` allows."""
    return _strategy(definitions()[name], extra_fields)


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return _resolve(definitions()[node["$ref"].removeprefix(REF_PREFIX)])
    if "allOf" in node:
        merged: dict[str, Any] = {}
        for part in node["allOf"]:
            merged.update(_resolve(part))
        rest = {k: v for k, v in node.items() if k != "allOf"}
        required = sorted({*merged.get("required", ()), *rest.pop("required", ())})
        return {**merged, **rest, "required": required}
    return node


def _strategy(node: dict[str, Any], extra_fields: bool) -> st.SearchStrategy[Any]:
    node = _resolve(node)
    for keyword in ("anyOf", "oneOf"):
        if keyword in node:
            return st.one_of([_strategy(part, extra_fields) for part in node[keyword]])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    types = node.get("type")
    if isinstance(types, list):
        return st.one_of([_strategy({**node, "type": t}, extra_fields) for t in types])
    low, high = node.get("minimum"), node.get("maximum")
    if types == "null":
        return st.none()
    if types == "boolean":
        return st.booleans()
    if types == "integer":
        return st.integers(min_value=None if low is None else int(low),
                           max_value=None if high is None else int(high))
    if types == "number":
        return st.floats(min_value=low, max_value=high, allow_nan=False,
                         allow_infinity=False) | st.integers(
            min_value=None if low is None else int(low),
            max_value=None if high is None else int(high))
    if types == "string":
        return st.text(max_size=20)
    if types == "array":
        return st.lists(_strategy(node.get("items", {}), extra_fields), max_size=3)
    if types == "object":
        return _object(node, extra_fields)
    return JSON


def _object(node: dict[str, Any], extra_fields: bool) -> st.SearchStrategy[dict[str, Any]]:
    properties = node.get("properties", {})
    if not properties:
        return st.dictionaries(st.text(max_size=10), JSON, max_size=3)
    required = set(node.get("required", ()))
    known = {fold(name) for name in properties}
    fixed = st.fixed_dictionaries(
        {name: _strategy(sub, extra_fields) for name, sub in properties.items()
         if name in required},
        optional={name: _strategy(sub, extra_fields) for name, sub in properties.items()
                  if name not in required},
    )
    if not extra_fields:
        return fixed
    # Extra fields never fold onto a field of the schema: they are new fields, not respellings.
    extras = st.dictionaries(
        st.text(min_size=1, max_size=10).filter(lambda key: fold(key) not in known),
        JSON,
        max_size=2,
    )
    return st.builds(lambda named, more: {**more, **named}, fixed, extras)
