"""Just enough form parsing for the fake server's submission endpoints.

Handles ``multipart/form-data`` (byte-exact file contents) and
``application/x-www-form-urlencoded``. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser
from urllib.parse import parse_qsl

__all__ = ["FormError", "UploadedFile", "parse_form"]


class FormError(ValueError):
    """The body is not a form this module understands."""


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart form."""

    filename: str | None
    content_type: str | None
    content: bytes


def _param(header_value: str, header: str, name: str) -> str | None:
    message = Message()
    message[header] = header_value
    value = message.get_param(name, header=header)
    if isinstance(value, tuple):  # RFC 2231 encoded value
        value = value[2]
    return None if value is None else str(value)


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, UploadedFile]]:
    boundary = _param(content_type, "content-type", "boundary")
    if not boundary:
        raise FormError("multipart body without a boundary")
    fields: dict[str, str] = {}
    files: dict[str, UploadedFile] = {}
    chunks = body.split(b"--" + boundary.encode("latin-1"))
    if len(chunks) < 3:
        raise FormError("multipart body without parts")
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # closing delimiter
        if not chunk.startswith(b"\r\n"):
            raise FormError("malformed multipart delimiter")
        head, separator, data = chunk[2:].partition(b"\r\n\r\n")
        if not separator:
            raise FormError("multipart part without headers")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        headers = BytesHeaderParser(policy=policy.HTTP).parsebytes(head + b"\r\n\r\n")
        disposition = headers.get("content-disposition", "")
        name = _param(disposition, "content-disposition", "name")
        if name is None:
            raise FormError("multipart part without a name")
        filename = _param(disposition, "content-disposition", "filename")
        if filename is None:
            fields[name] = data.decode("utf-8", errors="replace")
        else:
            files[name] = UploadedFile(filename, headers.get("content-type"), data)
    return fields, files


def parse_form(
    content_type: str | None, body: bytes
) -> tuple[dict[str, str], dict[str, UploadedFile]]:
    """Return ``(fields, files)`` of a form body; raise :class:`FormError` if it is not one."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == "multipart/form-data":
        return _multipart(content_type or "", body)
    if media_type == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError as exc:
            raise FormError("form body is not UTF-8") from exc
        return dict(pairs), {}
    raise FormError(f"unsupported content type {media_type or '(none)'!r}")
