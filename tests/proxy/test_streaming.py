"""Large bodies stream through without being held in memory; stopping lets requests finish."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import psutil

from tests.proxy.helpers import ResponseReader, RunningProxy, TestUpstream, route, snapshot

MIB = 1024 * 1024


def _upload(port: int, size: int, chunked: bool) -> dict[str, object]:
    block = b"u" * MIB
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % size
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\n%s\r\n\r\n" % framing)
        for _ in range(size // MIB):
            sock.sendall(b"%x\r\n%s\r\n" % (MIB, block) if chunked else block)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        status, _, body = ResponseReader(sock, timeout=30).response()
    assert status == 200
    data: dict[str, object] = json.loads(body)
    return data


def test_200_mib_upload_is_streamed(tmp_path: Path, upstream: TestUpstream) -> None:
    running = RunningProxy(tmp_path, client_max_body_size="1GiB")
    try:
        running.publish(snapshot([route("/", tmp_path, app="app")], {"app": [upstream.upstream()]}))
        worker = psutil.Process(running.pids()[0])
        baseline = worker.memory_info().rss
        peak = baseline
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.02):
                peak = max(peak, worker.memory_info().rss)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            assert _upload(running.port, 200 * MIB, chunked=False)["body_size"] == 200 * MIB
            assert _upload(running.port, 64 * MIB, chunked=True)["body_size"] == 64 * MIB
        finally:
            done.set()
            sampler.join()
        assert peak - baseline < 50 * MIB, f"RSS grew by {(peak - baseline) / MIB:.1f} MiB"
    finally:
        running.close()


def test_large_response_streams(tmp_path: Path, upstream: TestUpstream) -> None:
    running = RunningProxy(tmp_path)
    try:
        running.publish(snapshot([route("/", tmp_path, app="app")], {"app": [upstream.upstream()]}))
        with socket.create_connection(("127.0.0.1", running.port), timeout=30) as sock:
            sock.sendall(b"GET /big?n=%d HTTP/1.1\r\nHost: a\r\n\r\n" % (30 * MIB))
            status, _, body = ResponseReader(sock, timeout=30).response()
        assert status == 200 and len(body) == 30 * MIB
    finally:
        running.close()


def test_stop_lets_in_flight_requests_finish(tmp_path: Path, upstream: TestUpstream) -> None:
    running = RunningProxy(tmp_path)
    running.publish(snapshot([route("/", tmp_path, app="app")], {"app": [upstream.upstream()]}))
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.sendall(b"GET /slow?s=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        closer = threading.Thread(target=running.close)
        closer.start()
        status, headers, _ = ResponseReader(sock, timeout=10).response()
        closer.join()
    assert status == 200
    assert headers["connection"] == "close"
