"""Static files: resolve a request path under a route's root and build the answer.

Resolution follows nginx ``alias``: the route prefix is removed and the rest
is looked up under the root. The path is percent-decoded once and split into
segments; ``..``, NUL and backslashes are refused (404) before the file system
is touched, and the final real path must stay under the root's real path, so a
symlink that leaves the root is refused (403).

``serve`` returns a StaticAnswer; the connection writes it (small files as one
write, large ones streamed from the file descriptor).
"""

from __future__ import annotations

import mimetypes
import os
import stat
import time
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote_to_bytes

from kanri.proxy.routing import RouteEntry

if TYPE_CHECKING:
    from kanri.proxy.exchange import Exchange
    from kanri.proxy.http import ClientConnection

SMALL_FILE: Final = 64 * 1024
STREAM_CHUNK: Final = 256 * 1024
"""Files up to this size are read into memory and sent with the headers in one write."""

_COMPRESSIBLE_PREFIXES: Final = ("text/", "application/javascript", "application/json", "image/svg")
_COMPRESSIBLE: Final = ("application/xml", "application/wasm", "application/manifest+json")
_mime_cache: Final[dict[str, tuple[bytes, bool]]] = {}


@dataclass(slots=True)
class Request:
    """What the static handler needs of a request."""

    method: bytes
    path: bytes  # raw path without the query
    query: bytes  # including the leading "?", or b""
    accept_encoding: bytes | None = None
    if_none_match: bytes | None = None
    if_modified_since: bytes | None = None
    range: bytes | None = None
    if_range: bytes | None = None


@dataclass(slots=True)
class StaticAnswer:
    """Status, header lines (without status line, Date, Server, Connection) and body."""

    status: int
    headers: bytes = b""
    body: bytes = b""
    fd: int = -1  # an open file to stream from offset, length bytes; -1 = none
    offset: int = 0
    length: int = 0
    expires: float = 0.0  # until when (time.monotonic()) the file's resolution is reused


def content_type(name: str) -> tuple[bytes, bool]:
    """(Content-Type header value, compressible?) for a file name; cached by extension."""
    ext = os.path.splitext(name)[1].lower()
    cached = _mime_cache.get(ext)
    if cached is not None:
        return cached
    guessed, _ = mimetypes.guess_type("f" + ext, strict=False)
    kind = guessed or "application/octet-stream"
    compressible = kind.startswith(_COMPRESSIBLE_PREFIXES) or kind in _COMPRESSIBLE
    value = (
        kind + "; charset=utf-8"
        if kind.startswith("text/") or kind.endswith("javascript")
        else kind
    )
    result = (value.encode("ascii"), compressible)
    if len(_mime_cache) < 1024:
        _mime_cache[ext] = result
    return result


def _safe_segments(raw: bytes) -> list[str] | None:
    """Decoded path segments, or None if the path tries to leave the root."""
    if b"\\" in raw or b"\x00" in raw:
        return None
    decoded = unquote_to_bytes(raw) if b"%" in raw else raw
    if b"\x00" in decoded or b"\\" in decoded:
        return None
    segments: list[str] = []
    for part in decoded.split(b"/"):
        if not part or part == b".":
            continue
        if part == b"..":
            return None
        segments.append(os.fsdecode(part))
    return segments


def _inside(root: str, real: str) -> bool:
    return real == root or real.startswith(root if root.endswith("/") else root + "/")


def serve(entry: RouteEntry, req: Request) -> StaticAnswer:
    """Answer a GET or HEAD for a static route; never raises for any request path."""
    root = entry.static_root
    assert root is not None
    if req.method not in (b"GET", b"HEAD"):
        return StaticAnswer(405)
    rest = req.path[len(entry.prefix) :] if not entry.exact else b""
    segments = _safe_segments(rest)
    if segments is None:
        return StaticAnswer(404)
    target = os.path.join(root, *segments) if segments else root
    answer = _try_file(entry, req, target, rest)
    if answer is not None:
        return answer
    fallback = entry.route.fallback
    if fallback is not None:
        fb_segments = _safe_segments(fallback.encode())
        if fb_segments is not None:
            answer = _try_file(entry, req, os.path.join(root, *fb_segments), b"", fallback=True)
            if answer is not None:
                return answer
    return StaticAnswer(404)


CACHE_SECONDS: Final = 1.0
"""How long a path's resolution (real path, stat, precompressed siblings) is reused.

Like nginx's open_file_cache_valid: a file replaced on disk is seen within a
second, and a busy static route costs no realpath/stat calls per request."""
CACHE_ENTRIES: Final = 2048
SMALL_BODY_CACHE: Final = 16 * 1024
"""Bodies of files up to this size are kept in memory with their resolution."""

