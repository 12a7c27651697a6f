"""The one-call head parser (kanri/proxy/_heads.c) agrees with llhttp wherever it answers.

_heads takes only the common request and response heads and returns None for
anything else, which then goes to llhttp. So the property to hold is: for any
bytes, a connection that may use _heads sends the upstream and the client
exactly what a connection that only uses llhttp sends, and ends in the same
state. Each case runs the real ClientConnection and UpstreamConnection twice,
wired to in-memory transports (the seam is the transport, which asyncio owns),
once each way. The same requests also cross real sockets in test_corpus.py.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.hotpath import MemoryTransport
from kanri.config.model import ProxyConfig
from kanri.proxy.exchange import H_PASS, REQUEST_HEADERS
from kanri.proxy.http import ClientConnection
from kanri.proxy.settings import ProxySettings, RouteSpec
from kanri.proxy.snapshot import AppTargets, Snapshot, Upstream
from kanri.proxy.state import WorkerState
from kanri.proxy.upstream import _RESPONSE_HEADERS, R_PASS, UpstreamConnection
from kanri.proxy.worker import apply_snapshot

heads = pytest.importorskip("kanri.proxy._heads", reason="the proxy is not compiled")

MAX_HEADER = 1024
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Thu, 03 Dec 2026 19:00:00 GMT\r\n"
    b"Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 13\r\n\r\nhello, world\n"
)
_DATE = re.compile(rb"\r\nDate: [^\r]*\r\n")


@dataclass(frozen=True)
class Outcome:
    sent: bytes  # what the upstream received
    answered: bytes  # what the client received (Date masked)
    client_closed: bool
    upstream_pooled: bool  # the upstream connection went back to the pool
    deadline: int  # what the client connection's deadline is for (DL_*)
    paused: int  # why reading from the client is paused (PAUSE_*)
    waiting: int  # requests queued behind the active one


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()  # never run: the worker state only keeps it
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    (root / "a.txt").write_bytes(b"static\n")
    return root


class Wired:
    """A client connection whose requests go to one pooled upstream connection."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, site: Path, *, fast: bool, draining: bool = False
    ) -> None:
        config = ProxyConfig(max_header_size="1KiB")  # type: ignore[arg-type]
        self.state = WorkerState(ProxySettings.of(config), loop, lambda coro: coro.close(), None)
        upstream = Upstream("app:0#1", "app", "127.0.0.1", 9)
        routes = (
            RouteSpec(path="/static/", static=site, strip_prefix=True),
            RouteSpec(path="/", app="app"),
        )
        apply_snapshot(self.state, Snapshot(1, routes, {"app": AppTargets("app", (upstream,))}))
        self.pool = self.state.upstreams.pools[upstream.key]
        self.up = UpstreamConnection(self.state, self.pool)
        self.up.fast = fast
        self.up_transport = MemoryTransport()
        self.up.connection_made(self.up_transport)  # type: ignore[arg-type]
        self.pool.idle.append(self.up)
        self.client = ClientConnection(self.state)
        self.client.fast = fast
        self.client_transport = MemoryTransport()
        self.client.connection_made(self.client_transport)  # type: ignore[arg-type]
        self.state.draining = draining  # after the connection came in: draining refuses new ones

    def run(self, request: bytes | list[bytes], answers: list[bytes]) -> Outcome:
        """Feed ``request`` (one read, or several), answering each forwarded request in turn."""
        pending = list(answers)
        for chunk in [request] if isinstance(request, bytes) else request:
            self.client.data_received(chunk)
            while pending and self.up.ex is not None:
                self.up.data_received(pending.pop(0))
        return Outcome(
            b"".join(self.up_transport.written),
            _DATE.sub(b"\r\nDate: -\r\n", b"".join(self.client_transport.written)),
            self.client.closed,
            self.up in self.pool.idle and not self.up.closed,
            self.client.dl_kind,
            self.client.paused,
            len(self.client.queue),
        )


def both(
    loop: asyncio.AbstractEventLoop,
    site: Path,
    request: bytes | list[bytes],
    answers: list[bytes],
    *,
    draining: bool = False,
) -> tuple[Outcome, Outcome]:
    return (
        Wired(loop, site, fast=False, draining=draining).run(request, answers),
        Wired(loop, site, fast=True, draining=draining).run(request, answers),
    )


# --- the header tables ----------------------------------------------------------------


def test_request_header_kinds_match_the_proxy_table() -> None:
    for name, kind in REQUEST_HEADERS.items():
        for spelling in (name, name.title(), name.upper()):
            assert heads.request_kind(spelling) == kind, spelling
    for name in (b"accept", b"cookie", b"x-request-id", b"hostname", b"hos", b"ranges"):
        assert heads.request_kind(name) == H_PASS, name


