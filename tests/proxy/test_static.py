"""Static files through a real worker: validators, ranges, precompressed siblings, traversal."""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.proxy.helpers import RunningProxy, read_response, route, snapshot

BIG = bytes(range(256)) * 1024  # 256 KiB: streamed rather than sent in one write
HUGE = os.urandom(
    24 * 1024 * 1024
)  # far more than a socket buffer: sendfile must wait for the reader


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("site")
    public = base / "public"
    (public / "docs").mkdir(parents=True)
    (public / "app.js").write_text("console.log('plain');\n" * 50)
    (public / "app.js.gz").write_bytes(gzip.compress(b"gz"))
    (public / "app.js.br").write_bytes(b"br-bytes")
    (public / "style.css").write_text("body{}")
    (public / "style.css.gz").write_bytes(gzip.compress(b"body{}"))
    (public / "index.html").write_text("<h1>home</h1>")
    (public / "docs" / "index.html").write_text("<h1>docs</h1>")
    (public / "big.bin").write_bytes(BIG)
    (public / "huge.bin").write_bytes(HUGE)
    (public / "spa").mkdir()
    (public / "spa" / "index.html").write_text("<div id=app></div>")
    (base / "secret.txt").write_text("top secret")
    os.symlink(base / "secret.txt", public / "escape.txt")
    os.symlink(base, public / "escape-dir")
    (public / "inside-link.css").symlink_to(public / "style.css")
    return base


@pytest.fixture(scope="module", autouse=True)
def routes(proxy: RunningProxy, site: Path) -> None:
    proxy.publish(
        snapshot(
            [
                route("/static/", site, static="public", cache="1y"),
                route("/spa/", site, static="public/spa", fallback="index.html"),
                route("/hashed/", site, static="public", cache="immutable"),
            ],
            {},
        )
    )


@pytest.fixture
def client(proxy: RunningProxy) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, headers={"Accept-Encoding": "identity"}) as client:
        yield client


