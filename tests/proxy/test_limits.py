"""Timeouts and limits with a proxy whose timeouts are short."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.proxy.helpers import (
    ResponseReader,
    RunningProxy,
    TestUpstream,
    read_until_close,
    route,
    snapshot,
    wait_for,
)


@pytest.fixture(scope="module")
def strict(
    tmp_path_factory: pytest.TempPathFactory, upstream: TestUpstream
) -> Iterator[RunningProxy]:
    root = tmp_path_factory.mktemp("strict")
    running = RunningProxy(
        root,
        client_header_timeout="500ms",
        client_body_timeout="500ms",
        keepalive_timeout="700ms",
        client_max_body_size="64KiB",
        max_connections=20,
    )
    running.publish(snapshot([route("/", root, app="app")], {"app": [upstream.upstream()]}))
    yield running
    running.close()


def test_slowloris_headers_get_408_and_close(strict: RunningProxy) -> None:
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as sock:
        began = time.monotonic()
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\n")
        received = b""
        try:
            for _ in range(20):  # a header line every 100 ms: never finishes in time
                sock.sendall(b"X-Drip: 1\r\n")
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = read_until_close(sock)
        took = time.monotonic() - began
    assert received.startswith(b"HTTP/1.1 408 ")
    assert took < 2.5


def test_silent_connection_is_closed_without_answer(strict: RunningProxy) -> None:
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as sock:
        assert read_until_close(sock, timeout=3) == b""


def test_slow_body_gets_408(strict: RunningProxy) -> None:
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
        received = read_until_close(sock, timeout=3)
    assert received.startswith(b"HTTP/1.1 408 ")


def test_keepalive_idle_timeout_closes(strict: RunningProxy) -> None:
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        status, _, _ = ResponseReader(sock).response()
        assert status == 200
        began = time.monotonic()
        assert read_until_close(sock, timeout=3) == b""
        assert 0.5 < time.monotonic() - began < 2.0


def test_chunked_body_growing_past_limit_is_413(strict: RunningProxy) -> None:
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (16 * 1024, b"x" * 16 * 1024)
        try:
            for _ in range(8):
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = read_until_close(sock)
    assert received.startswith(b"HTTP/1.1 413 ")


def test_max_connections(strict: RunningProxy) -> None:
    held = [socket.create_connection(("127.0.0.1", strict.port), timeout=5) for _ in range(20)]
    try:
        wait_for(lambda: sum(s["connections"] for s in _stats(strict)) >= 20, what="20 open")
        with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as extra:
            extra.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
            assert read_until_close(extra) == b""
    finally:
        for sock in held:
            sock.close()


def _stats(proxy: RunningProxy) -> list[dict[str, int]]:
    return [{"connections": s.connections} for s in proxy.stats()]


def test_error_answers_keep_the_worker_serving(strict: RunningProxy, tmp_path: Path) -> None:
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as sock:
            sock.sendall(
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
            )
            assert read_until_close(sock).startswith(b"HTTP/1.1 400 ")
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        assert ResponseReader(sock).response()[0] == 200