def test_response_header_kinds_match_the_proxy_table() -> None:
    for name, kind in _RESPONSE_HEADERS.items():
        for spelling in (name, name.title(), name.upper()):
            assert heads.response_kind(spelling) == kind, spelling
    for name in (b"content-type", b"set-cookie", b"dates", b"serve"):
        assert heads.response_kind(name) == R_PASS, name


# --- requests -----------------------------------------------------------------------

SMALL = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
BROWSER = (
    b"GET /api/items?page=2 HTTP/1.1\r\nHost: example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: text/html,*/*;q=0.8\r\n"
    b"Accept-Encoding: gzip, br\r\nReferer: https://example.com/\r\nConnection: keep-alive\r\n"
    b"Cookie: a=1; b=2\r\nX-Forwarded-For: 10.0.0.1\r\nX-Real-IP: 6.6.6.6\r\n"
    b'If-None-Match: "x"\r\nRange: bytes=0-1\r\n\r\n'
)


@pytest.mark.parametrize("request_", [SMALL, BROWSER, SMALL.replace(b"GET", b"HEAD")])
def test_common_requests_take_the_fast_path_and_match(
    loop: asyncio.AbstractEventLoop, site: Path, request_: bytes
) -> None:
    assert heads.parse_request(request_, 0, MAX_HEADER) is not None
    slow, fast = both(loop, site, request_, [ANSWER])
    assert fast == slow
    assert fast.answered.startswith(b"HTTP/1.1 200 OK\r\n")
    assert fast.upstream_pooled


def test_llhttp_is_only_set_up_for_a_read_that_needs_it(
    loop: asyncio.AbstractEventLoop, site: Path
) -> None:
    # An idle keep-alive connection whose requests all took the fast path does not
    # hold an llhttp parser (about 0.5 KiB each); the first read that needs one makes it.
    wired = Wired(loop, site, fast=True)
    wired.run([SMALL, BROWSER], [ANSWER, ANSWER])
    assert wired.client.parser is None
    wired.run(b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n", [ANSWER])
    assert wired.client.parser is not None
    assert b"".join(wired.client_transport.written).count(b"HTTP/1.1 200 OK\r\n") == 3


def test_static_file_and_pipelined_requests_match(
    loop: asyncio.AbstractEventLoop, site: Path
) -> None:
    static = b"GET /static/a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
    posted = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
    pipeline = static + SMALL + posted + BROWSER + b"GET /x HTTP/1.1\r\nHo"
    slow, fast = both(loop, site, pipeline, [ANSWER] * 4)
    assert fast == slow
    assert fast.answered.count(b"HTTP/1.1 200 OK\r\n") == 4
    assert b"static\n" in fast.answered


def test_requests_behind_an_answer_that_closes_are_dropped_on_both_paths(
    loop: asyncio.AbstractEventLoop, site: Path
) -> None:
    # While draining, the answer to the static file closes the connection before
    # the requests pipelined behind it in the same read are looked at.
    static = b"GET /static/a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
    slow, fast = both(loop, site, static + SMALL + BROWSER, [ANSWER] * 2, draining=True)
    assert fast == slow
    assert fast.client_closed
    assert fast.answered.count(b"HTTP/1.1 ") == 1
    assert fast.sent == b""
    assert fast.waiting == 0


def test_a_head_split_across_reads_goes_to_llhttp_and_the_next_one_back(
    loop: asyncio.AbstractEventLoop, site: Path
) -> None:
    reads = [SMALL[:20], SMALL[20:] + BROWSER[:30], BROWSER[30:] + SMALL, SMALL]
    slow, fast = both(loop, site, reads, [ANSWER] * 4)
    assert fast == slow
    assert fast.answered.count(b"HTTP/1.1 200 OK\r\n") == 4
    assert fast.sent.count(b"GET /api/items?page=2 HTTP/1.1\r\n") == 1


@pytest.mark.parametrize(
    "request_",
    [
        b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nProxy-Connection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x \r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: \xc3\xa9\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
        b"GET /#f HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
        b"OPTIONS / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n",  # not complete yet
    ],
)
def test_unusual_requests_are_left_to_llhttp(
    loop: asyncio.AbstractEventLoop, site: Path, request_: bytes
) -> None:
    assert heads.parse_request(request_, 0, MAX_HEADER) is None
    slow, fast = both(loop, site, request_, [ANSWER])
    assert fast == slow


# Headers written without a space after the colon take fewer bytes on the wire
# than the size the limit is held against (name + value + 4 each): 80 of them fit
# in 1 KiB of wire and still count over it.
_NO_SPACE = b"".join(b"X-%02d:%s\r\n" % (i, b"v" * 5) for i in range(80))


@pytest.mark.parametrize(
    "request_",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * MAX_HEADER + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n" + _NO_SPACE + b"\r\n",
    ],
    ids=["long value", "counted, not wire bytes"],
)
def test_a_head_over_the_limit_is_left_to_llhttp(
    loop: asyncio.AbstractEventLoop, site: Path, request_: bytes
) -> None:
    assert heads.parse_request(request_, 0, MAX_HEADER) is None
    slow, fast = both(loop, site, request_, [ANSWER])
    assert fast == slow
    assert fast.answered.startswith(b"HTTP/1.1 431 ")


