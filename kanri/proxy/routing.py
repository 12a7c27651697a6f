"""The routing table: compiled once per snapshot, immutable, matched per request.

A request goes to the route with the longest matching path prefix (nginx
prefix locations; ``exact`` routes win over every prefix, as ``location =``).
Among routes with the same path, a route for the exact Host beats a
``*.example.com`` route, which beats a route without ``host``; routes without
``host`` apply to every host. Matching is plain ``bytes.startswith``: nothing
is compiled or allocated per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from kanri.proxy.settings import RouteSource, RouteSpec

HOST_ANY: Final = 0
HOST_WILDCARD: Final = 1
HOST_EXACT: Final = 2


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """One compiled route."""

    route: RouteSpec
    prefix: bytes
    exact: bool
    host_rank: int
    host: bytes  # exact host, or the ".example.com" suffix of a wildcard, or b""
    app: str | None
    strip_prefix: bool
    static_root: str | None  # real path of the static directory (or file)
    cache_control: bytes  # a whole header line, or b""
    # Finished static answers of this route, filled and read by the connections:
    # (path, method, Accept-Encoding) -> (expiry on time.monotonic(), head, body).
    answers: dict[tuple[bytes, bytes, bytes | None], tuple[float, bytes, bytes]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def matches_host(self, host: bytes) -> bool:
        if self.host_rank == HOST_ANY:
            return True
        if self.host_rank == HOST_EXACT:
            return host == self.host
        return host.endswith(self.host) and len(host) > len(self.host)

    def upstream_path(self, url: bytes) -> bytes:
        """The request target sent upstream: the URL, minus the prefix if strip_prefix."""
        if not self.strip_prefix:
            return url
        rest = url[len(self.prefix) :]
        if not rest.startswith(b"/"):
            rest = b"/" + rest
        return rest


def compile_route(source: RouteSource) -> RouteEntry:
    route = RouteSpec.of(source)
    host = (route.host or "").encode("ascii", "replace")
    if not host:
        rank = HOST_ANY
    elif host.startswith(b"*."):
        rank, host = HOST_WILDCARD, host[1:]
    else:
        rank = HOST_EXACT
    cache = route.cache_control
    return RouteEntry(
        route=route,
        prefix=route.path.encode("utf-8"),
        exact=route.exact,
        host_rank=rank,
        host=host,
        app=route.app,
        strip_prefix=route.strip_prefix,
        static_root=str(route.static) if route.static is not None else None,
        cache_control=b"Cache-Control: %s\r\n" % cache.encode("ascii") if cache else b"",
    )


class RouteTable:
    """Routes ordered for first-match lookup; built once per snapshot."""

    __slots__ = ("_exact", "_prefixes")

    def __init__(self, routes: Sequence[RouteSource]) -> None:
        entries = [compile_route(r) for r in routes]
        exact: dict[bytes, list[RouteEntry]] = {}
        for entry in entries:
            if entry.exact:
                exact.setdefault(entry.prefix, []).append(entry)
        self._exact = {
            path: tuple(sorted(group, key=lambda e: -e.host_rank)) for path, group in exact.items()
        }
        # Stable sort: among equal prefixes and ranks, the first route in the file wins.
        self._prefixes = tuple(
            sorted(
                (e for e in entries if not e.exact),
                key=lambda e: (-len(e.prefix), -e.host_rank),
            )
        )

    def match(self, host: bytes, path: bytes) -> RouteEntry | None:
        """The route for a lowercased host (no port) and a URL path (no query); None = 404."""
        group = self._exact.get(path)
        if group is not None:
            for entry in group:
                if entry.matches_host(host):
                    return entry
        for entry in self._prefixes:
            if path.startswith(entry.prefix) and entry.matches_host(host):
                return entry
        return None


def host_key(value: bytes | None) -> bytes:
    """The Host header lowercased and without its port: b"Example.com:8080" -> b"example.com"."""
    if not value:
        return b""
    if value.startswith(b"["):
        end = value.find(b"]")
        return value[: end + 1].lower() if end > 0 else value.lower()
    colon = value.find(b":")
    if colon >= 0:
        value = value[:colon]
    return value.lower().rstrip(b".")
