"""Errors the proxy raises to the daemon, and the answers it sends to clients.

    KanriError
     +-- ProxyError              the proxy could not start or keep its workers
          +-- ListenError        a listen address could not be bound

Answers to clients are small canned plain-text responses built once per
status code; they never carry a traceback or any detail of the failure.
"""

from __future__ import annotations

from typing import Final

from kanri.errors import KanriError


class ProxyError(KanriError):
    """The proxy could not start or keep its worker processes."""


class ListenError(ProxyError):
    """A listen address could not be bound (in use, not permitted, or not local)."""


REASONS: Final[dict[int, bytes]] = {
    100: b"Continue",
    101: b"Switching Protocols",
    103: b"Early Hints",
    200: b"OK",
    201: b"Created",
    202: b"Accepted",
    204: b"No Content",
    206: b"Partial Content",
    301: b"Moved Permanently",
    302: b"Found",
    303: b"See Other",
    304: b"Not Modified",
    307: b"Temporary Redirect",
    308: b"Permanent Redirect",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    409: b"Conflict",
    411: b"Length Required",
    413: b"Content Too Large",
    414: b"URI Too Long",
    416: b"Range Not Satisfiable",
    422: b"Unprocessable Content",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported",
}

_STATUS_LINES: Final[dict[int, bytes]] = {
    code: b"HTTP/1.1 %d %s\r\n" % (code, reason) for code, reason in REASONS.items()
}


def status_line(code: int) -> bytes:
    """``HTTP/1.1 <code> <reason>\\r\\n`` with the standard reason phrase."""
    line = _STATUS_LINES.get(code)
    if line is None:
        line = b"HTTP/1.1 %d Unknown\r\n" % code
    return line


RETRY_AFTER_SECONDS: Final = 1
"""Retry-After sent with 503: instances come back within seconds during a deploy."""

_ERROR_BODIES: Final[dict[int, bytes]] = {
    400: b"400 Bad Request: the request is malformed\n",
    403: b"403 Forbidden\n",
    404: b"404 Not Found\n",
    405: b"405 Method Not Allowed\n",
    408: b"408 Request Timeout: the request was not received in time\n",
    413: b"413 Content Too Large: the request body is larger than allowed\n",
    414: b"414 URI Too Long\n",
    416: b"416 Range Not Satisfiable\n",
    431: b"431 Request Header Fields Too Large\n",
    500: b"500 Internal Server Error\n",
    501: b"501 Not Implemented: unsupported Transfer-Encoding\n",
    502: b"502 Bad Gateway: the app did not answer\n",
    503: b"503 Service Unavailable: no instance of the app is ready\n",
    504: b"504 Gateway Timeout: the app did not answer in time\n",
    505: b"505 HTTP Version Not Supported\n",
}


def error_head_and_body(code: int) -> tuple[bytes, bytes]:
    """The status line plus fixed headers (no Date/Server/Connection) and body of an error."""
    body = _ERROR_BODIES.get(code) or b"%d\n" % code
    head = b"".join(
        (
            status_line(code),
            b"Content-Type: text/plain; charset=utf-8\r\n",
            b"Content-Length: %d\r\n" % len(body),
            b"Retry-After: %d\r\n" % RETRY_AFTER_SECONDS if code == 503 else b"",
            b"Allow: GET, HEAD\r\n" if code == 405 else b"",
        )
    )
    return head, body