FOUND: Final = 0
MISSING: Final = 1
FORBIDDEN: Final = 2
REDIRECT: Final = 3
Resolved = tuple[int, str, "os.stat_result | None"]
_resolved: Final[dict[tuple[str, bool, str | None, bool], tuple[float, Resolved]]] = {}
_variants: Final[
    dict[str, tuple[float, tuple[str, os.stat_result] | None, tuple[str, os.stat_result] | None]]
] = {}
_bodies: Final[dict[tuple[str, int, int], bytes]] = {}


def _cached_resolve(
    root: str, target: str, slash: bool, index: str | None, fallback: bool
) -> tuple[float, Resolved]:
    """(expiry, resolution) of a path; the expiry bounds every answer built from it."""
    key = (target, slash, index, fallback)
    now = time.monotonic()
    hit = _resolved.get(key)
    if hit is not None and hit[0] > now:
        return hit
    result = _resolve(root, target, slash, index, fallback)
    if len(_resolved) >= CACHE_ENTRIES:
        _resolved.clear()
        _bodies.clear()
    fresh = _resolved[key] = (now + CACHE_SECONDS, result)
    return fresh


def _resolve(root: str, target: str, slash: bool, index: str | None, fallback: bool) -> Resolved:
    """Follow symlinks, refuse what leaves the root, pick the index of a directory."""
    try:
        real = os.path.realpath(target)
    except (OSError, ValueError):
        return MISSING, "", None
    if not _inside(root, real):
        return FORBIDDEN, "", None
    try:
        st = os.stat(real)
    except (OSError, ValueError):
        return MISSING, "", None
    if stat.S_ISDIR(st.st_mode):
        if fallback:
            return MISSING, "", None
        if not slash:
            return REDIRECT, "", None
        if index is None:
            return FORBIDDEN, "", None
        try:
            real = os.path.realpath(os.path.join(real, index))
            if not _inside(root, real):
                return FORBIDDEN, "", None
            st = os.stat(real)
        except (OSError, ValueError):
            return MISSING, "", None
        if not stat.S_ISREG(st.st_mode):
            return MISSING, "", None
    elif not stat.S_ISREG(st.st_mode):
        return FORBIDDEN, "", None
    return FOUND, real, st


def _try_file(
    entry: RouteEntry, req: Request, target: str, rest: bytes, *, fallback: bool = False
) -> StaticAnswer | None:
    """The answer for one candidate path, or None if there is no such file."""
    root = entry.static_root
    assert root is not None
    expires, (kind, real, st) = _cached_resolve(
        root, target, req.path.endswith(b"/"), entry.route.index, fallback
    )
    if kind == MISSING:
        return None
    if kind == FORBIDDEN:
        return StaticAnswer(403)
    if kind == REDIRECT:
        location = req.path + b"/" + req.query
        return StaticAnswer(
            301,
            b"Location: %s\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n" % location,
        )
    assert st is not None
    answer = _file_answer(entry, req, real, st)
    answer.expires = min(expires, answer.expires) if answer.expires else expires
    return answer


def _siblings(
    real: str,
) -> tuple[float, tuple[str, os.stat_result] | None, tuple[str, os.stat_result] | None]:
    """(expiry, .br sibling, .gz sibling) of a file."""
    now = time.monotonic()
    hit = _variants.get(real)
    if hit is not None and hit[0] > now:
        return hit
    br, gz = _sibling(real, ".br"), _sibling(real, ".gz")
    if len(_variants) >= CACHE_ENTRIES:
        _variants.clear()
    fresh = _variants[real] = (now + CACHE_SECONDS, br, gz)
    return fresh


def _accepts(accept: bytes, coding: bytes) -> bool:
    for part in accept.split(b","):
        name, _, params = part.partition(b";")
        if name.strip().lower() == coding:
            params = params.replace(b" ", b"")
            return not (params.startswith(b"q=0") and params.strip(b"q=0.") == b"")
    return False


def _sibling(real: str, suffix: str) -> tuple[str, os.stat_result] | None:
    try:
        st = os.stat(real + suffix)
    except OSError:
        return None
    return (real + suffix, st) if stat.S_ISREG(st.st_mode) else None


