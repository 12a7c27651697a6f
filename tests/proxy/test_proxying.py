"""Requests through real proxy workers to real upstream servers."""

from __future__ import annotations

import json
import socket
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from kanri.proxy import Upstream
from tests.proxy.helpers import (
    ResponseReader,
    RunningProxy,
    TestUpstream,
    free_port,
    pattern,
    read_until_close,
    route,
    snapshot,
    wait_for,
)


def seen(response: httpx.Response) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.content)
    return data


def headers_of(data: dict[str, Any]) -> dict[str, str]:
    return {name: value for name, value in data["headers"]}


@pytest.fixture
def app(proxy: RunningProxy, upstream: TestUpstream, root: Path) -> TestUpstream:
    proxy.publish(snapshot([route("/", root, app="app")], {"app": [upstream.upstream()]}))
    return upstream


def test_forwarded_headers_and_hop_by_hop(proxy: RunningProxy, app: TestUpstream) -> None:
    with httpx.Client(base_url=proxy.url) as client:
        response = client.get(
            "/echo",
            headers={
                "Host": "shop.example.com",
                "X-Forwarded-For": "203.0.113.7",
                "X-Real-IP": "spoofed",
                "X-Forwarded-Proto": "https",
                "Keep-Alive": "timeout=5",
                "Connection": "keep-alive, X-Secret",
                "X-Secret": "hop",
                "TE": "trailers",
                "X-Custom": "kept",
            },
        )
    assert response.status_code == 200
    got = headers_of(seen(response))
    assert got["host"] == "shop.example.com"
    assert got["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert got["x-real-ip"] == "127.0.0.1"
    assert got["x-forwarded-proto"] == "http"
    assert got["x-forwarded-host"] == "shop.example.com"
    assert got["x-custom"] == "kept"
    for dropped in ("keep-alive", "x-secret", "te", "connection"):
        assert dropped not in got
    assert response.headers["server"] == "kanri"
    assert "date" in response.headers


def test_response_framing_chunked_and_close_delimited(
    proxy: RunningProxy, app: TestUpstream
) -> None:
    with httpx.Client(base_url=proxy.url) as client:
        chunked = client.get("/chunked")
        assert chunked.content == b"onetwothree"
        assert chunked.headers["transfer-encoding"] == "chunked"
        until_close = client.get("/close")
        assert until_close.content == b"until close"
        head = client.head("/echo")
        assert head.status_code == 200 and head.content == b""
        after_head = client.get("/echo")
        assert after_head.status_code == 200


def test_chunked_request_body_is_streamed(proxy: RunningProxy, app: TestUpstream) -> None:
    def parts() -> Any:
        yield b"a" * 300
        yield b"b" * 300

    with httpx.Client(base_url=proxy.url) as client:
        response = client.post("/echo", content=parts())
    assert response.status_code == 200
    assert seen(response)["body_size"] == 600


def test_strip_prefix_and_route_choice(
    proxy: RunningProxy, upstream: TestUpstream, upstream_b: TestUpstream, root: Path
) -> None:
    proxy.publish(
        snapshot(
            [
                route("/", root, app="a"),
                route("/api/", root, app="b", strip_prefix=True),
                route("/", root, app="b", host="*.example.org"),
            ],
            {"a": [upstream.upstream(app="a")], "b": [upstream_b.upstream(app="b")]},
        )
    )
    with httpx.Client(base_url=proxy.url) as client:
        assert seen(client.get("/echo"))["upstream"] == "a"
        stripped = seen(client.get("/api/echo?q=1"))
        assert (stripped["upstream"], stripped["target"]) == ("b", "/echo?q=1")
        by_host = client.get("/echo", headers={"Host": "www.example.org:8080"})
        assert seen(by_host)["upstream"] == "b"
        assert seen(client.get("/echo", headers={"Host": "example.org"}))["upstream"] == "a"


def test_pipelined_requests_are_answered_in_order(proxy: RunningProxy, app: TestUpstream) -> None:
    requests = b"".join(
        b"GET /%s HTTP/1.1\r\nHost: a\r\n\r\n" % path
        for path in (b"slow?s=0.2", b"echo?n=2", b"chunked", b"echo?n=4")
    )
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(requests)
        reader = ResponseReader(sock)
        first, second, third, fourth = (reader.response() for _ in range(4))
    assert json.loads(first[2])["target"] == "/slow?s=0.2"
    assert json.loads(second[2])["target"] == "/echo?n=2"
    assert third[2] == b"onetwothree"
    assert json.loads(fourth[2])["target"] == "/echo?n=4"


def test_a_request_behind_an_answer_that_closes_is_never_sent(
    proxy: RunningProxy, root: Path
) -> None:
    # A bad request is answered 400 and the connection closed; a POST sent behind it
    # in the same packet must not reach the app: its answer would be lost, and the
    # client, told the connection closes, would send it again.
    server = TestUpstream("behind")
    try:
        proxy.publish(snapshot([route("/", root, app="b")], {"b": [server.upstream(app="b")]}))
        with httpx.Client(base_url=proxy.url) as client:  # leaves a pooled upstream connection
            assert seen(client.get("/echo"))["method"] == "GET"
        bad = b"GET http://a/echo HTTP/1.1\r\nHost: a\r\n\r\n"  # absolute-form: 400
        behind = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            sock.sendall(bad + behind)
            answer = read_until_close(sock)
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert answer.count(b"HTTP/1.1 ") == 1
        # Anything forwarded for the POST was written before the close: a request
        # sent afterwards on a new connection reaches the app after it.
        with httpx.Client(base_url=proxy.url) as client:
            assert seen(client.get("/echo"))["method"] == "GET"
        assert [head["method"] for head in server.received_heads] == ["GET", "GET"]
    finally:
        server.close()


def test_upstream_connections_are_reused(proxy: RunningProxy, root: Path) -> None:
    server = TestUpstream("reuse")
    try:
        proxy.publish(snapshot([route("/", root, app="r")], {"r": [server.upstream(app="r")]}))
        with httpx.Client(base_url=proxy.url) as client:
            for _ in range(20):
                assert client.get("/echo").status_code == 200
        assert server.requests == 20
        assert server.connections < 5
    finally:
        server.close()


def test_upstream_connections_are_reused_under_concurrency(proxy: RunningProxy, root: Path) -> None:
    """64 keep-alive clients at once: the default idle pool keeps every upstream
    connection they used, instead of closing the surplus and opening it again
    for the next burst (a pool of 32 opened about one connection every other
    request here)."""
    server = TestUpstream("busy")
    clients, rounds = 64, 8
    start = threading.Barrier(clients)
    failures: list[str] = []

    def client() -> None:
        try:
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
                reader = ResponseReader(sock)
                for n in range(rounds):
                    start.wait(10)  # every client has a request in flight at once
                    sock.sendall(b"GET /slow?s=0.02 HTTP/1.1\r\nHost: t\r\n\r\n")
                    status = reader.response()[0]
                    if status != 200:
                        failures.append(f"round {n}: {status}")
        except Exception as exc:  # reported by the assertion below
            failures.append(repr(exc))
            start.abort()

    try:
        proxy.publish(snapshot([route("/", root, app="busy")], {"busy": [server.upstream()]}))
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not failures
        assert server.requests == clients * rounds
        assert server.connections <= clients + 8, server.connections
    finally:
        server.close()


def test_upstream_down_is_502(proxy: RunningProxy, root: Path) -> None:
    dead = Upstream("dead:0", "dead", "127.0.0.1", free_port())
    proxy.publish(snapshot([route("/", root, app="dead")], {"dead": [dead]}))
    began = time.monotonic()
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        response = client.get("/echo")
    took = time.monotonic() - began
    assert response.status_code == 502
    assert b"Traceback" not in response.content and len(response.content) < 100
    # Refused connections are tried again for REFUSED_RETRY_WINDOW (2 s), no longer.
    assert 1.9 <= took < 4.0


def handled(proxy: RunningProxy) -> int:
    """Requests the proxy's workers have counted so far (the module's proxy is shared)."""
    return sum(s.requests for s in proxy.stats())


class Asker:
    """One request in a thread; ``start`` returns once the proxy has counted it."""

    def __init__(self, proxy: RunningProxy, body: bytes | None = None) -> None:
        self.proxy = proxy
        self.body = body
        self.answers: list[tuple[httpx.Response, float]] = []
        self.thread = threading.Thread(target=self._ask)

    def _ask(self) -> None:
        began = time.monotonic()
        with httpx.Client(base_url=self.proxy.url, timeout=15) as client:
            if self.body is None:
                response = client.get("/echo")
            else:
                response = client.post("/echo", content=self.body)
        self.answers.append((response, time.monotonic() - began))

    def start(self) -> Asker:
        before = handled(self.proxy)
        self.thread.start()
        wait_for(lambda: handled(self.proxy) > before, what="the request at the proxy")
        return self

    def statuses(self) -> list[int]:
        self.thread.join(15)
        return [response.status_code for response, _ in self.answers]

    @property
    def took(self) -> float:
        return self.answers[0][1]


def refused_for_a_while() -> None:
    """Return 0.3 s after the proxy took the request: a refused connect on loopback
    takes well under a millisecond, so by then several rounds have been refused
    (without the wait, the proxy answered 502 after the first). Only what follows is
    asserted: the wait just makes sure the listener opens after the refusals.
    """
    deadline = time.monotonic() + 0.3
    wait_for(lambda: time.monotonic() >= deadline, what="some refused connects")


def test_momentary_refusal_waits_for_the_instance(proxy: RunningProxy, root: Path) -> None:
    """A ready instance that refuses connections for a moment (its listen backlog is
    full, its listener is being reopened) costs the request a wait, not a 502."""
    port = free_port()
    proxy.publish(
        snapshot(
            [route("/", root, app="blink")],
            {"blink": [Upstream("blink:0", "blink", "127.0.0.1", port)]},
        )
    )
    asker = Asker(proxy, body=b"body").start()
    refused_for_a_while()
    server = TestUpstream("blink", port=port)
    try:
        assert asker.statuses() == [200]
        assert seen(asker.answers[0][0])["body_size"] == 4
        assert server.requests == 1
    finally:
        server.close()


def test_refused_request_waits_for_a_restarted_instance(proxy: RunningProxy, root: Path) -> None:
    """The only instance refuses, then leaves the snapshot (it crashed); a request already
    waiting is answered by the instance that replaces it, not with a 503."""
    dead = Upstream("phoenix:0#1", "phoenix", "127.0.0.1", free_port())
    routes = [route("/", root, app="phoenix")]
    proxy.publish(snapshot(routes, {"phoenix": [dead]}))
    asker = Asker(proxy).start()
    refused_for_a_while()
    proxy.publish(snapshot(routes, {"phoenix": []}))
    server = TestUpstream("phoenix")
    try:
        proxy.publish(
            snapshot(routes, {"phoenix": [server.upstream("phoenix:0#2", app="phoenix")]})
        )
        assert asker.statuses() == [200]
        assert server.requests == 1
    finally:
        server.close()


def test_request_waits_for_an_instance_that_is_coming(proxy: RunningProxy, root: Path) -> None:
    """No instance is ready, but the supervisor is starting one (a crash restart, a
    deploy): the request waits and the new instance answers it, not a 503."""
    routes = [route("/", root, app="soon")]
    proxy.publish(snapshot(routes, {"soon": []}, coming=True))
    asker = Asker(proxy).start()
    server = TestUpstream("soon")
    try:
        proxy.publish(snapshot(routes, {"soon": [server.upstream(app="soon")]}, version=2))
        assert asker.statuses() == [200]
        assert server.requests == 1
    finally:
        server.close()


def test_waiting_ends_when_the_instance_is_no_longer_coming(
    proxy: RunningProxy, root: Path, tmp_path: Path
) -> None:
    """The app gave up (a crash loop) or was stopped: waiting requests get their 503 at
    once, not at the end of queue_timeout; with nothing published they get it then."""
    routes = [route("/", root, app="never")]
    patient = RunningProxy(tmp_path / "state", queue_timeout="10s")
    try:
        patient.publish(snapshot(routes, {"never": []}, coming=True))
        asker = Asker(patient).start()
        patient.publish(snapshot(routes, {"never": []}, version=2))
        assert asker.statuses() == [503]
        assert asker.took < 5.0  # not the 10 s of queue_timeout
    finally:
        patient.close()
    proxy.publish(snapshot(routes, {"never": []}, coming=True))
    asker = Asker(proxy).start()
    assert asker.statuses() == [503]
    assert 0.95 <= asker.took < 4.0  # the module's queue_timeout is 1 s


def took_one(server: TestUpstream) -> bool:
    return server.requests >= 1


def test_request_cut_by_a_crash_is_replayed_once_on_the_new_instance(
    proxy: RunningProxy, root: Path
) -> None:
    """The only instance takes a GET and dies before answering: the GET goes to the
    instance that replaces it. One that the replacement drops too gets its 502: a
    request that kills every instance is not replayed on each restart."""
    routes = [route("/", root, app="crash")]
    victim, heir, third = TestUpstream("victim"), TestUpstream("heir"), TestUpstream("third")
    try:
        for first, second, expected in ((victim, heir, 200), (heir, third, 502)):
            first.dropping = True
            second.dropping = expected != 200
            proxy.publish(snapshot(routes, {"crash": [first.upstream(app="crash")]}))
            asker = Asker(proxy).start()
            wait_for(partial(took_one, first), what="the request at the first instance")
            proxy.publish(snapshot(routes, {"crash": []}, coming=True))
            proxy.publish(snapshot(routes, {"crash": [second.upstream(app="crash")]}))
            assert asker.statuses() == [expected]
            assert (first.requests, second.requests) == (1, 1)
            first.requests = second.requests = 0
    finally:
        for server in (victim, heir, third):
            server.close()


def test_app_dying_between_head_and_body_loses_no_get(
    proxy: RunningProxy, upstream: TestUpstream, upstream_b: TestUpstream, root: Path
) -> None:
    """An app killed between the write of its head and that of its body: the head was
    held back, so the GET goes to the other instance and arrives whole."""
    routes = [route("/", root, app="two")]
    proxy.publish(
        snapshot(routes, {"two": [upstream.upstream(app="two"), upstream_b.upstream(app="two")]})
    )
    upstream.cutting, upstream.requests = True, 0
    try:
        with httpx.Client(base_url=proxy.url) as client:
            answers = [client.get(f"/echo?n={i}") for i in range(6)]
            assert [r.status_code for r in answers] == [200] * 6
            assert {seen(r)["upstream"] for r in answers} == {"b"}
            assert upstream.requests >= 1  # the cut instance had its turn (then rested)
            # With no other instance, a cut answer is a clean 502: never a cut-off 200.
            proxy.publish(snapshot(routes, {"two": [upstream.upstream(app="two")]}, version=2))
            lone = client.get("/echo")
            assert lone.status_code == 502
            post = client.post("/echo", content=b"data")  # not replayed: it has a body
            assert post.status_code == 502
    finally:
        upstream.cutting = False


def test_body_after_a_pause_arrives_whole(proxy: RunningProxy, app: TestUpstream) -> None:
    with httpx.Client(base_url=proxy.url) as client:
        began = time.monotonic()
        response = client.get("/late?s=0.3")
        assert time.monotonic() - began >= 0.3
        assert response.status_code == 200
        assert response.content == b"late, but whole\n"
        assert response.headers["content-length"] == "16"


def test_head_without_its_body_until_read_timeout_is_504(
    proxy: RunningProxy, app: TestUpstream
) -> None:
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        began = time.monotonic()
        response = client.get("/stall?s=3")
        assert response.status_code == 504  # read_timeout is 1 s in this module
        assert time.monotonic() - began < 2.5
        assert client.get("/echo").status_code == 200


def test_no_ready_instance_is_503_with_retry_after(proxy: RunningProxy, root: Path) -> None:
    proxy.publish(snapshot([route("/", root, app="none")], {"none": []}))
    with httpx.Client(base_url=proxy.url) as client:
        response = client.get("/")
        unknown_app = client.get("/x")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert unknown_app.status_code == 503


def test_slow_upstream_is_504_after_read_timeout(proxy: RunningProxy, app: TestUpstream) -> None:
    began = time.monotonic()
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        response = client.get("/slow?s=3")
        took = time.monotonic() - began
        assert response.status_code == 504
        assert 0.9 <= took < 2.5  # read_timeout is 1s in this module
        assert client.get("/echo").status_code == 200  # the worker still serves


def test_connect_failure_on_one_of_two_instances(
    proxy: RunningProxy, upstream: TestUpstream, root: Path
) -> None:
    dead = Upstream("two:dead", "two", "127.0.0.1", free_port())
    proxy.publish(
        snapshot([route("/", root, app="two")], {"two": [dead, upstream.upstream(app="two")]})
    )
    with httpx.Client(base_url=proxy.url) as client:
        statuses = [client.post("/echo", content=b"x").status_code for _ in range(6)]
    assert statuses == [200] * 6


def test_reset_before_response_is_retried_for_get(
    proxy: RunningProxy, upstream: TestUpstream, root: Path
) -> None:
    rude = socket.socket()
    rude.bind(("127.0.0.1", 0))
    rude.listen(16)
    rude_port = rude.getsockname()[1]
    try:
        flaky = Upstream("three:rude", "three", "127.0.0.1", rude_port)
        proxy.publish(
            snapshot(
                [route("/", root, app="three")], {"three": [flaky, upstream.upstream(app="three")]}
            )
        )
        accepted = 0

        def reset_everything() -> None:
            nonlocal accepted
            while True:
                try:
                    conn, _ = rude.accept()
                except OSError:
                    return
                accepted += 1
                conn.recv(65536)
                conn.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                conn.close()

        thread = threading.Thread(target=reset_everything, daemon=True)
        thread.start()
        with httpx.Client(base_url=proxy.url) as client:
            assert [client.get("/echo").status_code for _ in range(4)] == [200] * 4
        # max_fails = 1: after its first failure the instance is out for fail_timeout.
        assert accepted == 1
    finally:
        rude.close()
        thread.join(5)


def test_active_health_checks_take_an_instance_out(
    proxy: RunningProxy, upstream: TestUpstream, upstream_b: TestUpstream, root: Path
) -> None:
    proxy.publish(
        snapshot(
            [route("/", root, app="h")],
            {"h": [upstream.upstream(app="h"), upstream_b.upstream(app="h")]},
            health="/healthz",
            health_interval=0.2,
        )
    )

    def recent_upstreams(client: httpx.Client) -> set[str]:
        return {seen(client.get("/echo"))["upstream"] for _ in range(6)}

    try:
        with httpx.Client(base_url=proxy.url) as client:
            assert recent_upstreams(client) == {"a", "b"}
            upstream.unhealthy = True
            wait_for(lambda: recent_upstreams(client) == {"b"}, what="a to leave rotation")
            upstream.unhealthy = False
            wait_for(lambda: recent_upstreams(client) == {"a", "b"}, what="a to come back")
    finally:
        upstream.unhealthy = False


def test_a_hung_instance_delays_no_other_instance_health_check(
    proxy: RunningProxy, upstream_b: TestUpstream, root: Path
) -> None:
    """Three instances take connections and never answer: each of their checks waits
    out the probe's time limit (2 s in this module), while b's go on every tick."""
    hung = [socket.socket() for _ in range(3)]
    try:
        for sock in hung:
            sock.bind(("127.0.0.1", 0))
            sock.listen(64)
        stuck = [
            Upstream(f"hc:hung{i}", "hc", "127.0.0.1", sock.getsockname()[1])
            for i, sock in enumerate(hung)
        ]
        proxy.publish(
            snapshot(
                [route("/", root, app="hc")],
                {"hc": [*stuck, upstream_b.upstream(app="hc")]},
                health="/healthz",
                health_interval=0.2,
            )
        )

        def checks_of_b() -> int:
            return sum(1 for head in upstream_b.received_heads if head["target"] == "/healthz")

        before = checks_of_b()
        # One after another, b would wait 6 s behind the three: one check at most.
        wait_for(lambda: checks_of_b() >= before + 4, timeout=4.5, what="four checks of b")
    finally:
        for sock in hung:
            sock.close()


def test_sse_first_event_arrives_before_the_upstream_finishes(
    proxy: RunningProxy, root: Path
) -> None:
    server = TestUpstream("sse")
    try:
        proxy.publish(snapshot([route("/", root, app="s")], {"s": [server.upstream(app="s")]}))
        with (
            httpx.Client(base_url=proxy.url, timeout=10) as client,
            client.stream("GET", "/sse") as response,
        ):
            lines = response.iter_lines()
            assert next(lines) == "data: first"
            server.release()  # only now may the upstream send the rest
            rest = list(lines)
        assert "data: second" in rest
    finally:
        server.close()


def test_websocket_is_tunnelled(proxy: RunningProxy, app: TestUpstream) -> None:
    handshake = (
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(handshake)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"upgrade: websocket" in head.lower()
        for message in (b"\x81\x05hello", b"binary\x00\xff" * 1000):
            sock.sendall(message)
            echoed = b""
            while len(echoed) < len(message):
                echoed += sock.recv(65536)
            assert echoed == message
        sock.shutdown(socket.SHUT_WR)
        assert read_until_close(sock) == b""


def test_large_answers_to_a_reader_that_lags_arrive_whole(
    proxy: RunningProxy, app: TestUpstream
) -> None:
    # Answers of 60,000 bytes come from the app in one read and leave beside their
    # heads (write_parts); a client with a tiny receive buffer makes those writes
    # stop part-way, so what is left must go out later from the same bytes.
    sizes = [60_000 + i for i in range(8)]
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", proxy.port))
        sock.sendall(b"".join(b"GET /big?n=%d HTTP/1.1\r\nHost: a\r\n\r\n" % n for n in sizes))
        reader = ResponseReader(sock)
        for n in sizes:
            status, headers, body = reader.response()
            assert (status, headers["content-length"]) == (200, str(n))
            assert body == pattern(n)


def test_keepalive_client_survives_many_requests(proxy: RunningProxy, app: TestUpstream) -> None:
    with httpx.Client(base_url=proxy.url) as client:
        for i in range(50):
            response = client.get(f"/big?n={i * 997}")
            assert response.content == pattern(i * 997)
