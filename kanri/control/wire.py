"""Just enough HTTP/1.1 for the control socket: size-capped requests, JSON answers.

The control API is small and local, so it parses requests itself instead of
pulling in a web framework: one request per connection, a head of at most
16 KiB, a body of at most 64 KiB, answered with ``Connection: close``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
READ_TIMEOUT = 10.0

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class RequestError(Exception):
    """A request the API refuses; becomes a JSON error answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    json_body: Any = field(default=None)

    def json(self) -> dict[str, Any]:
        """The body as a JSON object ({} when empty); RequestError 400 otherwise."""
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(400, f"the body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise RequestError(400, "the body must be a JSON object")
        return data


async def read_request(reader: asyncio.StreamReader) -> Request:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
    except asyncio.LimitOverrunError:
        raise RequestError(431, f"request head larger than {MAX_HEAD} bytes") from None
    except asyncio.IncompleteReadError:
        raise RequestError(400, "incomplete request") from None
    except TimeoutError:
        raise RequestError(408, "request not received in time") from None
    try:
        text = head.decode("latin-1")
        request_line, *header_lines = text[:-4].split("\r\n")
        method, target, version = request_line.split(" ")
    except ValueError:
        raise RequestError(400, "malformed request line") from None
    if not version.startswith("HTTP/1."):
        raise RequestError(400, f"unsupported protocol {version!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise RequestError(400, "malformed header line")
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise RequestError(411, "send a Content-Length body; chunked bodies are not accepted")
    body = b""
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise RequestError(400, "invalid Content-Length")
    length = int(length_text)
    if length > MAX_BODY:
        raise RequestError(413, f"body larger than {MAX_BODY} bytes")
    if length:
        try:
            body = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT)
        except asyncio.IncompleteReadError:
            raise RequestError(400, "body shorter than its Content-Length") from None
        except TimeoutError:
            raise RequestError(408, "request body not received in time") from None
    url = urlsplit(target)
    query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
    return Request(method.upper(), unquote(url.path), query, headers, body)


def response(status: int, payload: Any) -> bytes:
    body = json.dumps(payload, indent=None, separators=(",", ":")).encode() + b"\n"
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def stream_head() -> bytes:
    """Head of a streamed answer: newline-delimited JSON, chunked, until the client leaves."""
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )


def chunk(payload: Any) -> bytes:
    data = json.dumps(payload, separators=(",", ":")).encode() + b"\n"
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


LAST_CHUNK = b"0\r\n\r\n"
