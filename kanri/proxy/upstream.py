"""The upstream side: sending a request to an instance and relaying its response.

UpstreamSet turns each snapshot into Pools and Balancers (see balance.py);
pools survive snapshots for instances that stay, and the idle connections of
instances that leave are closed when the snapshot is applied, before the
daemon gets its ack. UpstreamConnection carries one exchange at a time,
rebuilding the response head (hop-by-hop headers dropped, Server and Date
replaced) and re-chunking bodies of unknown length for HTTP/1.1 clients.
A whole Content-Length response in one read is parsed in one call by the C
module ``_heads``; anything else goes to llhttp (see _heads.c).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, cast

import httptools

from kanri.proxy.balance import Balancer, Pool, probe
from kanri.proxy.errors import status_line
from kanri.proxy.exchange import JOIN_LIMIT, spellings
from kanri.proxy.snapshot import Snapshot

if TYPE_CHECKING:
    from kanri.proxy._heads import ResponseHead
    from kanri.proxy.exchange import Exchange
    from kanri.proxy.http import ClientConnection
    from kanri.proxy.routing import RouteEntry
    from kanri.proxy.state import WorkerState

try:
    from kanri.proxy import _heads

    parse_response: Callable[[bytes, bool], ResponseHead | None] | None = _heads.parse_response
except ImportError:  # not compiled: llhttp parses every response
    parse_response = None

_CRLF: Final = b"\r\n"
_COLON: Final = b": "
_CHUNK_END: Final = b"0\r\n\r\n"

REFUSED_RETRY_WINDOW: Final = 2.0
"""How long a request keeps trying when every instance refuses its connection.

