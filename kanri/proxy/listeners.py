"""Binding the listen sockets, once, in the daemon.

The sockets outlive every proxy worker: workers inherit them, and a worker
restart or a config reload never closes them, so the kernel keeps queueing
connections while a worker is being replaced.

Each address gets one SO_REUSEPORT socket per worker slot, as nginx's
``reuseport``: the kernel spreads new connections evenly over the slots,
where one shared socket lets the busiest worker take most of them. A slot's
socket stays open while its worker restarts; the connections the kernel
queues on it meanwhile are served by the new worker.
"""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING, Any

from kanri.proxy.errors import ListenError

if TYPE_CHECKING:
    from kanri.config.model import ProxyConfig

BACKLOG = 4096


def bind_listeners(config: ProxyConfig) -> list[socket.socket]:
    """Bind and listen on every address of ``config.listen``; raise ListenError if one fails.

    These are the sockets of the first worker slot; ``bind_slot`` adds the
    others'. Sockets already bound are closed again when a later address fails, so a
    failed start leaves no port taken.
    """
    sockets: list[socket.socket] = []
    try:
        for address in dict.fromkeys(config.listen):
            _check_free(address)
            sockets.append(_bind(address))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def bind_slot(listener: socket.socket) -> socket.socket:
    """Another SO_REUSEPORT socket on the address of ``listener``, for one more worker slot."""
    sock = socket.socket(listener.family, listener.type, listener.proto)
    try:
        _configure(sock)
        sock.bind(listener.getsockname())
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ListenError(
            f"cannot listen on {listener.getsockname()} for a second worker: {exc.strerror}"
        ) from None
    return sock


def _configure(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    sock.set_inheritable(True)


def _check_free(address: str) -> None:
    """Raise ListenError if anything listens on ``address`` already.

    SO_REUSEPORT would let our bind succeed next to another server that also
    sets it (another kanri, an nginx with ``reuseport``) and silently share its
    connections; a probe bound without SO_REUSEPORT fails instead. Our own
    sockets do the same to a kanri started later, which probes too.
    """
    host, port = _parse(address)
    if port == 0:
        return
    family, kind, proto, sockaddr = _resolve(address, host, port)
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            raise _listen_error(address, host, exc) from None


def _parse(address: str) -> tuple[str, int]:
    # Imported here, in the daemon: the worker imports this module for BACKLOG and
    # must not load pydantic through kanri.config.
    from kanri.config.model import parse_listen

    return parse_listen(address)


def _resolve(address: str, host: str, port: int) -> tuple[socket.AddressFamily, int, int, Any]:
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_NUMERICSERV
        )
    except socket.gaierror as exc:
        raise ListenError(
            f"cannot listen on {address}: {host!r} is not a local address ({exc.strerror}); "
            'use an IP address such as "0.0.0.0" or "127.0.0.1"'
        ) from None
    family, kind, proto, _, sockaddr = infos[0]
    return family, kind, proto, sockaddr


def _bind(address: str) -> socket.socket:
    host, port = _parse(address)
    family, kind, proto, sockaddr = _resolve(address, host, port)
    sock = socket.socket(family, kind, proto)
    try:
        _configure(sock)
        sock.bind(sockaddr)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise _listen_error(address, host, exc) from None
    return sock


def _listen_error(address: str, host: str, exc: OSError) -> ListenError:
    if exc.errno == errno.EADDRINUSE:
        return ListenError(
            f"cannot listen on {address}: the port is already in use; "
            "stop the other server or change proxy.listen in kanri.toml"
        )
    if exc.errno == errno.EACCES:
        return ListenError(
            f"cannot listen on {address}: permission denied; ports below 1024 need root "
            "or CAP_NET_BIND_SERVICE, or choose a port of 1024 or more"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return ListenError(f"cannot listen on {address}: {host} is not an address of this machine")
    return ListenError(f"cannot listen on {address}: {exc.strerror}")
