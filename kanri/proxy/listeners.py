"""Binding the listen sockets, once, in the daemon.

The sockets outlive every proxy worker: workers inherit them, and a worker
restart or a config reload never closes them, so the kernel keeps queueing
connections while a worker is being replaced.
"""

from __future__ import annotations

import errno
import socket

from kanri.config.model import ProxyConfig, parse_listen
from kanri.proxy.errors import ListenError

BACKLOG = 4096


def bind_listeners(config: ProxyConfig) -> list[socket.socket]:
    """Bind and listen on every address of ``config.listen``; raise ListenError if one fails.

    Sockets already bound are closed again when a later address fails, so a
    failed start leaves no port taken.
    """
    sockets: list[socket.socket] = []
    try:
        for address in dict.fromkeys(config.listen):
            sockets.append(_bind(address))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bind(address: str) -> socket.socket:
    host, port = parse_listen(address)
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
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(sockaddr)
        sock.listen(BACKLOG)
        sock.setblocking(False)
        sock.set_inheritable(True)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ListenError(
                f"cannot listen on {address}: the port is already in use; "
                "stop the other server or change proxy.listen in kanri.toml"
            ) from None
        if exc.errno == errno.EACCES:
            raise ListenError(
                f"cannot listen on {address}: permission denied; ports below 1024 need root "
                "or CAP_NET_BIND_SERVICE, or choose a port of 1024 or more"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ListenError(
                f"cannot listen on {address}: {host} is not an address of this machine"
            ) from None
        raise ListenError(f"cannot listen on {address}: {exc.strerror}") from None
    return sock
