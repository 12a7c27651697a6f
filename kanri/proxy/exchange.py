"""One request and its response as it crosses the proxy, and the request-header table.

Exchange has no ``__slots__`` on purpose: most of its fields keep their class
default for most requests (no Range, no Upgrade, no Expect...), and an
instance that only stores what a request actually set is cheaper to create
than one that assigns forty slots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from kanri.proxy.http import ClientConnection
    from kanri.proxy.upstream import UpstreamConnection

JOIN_LIMIT: Final = 4096
"""Answers up to this size are joined into one buffer for one write; a bigger body goes
beside its head in one writev, so the proxy never copies its bytes."""

_IDEMPOTENT: Final = frozenset((b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"))

# Request headers that the proxy looks at or replaces; everything else is
# forwarded as received, without re-encoding.
H_HOST: Final = 0
H_CL: Final = 1
H_TE: Final = 2
H_CONNECTION: Final = 3
H_DROP: Final = 4
H_XFF: Final = 5
H_EXPECT: Final = 6
H_UPGRADE: Final = 7
H_REFERER: Final = 8
H_UA: Final = 9
H_AE: Final = 10
H_INM: Final = 11
H_IMS: Final = 12
H_RANGE: Final = 13
H_IF_RANGE: Final = 14
REQUEST_HEADERS: Final[dict[bytes, int]] = {
    b"host": H_HOST,
    b"content-length": H_CL,
    b"transfer-encoding": H_TE,
    b"connection": H_CONNECTION,
    b"keep-alive": H_DROP,
    b"proxy-connection": H_DROP,
    b"proxy-authorization": H_DROP,
    b"te": H_DROP,
    b"trailer": H_DROP,
    b"http2-settings": H_DROP,
    b"x-real-ip": H_DROP,
    b"x-forwarded-proto": H_DROP,
    b"x-forwarded-host": H_DROP,
    b"x-forwarded-for": H_XFF,
    b"expect": H_EXPECT,
    b"upgrade": H_UPGRADE,
    b"referer": H_REFERER,
    b"user-agent": H_UA,
    b"accept-encoding": H_AE,
    b"if-none-match": H_INM,
    b"if-modified-since": H_IMS,
    b"range": H_RANGE,
    b"if-range": H_IF_RANGE,
}
H_PASS: Final = -1  # forwarded as received


def spellings(
    table: dict[bytes, int], passing: tuple[bytes, ...], pass_kind: int
) -> dict[bytes, int]:
    """``table`` plus the usual spellings of its names, and of common names that just pass.

    Looked up with the name as received, so the usual header costs no ``lower()``;
    a name not found is lowercased and looked up in ``table``, so an odd spelling
    of a header the proxy acts on is still caught.
    """
    out = dict(table)
    for name, kind in table.items():
        out[name.title()] = kind
    for name in passing:
        assert name not in table, name
        out[name] = out[name.title()] = pass_kind
    return out


REQUEST_SPELLINGS: Final = spellings(
    REQUEST_HEADERS,
    (
        b"accept",
        b"accept-language",
        b"authorization",
        b"cache-control",
        b"content-type",
        b"cookie",
        b"origin",
        b"pragma",
        b"priority",
    ),
    H_PASS,
)


class Exchange:
    """One request and its response. Class attributes are the defaults."""

    # --- the request, written by the parser callbacks
    url: bytes = b""
    method: bytes = b""  # emptied once the exchange is logged
    version: bytes = b"1.1"
    host: bytes | None = None
    host_count: int = 0
    content_length: int | None = None
    chunked: bool = False
    keep_alive: bool = True
    upgrade: bool = False
    upgrade_value: bytes | None = None
    expect_continue: bool = False
    xff: bytes | None = None
    conn_tokens: list[bytes] | None = None
    referer: bytes | None = None
    user_agent: bytes | None = None
    accept_encoding: bytes | None = None
    if_none_match: bytes | None = None
    if_modified_since: bytes | None = None
    range: bytes | None = None
    if_range: bytes | None = None
    body_received: int = 0
    buffered: int = 0
    request_done: bool = False
    tunnel_early: bytes = b""
    # --- handling, written by the connection and the upstream side
    error: int = 0  # answer this status instead of routing
    sink: bool = False  # discard the request body
    close: bool = False  # close the connection after this response
    upstream: UpstreamConnection | None = None
    upstream_key: str = ""
    last_failure: int = 502
    tried: tuple[object, ...] = ()  # the pools tried so far (in this round)
    sent: bool = False  # an upstream took the request, then failed
    held: bool = False  # waited for a new instance after that: not replayed again
    retry_round: int = 0  # rounds over every instance that all failed to connect
    retry_until: float = 0.0  # when waiting for a refusing app gives up (loop time)
    # --- the response
    status: int = 0
    response_started: bool = False
    response_done: bool = False
    bytes_out: int = 0

    def __init__(self, conn: ClientConnection, start: float) -> None:
        self.conn = conn
        self.start = start
        self.fwd_headers: list[bytes] = []
        self.body_buf: list[bytes] = []

    @property
    def idempotent(self) -> bool:
        return self.method in _IDEMPOTENT

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    def connection_line(self) -> bytes:
        """The Connection header of the answer: close, keep-alive for HTTP/1.0, or none."""
        if self.close:
            return b"Connection: close\r\n"
        if self.version != b"1.1":
            return b"Connection: keep-alive\r\n"
        return b""

    def path_and_query(self) -> tuple[bytes, bytes]:
        url = self.url
        mark = url.find(b"?")
        if mark < 0:
            return url, b""
        return url[:mark], url[mark:]
