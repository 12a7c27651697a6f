"""The client side: one ClientConnection per accepted socket, one Exchange per request.

Requests are parsed by llhttp (httptools) in strict mode, which already refuses
duplicate or invalid Content-Length, Content-Length with Transfer-Encoding,
bad chunk sizes, bare LF, obs-fold and invalid header names; this module adds
the checks llhttp leaves to the application (Host, Transfer-Encoding other than
chunked, HTTP version, request-target form, header and body size limits).
Any of them answers 4xx/5xx and closes the connection.

The common head (a GET or HEAD with no body, complete in one read) is parsed
in one call by the C module ``_heads``, which takes only a strict subset of
what llhttp accepts and hands everything else back to it (see _heads.c).

Pipelined requests are answered in order: while one Exchange is active, the
next complete request waits in ``queue`` and reading from the socket pauses,
so at most one socket read is buffered. Reading also pauses while an
upstream cannot take the request body fast enough (``pause_reading`` reasons
are a bit mask, so the reasons never undo each other).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from time import monotonic
from typing import TYPE_CHECKING, Final, cast

import httptools

from kanri.proxy import static
from kanri.proxy.errors import error_head_and_body, status_line
from kanri.proxy.exchange import (
    H_AE,
    H_CL,
    H_CONNECTION,
    H_DROP,
    H_EXPECT,
    H_HOST,
    H_IMS,
    H_INM,
    H_PASS,
    H_RANGE,
    H_REFERER,
    H_TE,
    H_UA,
    H_UPGRADE,
    H_XFF,
    REQUEST_HEADERS,
    REQUEST_SPELLINGS,
    Exchange,
)
from kanri.proxy.routing import RouteEntry, host_key
from kanri.proxy.state import WorkerState
from kanri.proxy.static import FileStream

if TYPE_CHECKING:
    from kanri.proxy._heads import RequestHead
    from kanri.proxy.upstream import UpstreamConnection

try:
    from kanri.proxy import _heads

    parse_request: Callable[[bytes, int, int], RequestHead | None] | None = _heads.parse_request
except ImportError:  # not compiled (KANRI_PURE=1, no C compiler): llhttp parses every head
    parse_request = None

# Why reading from the client is paused (bit mask).
PAUSE_PIPELINE: Final = 1  # a complete request waits behind the active one
PAUSE_UPSTREAM: Final = 2  # the upstream's write buffer is full
PAUSE_BUFFER: Final = 4  # body bytes wait for an upstream connection
PAUSE_UPGRADE: Final = 8  # an Upgrade request waits for the upstream's 101
PAUSE_BROKEN: Final = 16  # a bad request was seen: nothing after it is read

BODY_BUFFER_LIMIT: Final = 64 * 1024
WRITE_HIGH_WATER: Final = 64 * 1024

# What the connection does when its deadline passes.
DL_IDLE: Final = 0
DL_HEADER: Final = 1
DL_BODY: Final = 2
DL_SEND: Final = 3
DL_NONE: Final = 4

_CRLF: Final = b"\r\n"
_COLON: Final = b": "


class _RefuseError(Exception):
    """Raised inside a parser callback to stop parsing and answer ``status``."""

    def __init__(self, status: int) -> None:
        self.status = status


class ClientConnection(asyncio.Protocol):
    """HTTP/1.1 server side of one client connection."""

    __slots__ = (
        "active",
        "closed",
        "deadline",
        "dl_kind",
        "eof",
        "ex",
        "fast",
        "forwarded",
        "host_cache",
        "hsize",
        "parser",
        "paused",
        "peer",
        "queue",
        "state",
        "streaming",
        "transport",
        "tunnel",
        "write_paused",
    )

    def __init__(self, state: WorkerState) -> None:
        self.state = state
        self.transport: asyncio.Transport | None = None
        # Made when a read first needs llhttp: 0.5 KiB that a connection whose
        # requests all take the fast path never pays.
        self.parser: httptools.HttpRequestParser | None = None
        self.peer = "-"
        self.ex: Exchange | None = None  # the request being received
        self.active: Exchange | None = None  # the request being answered
        # A list, not a deque: an empty deque costs 760 bytes per idle connection and
        # at most a few requests ever wait here (reading pauses behind the first).
        self.queue: list[Exchange] = []
        self.deadline = 0.0
        self.dl_kind = DL_NONE
        self.hsize = 0
        self.paused = 0
        self.write_paused = False
        self.closed = False
        self.tunnel: UpstreamConnection | None = None
        self.streaming: FileStream | None = None
        self.eof = False
        # Heads may be parsed by _heads while llhttp is between messages and has seen
        # nothing that changes how it reads the next one (close, upgrade, an error).
        self.fast = parse_request is not None
        # Per connection, not per request: the forwarding headers and the last Host seen.
        self.forwarded = b"X-Forwarded-For: -\r\nX-Real-IP: -\r\nX-Forwarded-Proto: http\r\n"
        self.host_cache: tuple[bytes | None, bytes] = (None, b"")

    # --- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport = transport
        state = self.state
        counters = state.counters
        if counters.connections >= state.config.max_connections or state.draining:
            transport.abort()
            self.closed = True
            return
        counters.connections += 1
        state.clients.add(self)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = peer[0]
            ip = self.peer.encode()
            self.forwarded = (
                b"X-Forwarded-For: %s\r\nX-Real-IP: %s\r\nX-Forwarded-Proto: http\r\n"
                % (
                    ip,
                    ip,
                )
            )
        transport.set_write_buffer_limits(WRITE_HIGH_WATER)
        self._set_deadline(DL_HEADER, state.config.client_header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
        state = self.state
        if self in state.clients:
            state.clients.discard(self)
            state.counters.connections -= 1
            if state.draining and not state.clients:
                state.all_closed.set()
        if self.streaming is not None:
            self.streaming.stop()
        tunnel = self.tunnel
        if tunnel is not None:
            self.tunnel = None
            tunnel.close()
        for ex in (self.active, *self.queue):
            if ex is not None:
                if ex.upstream is not None:
                    ex.upstream.client_gone(ex)
                self._log(ex)
        self.active = None
        self.queue.clear()

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.write_raw(data)
            return
        if self.fast and self.ex is None and not self.paused:
            data = self._parse_fast(data)
            if not data:
                return
        parser = self.parser
        if parser is None:
            parser = self.parser = httptools.HttpRequestParser(self)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgrade_requested(data[exc.args[0] :])
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            status = cause.status if isinstance(cause, _RefuseError) else 400
            self._refuse(status)

    def eof_received(self) -> bool | None:
        # A half-closed client still gets the answers to what it sent.
        self.eof = True
        if self.tunnel is not None:
            self.tunnel.close()
            return False
        return self.active is not None or bool(self.queue)

    def pause_writing(self) -> None:
        self.write_paused = True
        self._set_deadline(DL_SEND, self.state.config.send_timeout)
        ex = self.active
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.pause_reading()
        elif ex is not None and ex.upstream is not None:
            ex.upstream.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.dl_kind == DL_SEND:
            self.deadline = 0.0
            self.dl_kind = DL_NONE
        tunnel = self.tunnel
        ex = self.active
        if tunnel is not None:
            tunnel.resume_reading()
        elif self.streaming is not None:
            self.streaming.wake()
        elif ex is not None and ex.upstream is not None:
            ex.upstream.resume_reading()

    # --- the fast path: whole heads from _heads ---------------------------------

    def _parse_fast(self, data: bytes) -> bytes:
        """Take the complete common requests at the start of ``data``; return the rest."""
        assert parse_request is not None
        max_head = self.state.max_header
        pos = 0
        while True:
            head = parse_request(data, pos, max_head)
            if head is None:
                return data[pos:] if pos else data
            pos = head[0]
            self._take(head)
            if self.closed or self.paused & PAUSE_BROKEN or pos == len(data):
                return b""

    def _take(self, head: RequestHead) -> None:
        """A request from _heads: what the callbacks below do for one without a body."""
        ex = Exchange(self, self.state.clock.now)
        ex.method = head[1]
        ex.url = head[2]
        ex.host = head[3]
        ex.host_count = 1
        ex.fwd_headers.append(head[4])
        ex.xff = head[5]
        ex.referer = head[6]
        ex.user_agent = head[7]
        ex.accept_encoding = head[8]
        ex.if_none_match = head[9]
        ex.if_modified_since = head[10]
        ex.range = head[11]
        ex.if_range = head[12]
        ex.request_done = True
        # on_message_begin would set the header deadline, on_headers_complete clear it.
        if self.active is None or self.dl_kind <= DL_HEADER:
            self.deadline = 0.0
            self.dl_kind = DL_NONE
        self._submit(ex)

    # --- parser callbacks ---------------------------------------------------

    def on_message_begin(self) -> None:
        state = self.state
        self.ex = Exchange(self, state.clock.now)
        self.hsize = 0
        if self.dl_kind == DL_IDLE or self.active is None:
            self._set_deadline(DL_HEADER, state.config.client_header_timeout)

    def on_url(self, url: bytes) -> None:
        self.hsize += len(url)
        if self.hsize > self.state.max_header:
            raise _RefuseError(431 if len(url) < self.state.max_header else 414)
        ex = self.ex
        assert ex is not None
        ex.url = url if not ex.url else ex.url + url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.hsize += len(name) + len(value) + 4
        if self.hsize > self.state.max_header:
            raise _RefuseError(431)
        ex = self.ex
        assert ex is not None
        kind = REQUEST_SPELLINGS.get(name)
        if kind is None:
            kind = REQUEST_HEADERS.get(name.lower(), H_PASS)
        if kind == H_PASS:
            ex.fwd_headers += (name, _COLON, value, _CRLF)
            return
        if kind == H_HOST:
            ex.host = value
            ex.host_count += 1
            ex.fwd_headers += (name, _COLON, value, _CRLF)
        elif kind == H_CL:
            ex.content_length = int(value)  # llhttp has checked it is one decimal number
            ex.fwd_headers += (name, _COLON, value, _CRLF)
        elif kind == H_TE:
            if value.strip().lower() != b"chunked":
                raise _RefuseError(501)
            ex.chunked = True
        elif kind == H_CONNECTION:
            for item in value.lower().split(b","):
                token = item.strip()
                if token not in (b"close", b"keep-alive", b"upgrade", b""):
                    if ex.conn_tokens is None:
                        ex.conn_tokens = []
                    ex.conn_tokens.append(token)
        elif kind == H_XFF:
            ex.xff = value if ex.xff is None else ex.xff + b", " + value
        elif kind == H_EXPECT:
            if value.strip().lower() == b"100-continue":
                ex.expect_continue = True
        elif kind == H_UPGRADE:
            ex.upgrade_value = value
        elif kind == H_DROP:
            return
        else:
            ex.fwd_headers += (name, _COLON, value, _CRLF)
            if kind == H_REFERER:
                ex.referer = value
            elif kind == H_UA:
                ex.user_agent = value
            elif kind == H_AE:
                ex.accept_encoding = value
            elif kind == H_INM:
                ex.if_none_match = value
            elif kind == H_IMS:
                ex.if_modified_since = value
            elif kind == H_RANGE:
                ex.range = value
            else:
                ex.if_range = value

    def on_headers_complete(self) -> None:
        ex = self.ex
        parser = self.parser
        assert ex is not None and parser is not None  # llhttp is calling back
        ex.method = parser.get_method()
        version = parser.get_http_version()
        ex.version = b"1.1" if version == "1.1" else version.encode("ascii")
        ex.keep_alive = parser.should_keep_alive()
        ex.upgrade = parser.should_upgrade()
        if not ex.keep_alive or ex.upgrade:
            self.fast = False  # llhttp now reads what follows differently, or not at all
        state = self.state
        if version not in ("1.1", "1.0"):
            ex.error = 505 if version[0] >= "2" else 400
        elif ex.method == b"CONNECT":
            ex.error = 405
        elif ex.host_count > 1 or (ex.host_count == 0 and version == "1.1"):
            ex.error = 400
        elif not ex.url.startswith(b"/") and not (ex.url == b"*" and ex.method == b"OPTIONS"):
            ex.error = 400  # absolute-form and authority-form targets are not proxied
        elif state.max_body and (ex.content_length or 0) > state.max_body:
            ex.error = 413
        if ex.error:
            ex.close = True
            self._pause(PAUSE_BROKEN)
        if ex.has_body:
            self._set_deadline(DL_BODY, state.config.client_body_timeout)
        elif self.dl_kind == DL_HEADER:
            self.deadline = 0.0
            self.dl_kind = DL_NONE
        self._submit(ex)

    def on_body(self, body: bytes) -> None:
        ex = self.ex
        assert ex is not None
        ex.body_received += len(body)
        state = self.state
        if state.max_body and ex.body_received > state.max_body:
            raise _RefuseError(413)
        self.deadline = state.clock.now + state.config.client_body_timeout
        if ex.sink:
            return
        up = ex.upstream
        if up is not None and up.sending:
            up.send_body(body)
        else:
            ex.body_buf.append(body)
            ex.buffered += len(body)
            if ex.buffered > BODY_BUFFER_LIMIT:
                self._pause(PAUSE_BUFFER)

    def on_message_complete(self) -> None:
        ex = self.ex
        assert ex is not None
        self.ex = None
        ex.request_done = True
        if self.dl_kind == DL_BODY:
            self.deadline = 0.0
            self.dl_kind = DL_NONE
        if ex.upgrade:
            return
        up = ex.upstream
        if up is not None and up.sending:
            up.end_body()
        elif ex.response_done and ex is self.active:
            self._next()

    # --- answering ------------------------------------------------------------

    def _submit(self, ex: Exchange) -> None:
        if self.closed:
            # The answer before it closed the connection (while draining, say), and
            # llhttp still reads the rest of that read: never start it, as nginx would not.
            return
        if self.active is None:
            self.active = ex
            self._start(ex)
        else:
            self.queue.append(ex)
            self._pause(PAUSE_PIPELINE)

    def _start(self, ex: Exchange) -> None:
        state = self.state
        state.counters.requests += 1
        if ex.error:
            self.send_error(ex, ex.error)
            return
        path, query = ex.path_and_query()
        host = ex.host
        cached = self.host_cache
        if cached[0] != host:
            cached = self.host_cache = (host, host_key(host))
        entry = state.table.match(cached[1], path)
        if entry is None:
            self.send_error(ex, 404)
        elif entry.app is not None:
            if ex.expect_continue and not ex.request_done:
                self.write(ex, b"HTTP/1.1 100 Continue\r\n\r\n")
            state.upstreams.forward(ex, entry)
        else:
            self._serve_static(ex, entry, path, query)

    def _serve_static(self, ex: Exchange, entry: RouteEntry, path: bytes, query: bytes) -> None:
        ex.sink = True
        if ex.upgrade:
            ex.close = True
        # A plain GET or HEAD of a small file answered within the last second is
        # answered again from its finished head and body: one lookup, one write.
        key = None
        if ex.range is None and ex.if_none_match is None and ex.if_modified_since is None:
            key = (path, ex.method, ex.accept_encoding)
            hit = entry.answers.get(key)
            if hit is not None and hit[0] > monotonic():
                ex.status = 200
                ex.response_started = True
                self.write(ex, self._head_tail(ex, hit[1], hit[2]))
                self.response_done(ex)
                return
        answer = static.serve(
            entry,
            static.Request(
                ex.method,
                path,
                query,
                ex.accept_encoding,
                ex.if_none_match,
                ex.if_modified_since,
                ex.range,
                ex.if_range,
            ),
        )
        status = answer.status
        if status >= 400 and not answer.headers:
            self.send_error(ex, status)
            return
        ex.status = status
        ex.response_started = True
        head = status_line(status) + answer.headers
        if answer.fd < 0:
            body = answer.body if ex.method != b"HEAD" else b""
            if key is not None and status == 200 and len(body) <= static.SMALL_BODY_CACHE:
                answers = entry.answers
                if len(answers) >= static.CACHE_ENTRIES:
                    answers.clear()
                answers[key] = (answer.expires, head, body)
            self.write(ex, self._head_tail(ex, head, body))
            self.response_done(ex)
            return
        self.write(ex, self._head_tail(ex, head))
        self.streaming = FileStream(self, ex, answer.fd, answer.offset, answer.length)
        self.streaming.wake()

    def _head_tail(self, ex: Exchange, head: bytes, body: bytes = b"") -> bytes:
        """Complete a response head (Server, Date, Connection, blank line), then ``body``."""
        state = self.state
        if not ex.keep_alive or state.draining or (ex.sink and ex.expect_continue):
            ex.close = True
        conn = ex.connection_line()
        return b"".join((head, state.server_line, state.clock.date_line, conn, _CRLF, body))

    def send_error(self, ex: Exchange, status: int) -> None:
        """Answer ``status`` with a small plain body (the request must not have been answered)."""
        if ex.response_started:
            self.abort()
            return
        ex.status = status
        ex.response_started = True
        ex.sink = True
        if status in (400, 408, 413, 414, 431, 501, 505) or not ex.request_done:
            ex.close = True
        if status >= 500:
            self.state.counters.responses_5xx += 1
        head, body = error_head_and_body(status)
        head = self._head_tail(ex, head)
        self.write(ex, head if ex.method == b"HEAD" else head + body)
        self.response_done(ex)

    def write_raw(self, data: bytes) -> None:
        """Tunnel bytes from the upstream, unchanged."""
        transport = self.transport
        if transport is not None and not self.closed:
            transport.write(data)

    def write(self, ex: Exchange, data: bytes) -> None:
        """Send response bytes of ``ex`` (the upstream side calls this)."""
        ex.bytes_out += len(data)
        transport = self.transport
        if transport is not None and not self.closed:
            transport.write(data)

    def write_parts(self, ex: Exchange, parts: Sequence[bytes | memoryview]) -> None:
        """Send response bytes of ``ex`` in parts, in order, in one writev: none is copied."""
        for part in parts:
            ex.bytes_out += len(part)
        transport = self.transport
        if transport is not None and not self.closed:
            transport.writelines(parts)

    def response_done(self, ex: Exchange) -> None:
        """The whole response of ``ex`` was handed to the transport."""
        ex.response_done = True
        self._log(ex)
        if self.closed:
            return
        if ex.close or self.state.draining:
            self.close()
        elif ex.request_done:
            self._next()
        else:
            ex.sink = True  # the upstream answered early; read and drop the rest of the body

    def _next(self) -> None:
        self.active = None
        if self.closed:
            return
        self._resume(PAUSE_UPSTREAM)
        if self.queue:
            ex = self.queue.pop(0)
            if not self.queue:
                self._resume(PAUSE_PIPELINE)
            self.active = ex
            self._start(ex)
        elif self.eof:
            self.close()
        elif self.ex is None:
            self._set_deadline(DL_IDLE, self.state.config.keepalive_timeout)
            self._resume(PAUSE_BUFFER)

    def _log(self, ex: Exchange) -> None:
        state = self.state
        state.counters.bytes_out += ex.bytes_out
        log = state.access_log
        if log is not None and ex.method:
            log.records.append(
                (
                    self.peer,
                    ex.start + state.clock.wall_offset,
                    ex.method,
                    ex.url,
                    ex.version,
                    ex.status or 499,
                    ex.bytes_out,
                    ex.referer,
                    ex.user_agent,
                    state.clock.now - ex.start,
                    ex.upstream_key,
                )
            )
        ex.method = b""  # logged once

    # --- failures, timeouts, flow control ---------------------------------------

    def _refuse(self, status: int) -> None:
        """The parser stopped on a bad request: answer it in turn, then close."""
        self.fast = False
        self._pause(PAUSE_BROKEN)
        ex = self.ex
        self.ex = None
        if ex is None:
            ex = Exchange(self, self.state.clock.now)
            ex.method = b"-"
        ex.error = status
        ex.close = True
        ex.request_done = True
        if ex is self.active:
            if ex.upstream is not None:
                ex.upstream.client_gone(ex)
                ex.upstream = None
            self.send_error(ex, status)
        elif ex not in self.queue:
            self._submit(ex)

    def on_deadline(self) -> None:
        kind = self.dl_kind
        self.dl_kind = DL_NONE
        ex = self.active
        if kind in (DL_HEADER, DL_BODY) and (ex is None or not ex.response_started):
            if ex is None:
                ex = self.ex
                if ex is None:  # nothing of a request arrived: close quietly, as nginx does
                    self.close()
                    return
                self.ex = None
                self.active = ex
            if ex.upstream is not None:
                ex.upstream.client_gone(ex)
                ex.upstream = None
            if not ex.method:
                ex.method = b"-"
            ex.request_done = True
            self._pause(PAUSE_BROKEN)
            self.send_error(ex, 408)
            return
        self.abort()

    def _set_deadline(self, kind: int, timeout: float) -> None:
        self.dl_kind = kind
        self.deadline = self.state.clock.now + timeout if timeout > 0 else 0.0

    def _pause(self, reason: int) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused |= reason

    def _resume(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def pause_for_upstream(self) -> None:
        self._pause(PAUSE_UPSTREAM)

    def resume_for_upstream(self) -> None:
        self._resume(PAUSE_UPSTREAM)

    def body_flushed(self, ex: Exchange) -> None:
        """The buffered body of ``ex`` went to its upstream."""
        ex.body_buf = []
        ex.buffered = 0
        self._resume(PAUSE_BUFFER)

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection now: a response cannot be completed."""
        if self.transport is not None:
            self.closed = True
            self.transport.abort()

    def close_if_idle(self) -> None:
        """Used when draining: close a connection that has no request in progress."""
        if self.active is None and self.ex is None and self.tunnel is None:
            self.close()

    # --- upgrade (WebSocket and friends) ------------------------------------

    def _upgrade_requested(self, early: bytes) -> None:
        ex = self.active
        if ex is None or not ex.upgrade or ex.response_started:
            # Answered locally (404, static, error): nothing after the head is HTTP.
            self._pause(PAUSE_BROKEN)
            if ex is not None:
                ex.close = True
                if ex.response_done:
                    self.close()
            return
        ex.tunnel_early = early
        self._pause(PAUSE_UPGRADE)

    def start_tunnel(self, up: UpstreamConnection, ex: Exchange) -> None:
        """The upstream answered 101: from now on bytes flow unchanged both ways."""
        self.tunnel = up
        ex.response_done = True
        self._log(ex)
        self.deadline = 0.0
        self.dl_kind = DL_NONE
        if ex.tunnel_early:
            up.write_raw(ex.tunnel_early)
            ex.tunnel_early = b""
        self.paused = 0
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()
