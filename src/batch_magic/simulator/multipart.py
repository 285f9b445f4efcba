"""Parse a ``multipart/form-data`` body (the Files API upload) with the standard library.

The parts are split on the boundary; each part's headers are parsed by
``email`` so quoted names and RFC 2231 ``filename*=`` spellings are handled.
"""

from __future__ import annotations

import email.message
import email.parser
from dataclasses import dataclass

from .protocol import APIError


@dataclass(frozen=True)
class FormPart:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def boundary_of(content_type: str | None) -> str:
    """The boundary of a multipart/form-data Content-Type, or the 400 the API answers."""
    msg = email.message.Message()
    msg["content-type"] = content_type or ""
    if msg.get_content_type() != "multipart/form-data":
        raise APIError(
            "invalid_request_error",
            f"Content-Type must be multipart/form-data with a file part, not {content_type or 'none'!r}",
        )
    boundary = msg.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise APIError("invalid_request_error", "multipart/form-data body without a boundary")
    return boundary


def parse_form(body: bytes, content_type: str | None) -> dict[str, FormPart]:
    """The parts of a form body by field name (the first part of a name wins)."""
    delimiter = b"--" + boundary_of(content_type).encode("latin-1")
    pieces = body.split(delimiter)
    if len(pieces) < 3:
        raise APIError("invalid_request_error", "malformed multipart/form-data body: no parts found")
    parts: dict[str, FormPart] = {}
    headers_parser = email.parser.HeaderParser()
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            break  # the closing delimiter
        if piece.startswith(b"\r\n"):
            piece = piece[2:]
        head, sep, data = piece.partition(b"\r\n\r\n")
        if not sep:
            raise APIError("invalid_request_error", "malformed multipart/form-data body: a part has no headers")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        # Clients send a filename's UTF-8 bytes as they are (as browsers do), or RFC 2231 ``filename*=``.
        headers = headers_parser.parsestr(head.decode("utf-8", "replace") + "\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        filename = headers.get_filename()
        ctype = headers.get("content-type")
        parts.setdefault(name, FormPart(name=name, filename=filename, content_type=ctype, data=data))
    return parts
