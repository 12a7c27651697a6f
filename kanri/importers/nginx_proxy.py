"""nginx settings that kanri holds once, in [proxy]: listen addresses, timeouts, sizes.

nginx allows most of them per http, server or location block; kanri has one value
for the whole proxy, so the largest one found is used, with a note naming the
others. Directives with no kanri counterpart are noted here too, with the reason.
"""

from __future__ import annotations

import re

from kanri.importers.document import Notes, Table, TomlValue
from kanri.importers.nginx_parse import Directive
from kanri.importers.nginx_reasons import (
    DROPPED,
    HANDLED,
    HEADERS_HANDLED,
    STANDARD_HEADERS,
    TLS,
    lookup,
)
from kanri.importers.units import duration_from_seconds, nginx_size, nginx_time, size_text

# directive -> ([proxy] key, kind); kind "time" and "size" are nginx units.
_PROXY_KEYS = {
    "client_max_body_size": ("client_max_body_size", "size"),
    "client_header_timeout": ("client_header_timeout", "time"),
    "client_body_timeout": ("client_body_timeout", "time"),
    "keepalive_timeout": ("keepalive_timeout", "time"),
    "send_timeout": ("send_timeout", "time"),
    "proxy_connect_timeout": ("connect_timeout", "time"),
    "proxy_read_timeout": ("read_timeout", "time"),
    "proxy_send_timeout": ("write_timeout", "time"),
}
# nginx times that mean the same in kanri as written ("M", months, is not among them).
_DIRECT_UNITS = re.compile(r"\d+(ms|s|m|h|d|w|y)")


class ProxySettings:
    """Collects [proxy] values and notes while the server blocks are walked."""

    def __init__(self, notes: Notes) -> None:
        self.notes = notes
        self.proxy = Table()
        self.values: dict[str, list[tuple[float, TomlValue, Directive]]] = {}
        self.listens: list[str] = []
        self.tls_listens: list[str] = []
        self.ports: set[int] = set()

    def drop(self, d: Directive, why: str, what: str | None = None) -> None:
        self.notes.drop(d.where, what or d.text(), why)

    def listen(self, d: Directive) -> None:
        if not d.args or d.args[0].startswith("unix:"):
            return self.drop(d, "kanri listens on TCP addresses")
        address = d.args[0]
        if address.isdigit():
            host, port = "0.0.0.0", int(address)
        else:
            host, port = host_port(address, 80)
            host = "0.0.0.0" if host == "*" else host
        text = f"{host}:{port}"
        self.ports.add(port)
        params = d.args[1:]
        if "ssl" in params or "quic" in params:
            self.tls_listens.append(text)
            return self.drop(d, TLS)
        for param in params:
            if param not in ("default_server", "default"):
                self.drop(
                    d, "kanri sets up its listening sockets itself", f"listen {address} {param}"
                )
        self.add_listen(text)
        return None

    def add_listen(self, text: str) -> None:
        if text not in self.listens:
            self.listens.append(text)

    def expires(self, d: Directive) -> str | None:
        value = d.args[-1] if d.args[0] == "modified" else d.args[0]
        if d.args[0] == "modified" or value.startswith("@"):
            self.drop(d, "kanri's `cache` counts from the time of the request")
            return None
        if value == "off":
            return None
        if value == "max":
            return "immutable"
        if value == "epoch" or value.startswith("-"):
            return "no-cache"
        if _DIRECT_UNITS.fullmatch(value):
            return value
        try:
            return duration_from_seconds(nginx_time(value))
        except ValueError:
            self.drop(d, "not an nginx time")
            return None

    def common(self, d: Directive) -> None:
        """A directive that is not about routing: a [proxy] setting, or a note."""
        if d.name in _PROXY_KEYS and d.args:
            key, kind = _PROXY_KEYS[d.name]
            if kind == "time":
                self.time_value(key, d.args[0], d)
            else:
                self.size_value(key, d.args[0], d)
            if len(d.args) > 1:
                self.drop(d, "kanri takes only the first value")
        elif d.name == "large_client_header_buffers" and len(d.args) == 2 and d.args[0].isdigit():
            try:
                size = int(d.args[0]) * nginx_size(d.args[1])
            except ValueError:
                return self.drop(d, "not an nginx size")
            self.value("max_header_size", size, size_text(size), d)
        elif d.name == "worker_processes" and d.args and _workers(d.args[0]):
            workers = d.args[0]
            value = int(workers) if workers.isdigit() else workers
            self.proxy.set("workers", value, f"nginx {d.text()} ({d.where})")
        elif d.name == "server_tokens":
            if d.args and d.args[0] == "off":
                self.proxy.set("server", False, f"nginx {d.text()} ({d.where})")
        elif d.name == "proxy_set_header" and d.args and d.args[0].lower() in STANDARD_HEADERS:
            self.notes.handle(d.where, d.text(), HEADERS_HANDLED)
        elif (reason := lookup(HANDLED, d.name)) is not None:
            self.notes.handle(d.where, d.text(), reason)
        elif (reason := lookup(DROPPED, d.name)) is not None:
            self.drop(d, reason)
        else:
            self.drop(d, "an nginx directive with no kanri counterpart")
        return None

    def time_value(self, key: str, text: str, d: Directive) -> None:
        try:
            seconds = nginx_time(text)
        except ValueError:
            return self.drop(d, "not an nginx time")
        if seconds == 0:
            return self.drop(d, "0 turns the limit off in nginx; kanri always has one")
        shown = text if _DIRECT_UNITS.fullmatch(text) else duration_from_seconds(seconds)
        self.value(key, seconds, shown, d)
        return None

    def size_value(self, key: str, text: str, d: Directive) -> None:
        try:
            size = nginx_size(text)
        except ValueError:
            return self.drop(d, "not an nginx size")
        if size == 0:
            return self.drop(d, "0 (no limit) is not supported; kanri always has a limit")
        self.value(key, size, size_text(size), d)
        return None

    def value(self, key: str, order: float, value: TomlValue, d: Directive) -> None:
        self.values.setdefault(key, []).append((order, value, d))

    # -- result -------------------------------------------------------------------------

    def table(self) -> Table:
        """The [proxy] table: listen first, then each setting with the value chosen."""
        if self.listens:
            self.proxy.values = {"listen": list(self.listens), **self.proxy.values}
        if self.tls_listens:
            tls = (
                f"nginx also listened with TLS on {', '.join(self.tls_listens)}; terminate TLS"
                " in front of kanri and forward plain HTTP to kanri's listen address"
            )
            if self.listens:
                self.proxy.note("listen", tls)
            else:
                self.proxy.comments.append(tls)
        for key, found in self.values.items():
            largest = max(found, key=lambda item: item[0])
            self.proxy.set(key, largest[1], f"nginx {largest[2].text()} ({largest[2].where})")
            if len({item[0] for item in found}) > 1:
                others = ", ".join(f"{v} ({d.where})" for _, v, d in found if d is not largest[2])
                self.proxy.note(
                    key, f"kanri has one value for the whole proxy; also found: {others}"
                )
        return self.proxy


def _workers(text: str) -> bool:
    return text == "auto" or (text.isdigit() and int(text) > 0)


def host_port(address: str, default: int) -> tuple[str, int]:
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        host = f"[{host}]"
    else:
        host, sep, port = address.rpartition(":")
        if not sep:
            host, port = address, ""
    return host, int(port) if port.isdigit() else default