def test_the_no_space_case_fits_the_wire_but_not_the_count() -> None:
    request = b"GET / HTTP/1.1\r\nHost: x\r\n" + _NO_SPACE + b"\r\n"
    assert len(request) <= MAX_HEADER < len(b"/") + len(b"Hostx") + 4 + 80 * 13


def test_after_a_close_request_llhttp_reads_the_rest(
    loop: asyncio.AbstractEventLoop, site: Path
) -> None:
    closing = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    wired = Wired(loop, site, fast=True)
    wired.run(closing, [])
    assert not wired.client.fast
    slow, fast = both(loop, site, closing + SMALL, [ANSWER, ANSWER])
    assert fast == slow


@pytest.mark.parametrize("where", ["target", "name", "value", "value end"])
def test_every_byte_in_every_place_matches(
    loop: asyncio.AbstractEventLoop, site: Path, where: str
) -> None:
    taken = 0
    for code in range(256):
        byte = bytes((code,))
        if where == "target":
            request = b"GET /a" + byte + b"b HTTP/1.1\r\nHost: x\r\n\r\n"
        elif where == "name":
            request = b"GET / HTTP/1.1\r\nHost: x\r\nX-A" + byte + b"b: 1\r\n\r\n"
        elif where == "value":
            request = b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a" + byte + b"b\r\n\r\n"
        else:
            request = b"GET / HTTP/1.1\r\nHost: x\r\nX-A: ab" + byte + b"\r\n\r\n"
        taken += heads.parse_request(request, 0, MAX_HEADER) is not None
        slow, fast = both(loop, site, request, [ANSWER])
        assert fast == slow, byte
    assert taken >= 60  # the printable characters, at least, take the fast path