The supervisor says these instances are ready, so a refusal is momentary: an app
whose small listen backlog (Python's http.server keeps 5) overflows when a new
instance gets its first burst of connections, or a listener being reopened.
Nothing was sent, so trying again is safe for any method; nginx answers 502."""
REFUSED_RETRY_FIRST: Final = 0.01
REFUSED_RETRY_MAX: Final = 0.25

# Response headers the proxy replaces or drops; the rest pass unchanged.
R_DROP: Final = 0
R_CL: Final = 1
R_TE: Final = 2
R_UPGRADE: Final = 3
_RESPONSE_HEADERS: Final[dict[bytes, int]] = {
    b"connection": R_DROP,
    b"keep-alive": R_DROP,
    b"proxy-connection": R_DROP,
    b"proxy-authenticate": R_DROP,
    b"te": R_DROP,
    b"trailer": R_DROP,
    b"server": R_DROP,
    b"date": R_DROP,
    b"content-length": R_CL,
    b"transfer-encoding": R_TE,
    b"upgrade": R_UPGRADE,
}
R_PASS: Final = -1
_RESPONSE_SPELLINGS: Final = spellings(
    _RESPONSE_HEADERS,
    (
        b"accept-ranges",
        b"cache-control",
        b"content-encoding",
        b"content-type",
        b"etag",
        b"expires",
        b"last-modified",
        b"location",
        b"set-cookie",
        b"vary",
        b"x-powered-by",
    ),
    R_PASS,
)


class UpstreamSet:
    """Pools and balancers of one worker, rebuilt from each snapshot."""

    def __init__(self, state: WorkerState) -> None:
        self.state = state
        self.pools: dict[str, Pool] = {}
        self.apps: dict[str, Balancer] = {}
        # Pools of instances that left the snapshot with requests still in flight.
        self.retired: dict[str, Pool] = {}
        # Resolved by the next snapshot: requests held for an app with no ready instance.
        self._next_snapshot: asyncio.Future[None] | None = None

    def apply(self, snapshot: Snapshot) -> None:
        old = self.pools
        pools: dict[str, Pool] = {}
        apps: dict[str, Balancer] = {}
        for name, target in snapshot.apps.items():
            members = []
            for upstream in target.upstreams:
                pool = old.get(upstream.key)
                if pool is None or pool.upstream != upstream:
                    pool = Pool(upstream)
                pools[upstream.key] = pool
                members.append(pool)
            apps[name] = Balancer(target, tuple(members))
        for key, pool in old.items():
            if pools.get(key) is not pool:
                pool.removed = True
                pool.close_idle()
                if pool.active:
                    self.retired[key] = pool
        self.pools = pools
        self.apps = apps
        waiting, self._next_snapshot = self._next_snapshot, None
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    def inflight(self, key: str) -> int:
        """Requests (and tunnels) in flight on the instance ``key``, in or out of the snapshot."""
        for gone in [k for k, p in self.retired.items() if not p.active]:
            del self.retired[gone]
        count = 0
        for pool in (self.pools.get(key), self.retired.get(key)):
            if pool is not None:
                count += pool.active
        return count

    def forward(self, ex: Exchange, entry: RouteEntry) -> None:
        """Send ``ex`` to an instance of the route's app, or answer 503."""
        assert entry.app is not None
        balancer = self.apps.get(entry.app)
        if balancer is None or not balancer.pools:
            if balancer is not None and balancer.target.coming and self.state.config.queue_timeout:
                self.state.spawn(self._hold(ex, entry.app, entry.upstream_path(ex.url), 503))
            else:
                ex.conn.send_error(ex, 503)
            return
        self._attempt(ex, balancer, entry.upstream_path(ex.url))

    async def _hold(self, ex: Exchange, app: str, target: bytes, failure: int) -> None:
        """Wait for a snapshot with an instance of ``app`` that ``ex`` has not tried
        (one that is starting or restarting), at most ``queue_timeout``, and send
        ``ex`` there; answer ``failure`` if none comes (a new instance that is ready
        in time answers it, instead of a 503 or 502 from a restart)."""
        loop = self.state.loop
        deadline = loop.time() + self.state.config.queue_timeout
        while True:
            balancer = self.apps.get(app)
            if balancer is not None and any(p not in ex.tried for p in balancer.pools):
                self._attempt(ex, balancer, target)
                return
            remaining = deadline - loop.time()
            # Tried instances still in the snapshot may be on their way out (a crash
            # the daemon is about to publish): wait for the next snapshot then too.
            waiting = balancer is not None and (balancer.target.coming or balancer.pools)
            if not waiting or remaining <= 0:
                ex.conn.send_error(ex, failure)
                return
            if self._next_snapshot is None:
                self._next_snapshot = loop.create_future()
            await asyncio.wait((self._next_snapshot,), timeout=remaining)
            if ex.conn.closed or ex.response_started:
                return

    def _attempt(self, ex: Exchange, balancer: Balancer, target: bytes) -> None:
        state = self.state
        pool = balancer.pick(state.clock.now, ex.tried)
        if pool is None:
            if not ex.sent and ex.last_failure == 502 and self._wait_for_refusing(ex):
                state.spawn(self._retry_round(ex, balancer.target.name, target))
            elif ex.sent and not ex.held:
                # Every instance failed it mid-way (a crash, say; _fail replays only
                # requests that are safe to send again): once, wait for a new one.
                ex.held = True
                state.spawn(self._hold(ex, balancer.target.name, target, ex.last_failure))
            else:
                ex.conn.send_error(ex, ex.last_failure)
            return
        ex.tried += (pool,)
        ex.upstream_key = pool.key
        conn = pool.take()
        if conn is not None:
            conn.attach(ex, balancer, target)
        else:
            state.spawn(self._connect(ex, balancer, pool, target))

    async def _connect(self, ex: Exchange, balancer: Balancer, pool: Pool, target: bytes) -> None:
        state = self.state
        upstream = pool.upstream
        try:
            async with asyncio.timeout(state.config.connect_timeout):
                _, conn = await state.loop.create_connection(
                    lambda: UpstreamConnection(state, pool), upstream.host, upstream.port
                )
        except Exception as exc:  # any failure to connect is a 502/504, never a crash
            pool.fail(state)
            ex.last_failure = 504 if isinstance(exc, TimeoutError) else 502
            if not ex.conn.closed and not ex.response_started:
                self._attempt(ex, balancer, target)
            return
        if ex.conn.closed or ex.response_started:
            pool.release(conn, state)
            return
        conn.attach(ex, balancer, target)

    def _wait_for_refusing(self, ex: Exchange) -> bool:
        """Every instance refused ``ex``: True if it may wait and try them all again."""
        now = self.state.loop.time()  # not the sweeper's clock: this window is short
        if ex.retry_round == 0:
            ex.retry_until = now + REFUSED_RETRY_WINDOW
        return now < ex.retry_until

    async def _retry_round(self, ex: Exchange, app: str, target: bytes) -> None:
        """Wait, then try every instance of ``app`` again (as the snapshot has them then)."""
        while True:
            await asyncio.sleep(min(REFUSED_RETRY_MAX, REFUSED_RETRY_FIRST * 2**ex.retry_round))
            ex.retry_round += 1
            if ex.conn.closed or ex.response_started:
                return
            balancer = self.apps.get(app)
            if balancer is not None and balancer.pools:
                ex.tried = ()
                self._attempt(ex, balancer, target)
                return
            # The instances that refused have left the snapshot (crashed, say): wait
            # for the restarted ones, then answer 503.
            if balancer is not None and balancer.target.coming:
                ex.tried = ()
                await self._hold(ex, app, target, 503)
                return
            if self.state.loop.time() >= ex.retry_until:
                ex.conn.send_error(ex, 503)
                return

    def retry(self, ex: Exchange, balancer: Balancer, target: bytes) -> None:
        if ex.conn.closed or ex.response_started:
            return
        self._attempt(ex, balancer, target)

    async def check_health(self) -> None:
        """Active health checks: GET the app's health path on every instance, forever.

        Each instance is probed on its own: one that hangs (up to the probe's
        time limit) delays no other instance's check.
        """
        state = self.state
        while True:
            await asyncio.sleep(0.5)
            now = state.loop.time()
            for balancer in list(self.apps.values()):
                path = balancer.target.health
                if path is None:
                    continue
                for pool in balancer.pools:
                    if pool.next_check <= now and not pool.checking:
                        pool.next_check = now + balancer.target.health_interval
                        pool.checking = True
                        state.spawn(self._check(pool, path))

    async def _check(self, pool: Pool, path: str) -> None:
        try:
            pool.failed_check = not await probe(pool.upstream, path, self.state)
        finally:
            pool.checking = False


class UpstreamConnection(asyncio.Protocol):
    """One connection to an upstream instance; carries one exchange at a time."""

    __slots__ = (
        "balancer",
        "chunked_in",
        "client",
        "closed",
        "deadline",
        "ex",
        "fast",
        "got_bytes",
        "has_length",
        "holding",
        "message_done",
        "no_body",
        "out",
        "parser",
        "pool",
        "read_paused",
        "rechunk",
        "reset_parser",
        "reusable",
        "sending",
        "skip_info",
        "state",
        "target",
        "transport",
        "tunnel",
        "upgrade_value",
    )

    def __init__(self, state: WorkerState, pool: Pool) -> None:
        self.state = state
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.fast = parse_response is not None  # whole responses may be parsed by _heads
        self.closed = False
        self.deadline = 0.0
        self.ex: Exchange | None = None
        self.client: ClientConnection | None = None
        self.balancer: Balancer | None = None
        self.target = b""
        self.sending = False  # request body bytes may be written now
        self.tunnel = False
        self.read_paused = False
        self.out: list[bytes] = []
        self._reset_response()

    def _reset_response(self) -> None:
        self.out.clear()
        self.got_bytes = False
        self.has_length = False
        self.holding = False  # a response head kept back until its body begins
        self.chunked_in = False
        self.rechunk = False
        self.no_body = False
        self.skip_info = False
        self.reset_parser = False
        self.message_done = False
        self.reusable = False
        self.upgrade_value: bytes | None = None

    # --- request ---------------------------------------------------------------

    def attach(self, ex: Exchange, balancer: Balancer, target: bytes) -> None:
        """Start sending ``ex``: head, then whatever body has arrived so far."""
        state = self.state
        self.ex = ex
        self.client = ex.conn
        self.balancer = balancer
        self.target = target
        self.pool.active += 1
        ex.upstream = self
        self._reset_response()
        self.deadline = state.clock.now + state.read_timeout
        client = ex.conn
        headers = ex.fwd_headers
        if ex.conn_tokens:
            headers = _without(headers, ex.conn_tokens)
        parts = [ex.method, b" ", target, b" HTTP/1.1\r\n", *headers]
        if ex.xff is None:
            parts.append(client.forwarded)
        else:
            parts += (b"X-Forwarded-For: ", ex.xff, b", ", client.forwarded[17:])
        if ex.host is not None:
            parts += (b"X-Forwarded-Host: ", ex.host, _CRLF)
        if ex.upgrade and ex.upgrade_value is not None:
            parts += (b"Connection: upgrade\r\nUpgrade: ", ex.upgrade_value, _CRLF)
        elif ex.chunked:
            parts.append(b"Transfer-Encoding: chunked\r\n")
        parts.append(_CRLF)
        if ex.body_buf:
            if ex.chunked:
                for chunk in ex.body_buf:
                    parts += (b"%x\r\n" % len(chunk), chunk, _CRLF)
            else:
                parts += ex.body_buf
            client.body_flushed(ex)
        if ex.request_done and ex.chunked:
            parts.append(_CHUNK_END)
        self.sending = not ex.request_done and not ex.upgrade
        assert self.transport is not None
        self.transport.write(b"".join(parts))

    def send_body(self, body: bytes) -> None:
        ex = self.ex
        assert ex is not None and self.transport is not None
        if ex.chunked:
            self.transport.write(b"%x\r\n%b\r\n" % (len(body), body))
        else:
            self.transport.write(body)
        self.deadline = self.state.clock.now + self.state.read_timeout

    def end_body(self) -> None:
        self.sending = False
        ex = self.ex
        if ex is not None and ex.chunked and self.transport is not None:
            self.transport.write(_CHUNK_END)
        if self.message_done:
            self._finish()

    def write_raw(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport = transport
        transport.set_write_buffer_limits(64 * 1024)
        self.state.upstream_conns.add(self)

    def data_received(self, data: bytes) -> None:
        client = self.client
        if self.tunnel:
            if client is not None:
                client.write_raw(data)
            return
        ex = self.ex
        if ex is None or client is None:  # bytes on an idle connection: it is unusable
            self.close()
            return
        if self.fast and not self.got_bytes:
            assert parse_response is not None
            head = parse_response(data, ex.method == b"HEAD")
            if head is not None:
                self._take(ex, client, head, data)
                return
        self.got_bytes = True
        self.deadline = self.state.clock.now + self.state.read_timeout
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            rest = data[exc.args[0] :]
            self._flush(ex, client)
            self._start_tunnel(ex, client, rest)
            return
        except httptools.HttpParserError:
            if not self.holding:
                self._flush(ex, client)
            self._fail(ex, bad_response=True)
            return
        out = self.out
        if out and not self.holding:  # _flush, one-part case inlined: once per response
            if len(out) == 1:
                client.write(ex, out[0])
                out.clear()
            else:
                self._flush(ex, client)
        if self.message_done and not self.sending:
            self._finish()

    def _flush(self, ex: Exchange, client: ClientConnection) -> None:
        out = self.out
        if not out:
            return
        if len(out) == 1:
            client.write(ex, out[0])
        elif sum(map(len, out)) <= JOIN_LIMIT:
            client.write(ex, b"".join(out))
        else:  # big bodies leave beside their head, never copied
            client.write_parts(ex, out)
        out.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.state.upstream_conns.discard(self)
        ex = self.ex
        client = self.client
        if self.tunnel:
            self.tunnel = False
            self._detach()
            if client is not None:
                client.close()
            return
        if ex is None or client is None:
            return
        if self.message_done:  # answered in full, then closed while the body was still coming
            self.sending = False
            self._finish()
            return
        if self.response_open_ended():
            if self.rechunk:
                self.out.append(_CHUNK_END)
            self._flush(ex, client)
            self.message_done = True
            self._finish()
        else:
            self._fail(ex, bad_response=False)

    def response_open_ended(self) -> bool:
        """True if the response so far is complete when the upstream closes."""
        ex = self.ex
        return (
            ex is not None
            and ex.response_started
            and not self.message_done
            and not self.has_length
            and not self.chunked_in
            and not self.no_body
        )

    def pause_writing(self) -> None:
        if self.tunnel or self.sending:
            client = self.client
            if client is not None and client.transport is not None:
                client.pause_for_upstream()

    def resume_writing(self) -> None:
        client = self.client
        if client is not None:
            client.resume_for_upstream()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    def _take(
        self, ex: Exchange, client: ClientConnection, head: ResponseHead, data: bytes
    ) -> None:
        """A whole response from _heads: what the callbacks below do for it, at once."""
        state = self.state
        self.got_bytes = True
        self.deadline = state.clock.now + state.read_timeout  # a request body may still be going
        self.pool.fails = 0
        status = head[0]
        ex.status = status
        ex.response_started = True
        if status >= 500:
            state.counters.responses_5xx += 1
        self.has_length = True
        if ex.upgrade or not ex.keep_alive or state.draining or client.closed:
            ex.close = True
        framing = ex.connection_line()
        start = head[2]
        if len(data) - start <= JOIN_LIMIT:
            client.write(
                ex,
                b"".join(
                    (
                        status_line(status),
                        head[1],
                        state.server_line,
                        state.clock.date_line,
                        framing,
                        _CRLF,
                        data[start:],
                    )
                ),
            )
        else:  # a big body leaves beside its head, straight from the read: never copied
            rebuilt = (status_line(status), head[1], state.server_line, state.clock.date_line)
            client.write_parts(ex, [b"".join((*rebuilt, framing, _CRLF)), memoryview(data)[start:]])
        self.message_done = True
        self.reusable = head[3]
        if not self.sending:
            self._finish()

    # --- response parser callbacks ----------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        kind = _RESPONSE_SPELLINGS.get(name)
        if kind is None:
            kind = _RESPONSE_HEADERS.get(name.lower(), R_PASS)
        if kind == R_PASS:
            self.out += (name, _COLON, value, _CRLF)
        elif kind == R_CL:
            self.has_length = True
            self.out += (name, _COLON, value, _CRLF)
        elif kind == R_TE:
            self.chunked_in = b"chunked" in value.lower()
        elif kind == R_UPGRADE:
            self.upgrade_value = value

    def on_headers_complete(self) -> None:
        ex = self.ex
        assert ex is not None
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.skip_info = True  # 100/103 are not forwarded; the final answer follows
            self.out.clear()
            return
        self.pool.fails = 0
        state = self.state
        client = ex.conn
        ex.status = status
        self.no_body = ex.method == b"HEAD" or status in (204, 304) or status < 200
        # An app often writes its head and its body in two writes. Until the first
        # body byte comes, the head stays here: if the app dies in between, nothing
        # has reached the client, and the request can still be answered (replayed
        # on another instance, or a clean 502/504 instead of a cut-off 200).
        self.holding = self.has_length and not self.no_body
        if not self.holding:
            ex.response_started = True
            if status >= 500:
                state.counters.responses_5xx += 1
        if ex.method == b"HEAD":
            # llhttp cannot be told that a HEAD answer has no body: finish here and
            # give the connection a fresh parser if it is reused.
            self.reset_parser = True
            self.message_done = True
            self.reusable = self.parser.should_keep_alive()
        framing = b""
        if status == 101:
            framing = b"Connection: upgrade\r\nUpgrade: %s\r\n" % (self.upgrade_value or b"")
        else:
            if not self.no_body and not self.has_length:
                if ex.version == b"1.1":
                    framing = b"Transfer-Encoding: chunked\r\n"
                    self.rechunk = True
                else:
                    ex.close = True  # the end of the body is the end of the connection
            if ex.upgrade or not ex.keep_alive or state.draining or client.closed:
                ex.close = True
            framing += ex.connection_line()
        out = self.out
        head = [status_line(status), *out, state.server_line, state.clock.date_line, framing, _CRLF]
        out.clear()
        out.append(b"".join(head))

    def on_body(self, body: bytes) -> None:
        if self.holding:
            self._release_head()
        if self.rechunk:
            self.out += (b"%x\r\n" % len(body), body, _CRLF)
        else:
            self.out.append(body)

    def on_message_complete(self) -> None:
        if self.skip_info:
            self.skip_info = False
            return
        if self.holding:  # Content-Length: 0
            self._release_head()
        if self.rechunk:
            self.out.append(_CHUNK_END)
        self.message_done = True
        # Asked here: llhttp resets its flags once the callback returns.
        self.reusable = self.parser.should_keep_alive()

    def _release_head(self) -> None:
        """The body has begun: the held head goes out with it; the response is started."""
        self.holding = False
        ex = self.ex
        assert ex is not None
        ex.response_started = True
        if ex.status >= 500:
            self.state.counters.responses_5xx += 1

    # --- endings -----------------------------------------------------------------

    def _finish(self) -> None:
        """The response is complete: give the connection back and tell the client side."""
        ex = self.ex
        client = self.client
        assert ex is not None and client is not None
        reusable = (
            not self.closed
            and ex.request_done
            and not self.sending
            and self.reusable
            and (self.has_length or self.chunked_in or self.no_body)
        )
        self._detach()
        if reusable:
            if self.read_paused:  # for a slow client
                self.resume_reading()
            if self.reset_parser:
                self.parser = httptools.HttpResponseParser(self)
            self.pool.release(self, self.state)
        else:
            self.close()
        client.response_done(ex)

    def _detach(self) -> None:
        ex = self.ex
        if ex is not None:
            ex.upstream = None
            self.pool.active -= 1
        self.ex = None
        self.client = None
        self.sending = False
        self.deadline = 0.0

    def _fail(self, ex: Exchange, *, bad_response: bool) -> None:
        """The upstream failed before the response was complete."""
        client = ex.conn
        balancer, target = self.balancer, self.target
        started = ex.response_started
        held = self.holding  # only a head came, and it is still here
        if held:
            self.holding = False
            ex.status = 0  # that head was never sent: the access log must not say it was
        self._detach()
        self.close()
        if started:
            client.abort()  # a partial response cannot be turned into an error page
            return
        self.pool.fail(self.state)
        replayable = (
            (held or not self.got_bytes) and not bad_response and not ex.has_body and ex.idempotent
        )
        if replayable and balancer is not None and not ex.upgrade:
            ex.last_failure = 502
            ex.sent = True  # replayed once per instance, never after a wait
            self.state.upstreams.retry(ex, balancer, target)
        else:
            client.send_error(ex, 502)

    def on_deadline(self) -> None:
        ex = self.ex
        if ex is None:  # idle in the pool for too long
            self.close()
            return
        client = ex.conn
        started = ex.response_started  # not while a head is held: a clean 504 then
        self.holding = False
        self.pool.fail(self.state)
        self._detach()
        self.close()
        if started:
            client.abort()
        else:
            client.send_error(ex, 504)

    def client_gone(self, ex: Exchange) -> None:
        """The client of ``ex`` disconnected (or was refused) mid-exchange."""
        if self.ex is ex:
            self._detach()
            self.close()

    def _start_tunnel(self, ex: Exchange, client: ClientConnection, rest: bytes) -> None:
        if ex.status != 101:
            self._fail(ex, bad_response=True)
            return
        self.tunnel = True
        self.deadline = 0.0
        self.sending = False
        if rest:
            client.write_raw(rest)
        client.start_tunnel(self, ex)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()


def _without(headers: list[bytes], names: list[bytes]) -> list[bytes]:
    """Drop headers named in Connection (hop-by-hop by declaration); rare, so not fast."""
    out: list[bytes] = []
    for i in range(0, len(headers), 4):
        if headers[i].lower() not in names:
            out += headers[i : i + 4]
    return out