def _file_answer(entry: RouteEntry, req: Request, real: str, st: os.stat_result) -> StaticAnswer:
    ctype, compressible = content_type(real)
    extra = b""
    expires = 0.0
    if compressible:
        expires, br, gz = _siblings(real)
        if br or gz:
            extra = b"Vary: Accept-Encoding\r\n"
            accept = req.accept_encoding or b""
            if br and _accepts(accept, b"br"):
                real, st = br
                extra += b"Content-Encoding: br\r\n"
            elif gz and _accepts(accept, b"gzip"):
                real, st = gz
                extra += b"Content-Encoding: gzip\r\n"
    mtime = int(st.st_mtime)
    size = st.st_size
    etag = b'"%x-%x"' % (mtime, size)
    last_modified = formatdate(mtime, usegmt=True).encode("ascii")
    validators = b"ETag: %s\r\nLast-Modified: %s\r\n%s%s" % (
        etag,
        last_modified,
        entry.cache_control,
        extra,
    )
    if _not_modified(req, etag, mtime):
        return StaticAnswer(304, validators)
    start, length, status = 0, size, 200
    content_range = b""
    if req.range is not None and req.method == b"GET" and _if_range_ok(req, etag, last_modified):
        parsed = _parse_range(req.range, size)
        if parsed == UNSATISFIABLE:
            return StaticAnswer(
                416,
                b"Content-Range: bytes */%d\r\nContent-Length: 0\r\n%s" % (size, validators),
            )
        if parsed is not None:
            start, end = parsed
            length = end - start + 1
            status = 206
            content_range = b"Content-Range: bytes %d-%d/%d\r\n" % (start, end, size)
    headers = b"Content-Type: %s\r\nContent-Length: %d\r\n%sAccept-Ranges: bytes\r\n%s" % (
        ctype,
        length,
        content_range,
        validators,
    )
    answer = StaticAnswer(status, headers, offset=start, length=length, expires=expires)
    if req.method == b"HEAD" or length == 0:
        return answer
    body_key = (real, st.st_mtime_ns, size)
    if length == size and (body := _bodies.get(body_key)) is not None:
        answer.body = body
        return answer
    try:
        fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return StaticAnswer(403)
    if length <= SMALL_FILE:
        try:
            answer.body = os.pread(fd, length, start)
        except OSError:
            return StaticAnswer(500)
        finally:
            os.close(fd)
        if len(answer.body) != length:  # the file shrank between stat and read
            return StaticAnswer(500)
        if length == size <= SMALL_BODY_CACHE:
            _bodies[body_key] = answer.body
    else:
        answer.fd = fd
    return answer


def _not_modified(req: Request, etag: bytes, mtime: int) -> bool:
    if req.if_none_match is not None:
        for item in req.if_none_match.split(b","):
            tag = item.strip()
            if tag == b"*" or tag.removeprefix(b"W/") == etag:
                return True
        return False
    if req.if_modified_since is not None:
        try:
            since = parsedate_to_datetime(req.if_modified_since.decode("latin-1")).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return False
        return mtime <= since
    return False


def _if_range_ok(req: Request, etag: bytes, last_modified: bytes) -> bool:
    return req.if_range is None or req.if_range.strip() in (etag, last_modified)


UNSATISFIABLE: Final = (-1, -1)


def _parse_range(value: bytes, size: int) -> tuple[int, int] | None:
    """(start, end) of a single byte range, UNSATISFIABLE, or None (ignore the header)."""
    unit, _, spec = value.partition(b"=")
    if unit.strip().lower() != b"bytes" or b"," in spec:
        return None
    first, dash, last = spec.strip().partition(b"-")
    if not dash:
        return None
    try:
        if not first:
            suffix = int(last)
            if suffix <= 0 or not last.isdigit():
                return UNSATISFIABLE if last.isdigit() else None
            return (max(0, size - suffix), size - 1) if size else UNSATISFIABLE
        if not first.isdigit() or (last and not last.isdigit()):
            return None
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size:
        return UNSATISFIABLE
    if end < start:
        return None
    return start, min(end, size - 1)


class FileStream:
    """Sends a large static file in chunks, waiting whenever the client's buffer is full."""

    __slots__ = ("conn", "ex", "fd", "offset", "remaining")

    def __init__(self, conn: ClientConnection, ex: Exchange, fd: int, offset: int, length: int):
        self.conn = conn
        self.ex = ex
        self.fd = fd
        self.offset = offset
        self.remaining = length

    def wake(self) -> None:
        conn = self.conn
        while self.remaining > 0 and not conn.write_paused and not conn.closed:
            if self._sendfile():
                continue
            try:
                data = os.pread(self.fd, min(STREAM_CHUNK, self.remaining), self.offset)
            except OSError:
                data = b""
            if not data:  # the file shrank under us: the length promised cannot be kept
                self.stop()
                conn.abort()
                return
            self.offset += len(data)
            self.remaining -= len(data)
            conn.write(self.ex, data)
        if self.remaining <= 0:
            self.stop()
            conn.response_done(self.ex)

    def _sendfile(self) -> bool:
        """Let the kernel copy file to socket while the transport has nothing queued.

        uvloop has no loop.sendfile, but once its write buffer is empty every earlier
        byte is in the kernel, so writing to the socket directly keeps the order. When
        the socket is full, one chunk goes through the transport instead: it queues it,
        pauses us, and wakes us when the client has read enough.
        """
        transport = self.conn.transport
        if transport is None or transport.get_write_buffer_size() != 0:
            return False
        sock = transport.get_extra_info("socket")
        if sock is None:
            return False
        try:
            sent = os.sendfile(sock.fileno(), self.fd, self.offset, self.remaining)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return False  # not a socket sendfile handles: fall back to reading and writing
        if sent <= 0:
            return False
        self.offset += sent
        self.remaining -= sent
        self.ex.bytes_out += sent
        return True

    def stop(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
            self.remaining = 0
        if self.conn.streaming is self:
            self.conn.streaming = None