_NAMES = [
    *REQUEST_HEADERS,
    *[b"Accept", b"User-Agent", b"X-Id", b"cookie", b"Sec-Fetch-Mode", b"If-None-Match"] * 8,
    b"X Id",
    b"X-Id ",
    b"",
]
_VALUES = [b"x", b"keep-alive", b"Keep-Alive", b"close", b"chunked", b"5", b"a, b", b'"e"']
_PRINTABLE = st.binary(min_size=1, max_size=8).map(lambda b: bytes(0x21 + c % 94 for c in b))
# Mostly what the fast path takes, with a byte or a separator off now and then:
# most examples then land on either side of the line between _heads and llhttp.
_VALUE = st.one_of(st.sampled_from(_VALUES), *[_PRINTABLE] * 5, st.binary(min_size=1, max_size=4))


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from([b"GET"] * 12 + [b"HEAD"] * 4 + [b"POST", b"get", b"GET\t"]))
    target = b"/" + draw(st.one_of(_PRINTABLE, _PRINTABLE, _PRINTABLE, st.binary(max_size=3)))
    version = draw(st.sampled_from([b"HTTP/1.1"] * 16 + [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 "]))
    eol = b"\r\n"
    lines = [b"Host: " + draw(_PRINTABLE)] if draw(st.integers(0, 15)) else []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(_NAMES))
        sep = draw(st.sampled_from([b": "] * 12 + [b":", b":\t", b" : ", b":  "]))
        lines.append(name + sep + draw(_VALUE))
    if draw(st.integers(0, 9)) == 0:  # near max_header_size, on either side of it
        lines.append(b"X-Pad:" + b"p" * draw(st.integers(900, 1030)))
    if draw(st.integers(0, 19)) == 0:
        eol = draw(st.sampled_from([b"\n", b"\r", b"\r\r\n"]))
    head = method + b" " + target + b" " + version + eol + b"".join(line + eol for line in lines)
    return head + eol + draw(st.sampled_from([b"", b"", SMALL, b"GET"]))


def test_the_generated_requests_fall_on_both_sides() -> None:
    taken: list[bool] = []

    @settings(max_examples=300, database=None, derandomize=True)
    @given(request=requests())
    def sample(request: bytes) -> None:
        taken.append(heads.parse_request(request, 0, MAX_HEADER) is not None)

    sample()
    assert 0.1 <= sum(taken) / len(taken) <= 0.9


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests())
def test_any_request_matches(loop: asyncio.AbstractEventLoop, site: Path, request: bytes) -> None:
    slow, fast = both(loop, site, request, [ANSWER, ANSWER])
    assert fast == slow


# --- responses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "answer"),
    [
        (SMALL, ANSWER),
        (SMALL, ANSWER.replace(b"keep-alive", b"close")),
        (SMALL, ANSWER.replace(b"Connection: keep-alive", b"Proxy-Connection: close")),
        (SMALL, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        (SMALL, b"HTTP/1.1 503 \r\nServer: app\r\nContent-Length: 2\r\n\r\nno"),
        (SMALL.replace(b"GET", b"HEAD"), b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"),
        (SMALL, b"HTTP/1.1 200 OK\r\nContent-Length: 4097\r\n\r\n" + b"x" * 4096 + b"y"),
        (SMALL, b"HTTP/1.1 200 OK\r\nContent-Length: 65536\r\n\r\n" + bytes(range(256)) * 256),
    ],
    ids=["200", "close", "proxy-connection", "404", "503", "HEAD", "over the join limit", "64 KiB"],
)
def test_common_responses_take_the_fast_path_and_match(
    loop: asyncio.AbstractEventLoop, site: Path, request_: bytes, answer: bytes
) -> None:
    assert heads.parse_response(answer, request_.startswith(b"HEAD")) is not None
    slow, fast = both(loop, site, request_, [answer])
    assert fast == slow
    assert fast.answered.startswith(answer[:12])
    if not request_.startswith(b"HEAD"):
        assert fast.answered.endswith(answer[answer.index(b"\r\n\r\n") + 4 :])


@pytest.mark.parametrize(
    "answer",
    [
        ANSWER[:-1],  # the body is not all here yet
        ANSWER + b"HTTP/1.1 200 OK\r\n",  # bytes after the response
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\nuntil close",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n" + ANSWER,
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",
        b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nhi",
        b"HTTP/1.1 200 OK\r\nConnection: upgrade\r\nContent-Length: 2\r\n\r\nhi",
        b"HTTP/1.1 200 OK\r\nProxy-Connection: x\r\nContent-Length: 2\r\n\r\nhi",
        b"HTTP/1.1 200 OK\r\nX: a\nContent-Length: 2\r\n\r\nhi",
    ],
)
def test_unusual_responses_are_left_to_llhttp(
    loop: asyncio.AbstractEventLoop, site: Path, answer: bytes
) -> None:
    assert heads.parse_response(answer, False) is None
    slow, fast = both(loop, site, SMALL, [answer])
    assert fast == slow


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    status = draw(st.sampled_from([b"200 OK"] * 4 + [b"404 Not Found", b"500 ", b"204 x", b"2000"]))
    body = draw(st.binary(max_size=6))
    names = [*_RESPONSE_HEADERS, *[b"Content-Type", b"X-A", b"Set-Cookie"] * 3, b"Bad Name"]
    lines = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(names))
        value = draw(st.sampled_from([b"2", b"keep-alive", b"close", b"text/plain"]) | _PRINTABLE)
        lines.append(name + draw(st.sampled_from([b": ", b": ", b":", b": \t"])) + value + b"\r\n")
    if draw(st.integers(0, 4)):
        lines.append(b"Content-Length: %d\r\n" % (len(body) + draw(st.sampled_from([0] * 5 + [1]))))
    return b"HTTP/1.1 " + status + b"\r\n" + b"".join(lines) + b"\r\n" + body


def test_the_generated_responses_fall_on_both_sides() -> None:
    taken: list[bool] = []

    @settings(max_examples=300, database=None, derandomize=True)
    @given(answer=responses())
    def sample(answer: bytes) -> None:
        taken.append(heads.parse_response(answer, False) is not None)

    sample()
    assert 0.1 <= sum(taken) / len(taken) <= 0.9


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=responses(), head=st.booleans())
def test_any_response_matches(
    loop: asyncio.AbstractEventLoop, site: Path, answer: bytes, head: bool
) -> None:
    request = SMALL.replace(b"GET", b"HEAD") if head else SMALL
    slow, fast = both(loop, site, request, [answer])
    assert fast == slow
