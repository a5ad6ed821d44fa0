"""Checks on the names that come from outside: task ids and file names.

A task id ends up in a URL path and a file name in a storage path, so both are
held to a short list of characters before they are used.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from .exceptions import InvalidTaskId, InvalidTrackingData

TASK_ID_MAX_LENGTH = 64
REFERENCE_MAX_LENGTH = 255
# What PostgreSQL refuses in text and JSON: NUL, and halves of surrogate pairs;
# the second pattern finds them escaped in JSON text.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
ESCAPED_UNSTORABLE = re.compile(r"\\u(0000|[dD][89a-fA-F])")
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
FILENAME_MAX_LENGTH = 100


def validate_task_id(task_id: object) -> str:
    """Return ``task_id`` if it looks like a FactPulse (Celery, UUID-like) id.

    Raises :class:`~factpulse_tasks.exceptions.InvalidTaskId` for anything else:
    an empty value, more than 64 characters, or characters other than ASCII
    letters, digits, ``-`` and ``_``.
    """
    if not isinstance(task_id, str):
        raise InvalidTaskId(f"A task id must be a string, not {type(task_id).__name__}.")
    if not task_id:
        raise InvalidTaskId("The task id is empty.")
    if len(task_id) > TASK_ID_MAX_LENGTH:
        raise InvalidTaskId(
            f"The task id is {len(task_id)} characters long; FactPulse ids have at most "
            f"{TASK_ID_MAX_LENGTH}."
        )
    if not _TASK_ID.fullmatch(task_id):
        raise InvalidTaskId(
            f"The task id {task_id[:TASK_ID_MAX_LENGTH]!r} is not shaped like a FactPulse id; "
            "expected ASCII letters, digits, '-' and '_', starting with a letter or digit, "
            "like a UUID."
        )
    return task_id


def validate_reference(reference: object) -> str:
    """Return ``reference`` if it can be stored: text of at most 255 characters."""
    if not isinstance(reference, str):
        raise InvalidTrackingData(
            f"The reference must be a string, not {type(reference).__name__}."
        )
    if len(reference) > REFERENCE_MAX_LENGTH:
        raise InvalidTrackingData(
            f"The reference is {len(reference)} characters long; at most "
            f"{REFERENCE_MAX_LENGTH} are kept."
        )
    if UNSTORABLE.search(reference):
        raise InvalidTrackingData(
            "The reference holds a NUL character or half of a surrogate pair, which "
            "databases cannot store."
        )
    return reference


def validate_metadata(metadata: object) -> dict[str, Any]:
    """Return ``metadata`` (``None`` gives ``{}``) if it is a dict any database stores as JSON."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidTrackingData(
            f"The metadata must be a dict of JSON values, not {type(metadata).__name__}."
        )
    try:
        text = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidTrackingData(f"The metadata is not storable as JSON: {exc}.") from exc
    if ESCAPED_UNSTORABLE.search(text):
        raise InvalidTrackingData(
            "The metadata holds a NUL character or half of a surrogate pair, which "
            "databases cannot store."
        )
    return metadata


def safe_filename(name: object, default: str = "document") -> str:
    """Reduce an untrusted file name to a plain, short base name.

    Folders, ``..``, control and non-ASCII characters are dropped, so the result
    can be joined to a storage path without leaving it.
    """
    text = name if isinstance(name, str) else ""
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = _UNSAFE.sub("_", text).strip("._")
    if len(text) > FILENAME_MAX_LENGTH:
        stem, dot, ext = text.rpartition(".")
        if dot and len(ext) <= 10:
            text = f"{stem[:FILENAME_MAX_LENGTH - len(ext) - 1]}.{ext}"
        else:
            text = text[:FILENAME_MAX_LENGTH]
    return text or default