def test_200_with_validators_and_cache_control(client: httpx.Client, site: Path) -> None:
    response = client.get("/static/style.css")
    assert response.status_code == 200
    assert response.content == b"body{}"
    assert response.headers["content-type"] == "text/css; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=31536000"
    assert response.headers["etag"].startswith('"')
    assert response.headers["last-modified"].endswith("GMT")
    assert response.headers["vary"] == "Accept-Encoding"
    immutable = client.get("/hashed/style.css")
    assert immutable.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_304_for_if_none_match_and_if_modified_since(client: httpx.Client) -> None:
    first = client.get("/static/index.html")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    by_etag = client.get("/static/index.html", headers={"If-None-Match": f'"nope", {etag}'})
    assert by_etag.status_code == 304 and by_etag.content == b""
    assert by_etag.headers["etag"] == etag
    by_date = client.get("/static/index.html", headers={"If-Modified-Since": modified})
    assert by_date.status_code == 304
    changed = client.get("/static/index.html", headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200


def test_ranges(client: httpx.Client) -> None:
    part = client.get("/static/big.bin", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == BIG[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(BIG)}"
    tail = client.get("/static/big.bin", headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == BIG[-5:]
    open_end = client.get("/static/big.bin", headers={"Range": f"bytes={len(BIG) - 3}-"})
    assert open_end.content == BIG[-3:]
    beyond = client.get("/static/big.bin", headers={"Range": f"bytes={len(BIG)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(BIG)}"
    several = client.get("/static/big.bin", headers={"Range": "bytes=0-1,5-6"})
    assert several.status_code == 200 and several.content == BIG


def test_large_file_and_head(client: httpx.Client) -> None:
    whole = client.get("/static/big.bin")
    assert whole.status_code == 200 and whole.content == BIG
    head = client.head("/static/big.bin")
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(BIG))
    assert head.content == b""
    assert client.get("/static/style.css").content == b"body{}"  # same connection still in sync


def test_precompressed_siblings(proxy: RunningProxy) -> None:
    with httpx.Client(base_url=proxy.url) as client:
        br = client.get("/static/app.js", headers={"Accept-Encoding": "gzip, br"})
        assert br.headers["content-encoding"] == "br"
        assert br.headers["vary"] == "Accept-Encoding"
        gz = client.get("/static/app.js", headers={"Accept-Encoding": "gzip"})
        assert gz.headers["content-encoding"] == "gzip"
        assert gz.content == b"gz"  # httpx decodes gzip
        refused = client.get("/static/app.js", headers={"Accept-Encoding": "br;q=0, identity"})
        assert "content-encoding" not in refused.headers
        assert refused.content.startswith(b"console.log")


def test_directories_index_and_redirect(client: httpx.Client) -> None:
    assert client.get("/static/").text == "<h1>home</h1>"
    assert client.get("/static/docs/").text == "<h1>docs</h1>"
    redirect = client.get("/static/docs?x=1")
    assert redirect.status_code == 301
    assert redirect.headers["location"] == "/static/docs/?x=1"


def test_spa_fallback(client: httpx.Client) -> None:
    response = client.get("/spa/some/client/route")
    assert response.status_code == 200
    assert response.text == "<div id=app></div>"


def test_missing_and_methods(client: httpx.Client) -> None:
    assert client.get("/static/nope.css").status_code == 404
    assert client.post("/static/style.css", content=b"x").status_code == 405
    assert client.get("/elsewhere").status_code == 404


def test_symlink_inside_root_is_served(client: httpx.Client) -> None:
    assert client.get("/static/inside-link.css").content == b"body{}"


TRAVERSALS = [
    b"/static/../secret.txt",
    b"/static/%2e%2e/secret.txt",
    b"/static/%2E%2E/secret.txt",
    b"/static/.%2e/secret.txt",
    b"/static/%2e%2e%2fsecret.txt",
    b"/static/docs/../../secret.txt",
    b"/static/..%5csecret.txt",
    b"/static/..\\secret.txt",
    b"/static/index.html%00.css",
    b"/static/escape.txt",
    b"/static/escape-dir/secret.txt",
    b"/static/%252e%252e/secret.txt",
    b"/static//../secret.txt",
    b"/spa/../secret.txt",
]


@pytest.mark.parametrize("target", TRAVERSALS, ids=[t.decode() for t in TRAVERSALS])
def test_traversal_is_refused(proxy: RunningProxy, target: bytes) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % target)
        status, _, body = read_response(sock)
    assert status in (400, 403, 404)
    assert b"top secret" not in body


def test_huge_file_to_a_slow_pipelined_reader_arrives_whole_and_in_order(
    proxy: RunningProxy,
) -> None:
    """Two pipelined requests, the first a file much larger than the socket buffers, read
    slowly: every byte must arrive, in order, and the second answer right after."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(
            b"GET /static/huge.bin HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /static/style.css HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        received = bytearray()
        expected_tail = b"body{}"
        while not received.endswith(expected_tail):
            chunk = sock.recv(256 * 1024)
            assert chunk, "the connection closed early"
            received += chunk
            if len(received) < 4 * 1024 * 1024:
                time.sleep(0.002)  # a slow reader at first: the proxy must wait for it
    head, _, rest = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and f"Content-Length: {len(HUGE)}".encode() in head
    assert hashlib.sha256(rest[: len(HUGE)]).digest() == hashlib.sha256(HUGE).digest()
    second = rest[len(HUGE) :]
    assert second.startswith(b"HTTP/1.1 200") and second.endswith(b"\r\n\r\nbody{}")


def test_repeated_answers_match_and_a_changed_file_is_seen_within_a_second(
    proxy: RunningProxy, site: Path
) -> None:
    page = site / "public" / "changing.txt"
    page.write_text("first")
    with httpx.Client(base_url=proxy.url) as client:
        answers = [client.get("/static/changing.txt") for _ in range(3)]
        heads = [client.head("/static/changing.txt") for _ in range(2)]
        for answer in answers:
            assert answer.status_code == 200 and answer.content == b"first"
            assert answer.headers["etag"] == answers[0].headers["etag"]
            assert answer.headers["content-length"] == "5"
            assert answer.headers["cache-control"] == answers[0].headers["cache-control"]
        for head in heads:
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == "5"
        etag = answers[0].headers["etag"]
        assert (
            client.get("/static/changing.txt", headers={"If-None-Match": etag}).status_code == 304
        )
        partial = client.get("/static/changing.txt", headers={"Range": "bytes=1-2"})
        assert partial.status_code == 206 and partial.content == b"ir"
        page.write_text("second, longer")
        os.utime(page, (time.time() + 10, time.time() + 10))
        time.sleep(1.1)
        again = client.get("/static/changing.txt")
        assert again.content == b"second, longer"
        assert again.headers["etag"] != etag
