"""Raw requests from tests/proxy/corpus, sent over a socket, each with its expected status.

A file is named ``<case>.<status>.http``. Its text is the request with escapes
(``\\r\\n``, ``\\0``, ``\\xHH``); ``{{text*N}}`` stands for ``text`` repeated N
times. Every refused request must get exactly one answer and a closed
connection, so nothing after it can be read as a second (smuggled) request.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.proxy.helpers import (
    RunningProxy,
    TestUpstream,
    read_response,
    read_until_close,
    route,
    snapshot,
)

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(CORPUS.glob("*.http"))
_REPEAT = re.compile(r"\{\{(.*?)\*(\d+)\}\}", re.DOTALL)


def load(path: Path) -> bytes:
    text = path.read_text("latin-1").encode("latin-1").decode("unicode_escape")
    text = _REPEAT.sub(lambda m: m.group(1) * int(m.group(2)), text)
    return text.encode("latin-1")


@pytest.fixture(scope="module", autouse=True)
def routes(
    proxy: RunningProxy, upstream: TestUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("corpus")
    proxy.publish(
        snapshot(
            [route("/echo", root, app="app"), route("/down/", root, app="down")],
            {"app": [upstream.upstream()], "down": []},
        )
    )


def test_corpus_is_not_empty() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("path", CASES, ids=[p.name.split(".")[0] for p in CASES])
def test_corpus(proxy: RunningProxy, path: Path) -> None:
    expected = int(path.name.split(".")[1])
    request = load(path)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(request)
        status, headers, body = read_response(sock) if expected < 300 else _first(sock)
        assert status == expected, body
        if expected >= 400:
            assert len(body) < 200 and b"Traceback" not in body
        if expected in (400, 405, 413, 431, 501, 505):
            assert headers.get("connection") == "close"
            rest = read_until_close(sock)
            assert rest == b"", f"the connection stayed open or answered again: {rest!r}"
        if expected == 503:
            assert headers.get("retry-after")


def _first(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    status, headers, body = read_response(sock)
    return status, headers, body
