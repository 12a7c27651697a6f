"""nginx server blocks into kanri's [proxy] table and [[routes]], with app placeholders.

Each ``proxy_pass`` target becomes a Backend (an upstream block, or one
host:port); joining with PM2 or writing placeholders happens later, in build.
Settings nginx allows per block but kanri holds once for the whole proxy
(timeouts, body size) take the largest value found, with a note.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field, replace

from kanri.config.model import ProxyConfig
from kanri.importers.document import Notes, Table
from kanri.importers.nginx_parse import Directive, NginxConfig
from kanri.importers.nginx_proxy import ProxySettings, host_port

UPSTREAM_KEEPALIVE: int = ProxyConfig.model_fields["upstream_keepalive"].default
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0", "*", "[::]"})

_ROUTE_DIRECTIVES = frozenset({"proxy_pass", "alias", "try_files"})
_SCOPE_DIRECTIVES = frozenset({"root", "index", "expires"})


@dataclass
class Backend:
    """Where nginx sent requests: an upstream block, or one address."""

    key: str
    hint: str  # a name for the app placeholder
    servers: list[tuple[str, int]] = field(default_factory=list)
    described: list[str] = field(default_factory=list)
    uses: list[str] = field(default_factory=list)
    balance: str | None = None


@dataclass
class NginxImport:
    proxy: Table
    routes: list[Table]
    app_routes: list[tuple[Table, str]]  # route, Backend.key: the app is filled in by build
    backends: dict[str, Backend]
    notes: Notes


@dataclass(frozen=True)
class _Scope:
    """What a block inherits from the blocks around it."""

    root: str | None = None
    index: str | None = None
    cache: str | None = None


def convert_nginx(config: NginxConfig) -> NginxImport:
    converter = _Converter(config.notes)
    converter.run(config.directives)
    return converter.result()


class _Converter:
    def __init__(self, notes: Notes) -> None:
        self.notes = notes
        self.settings = ProxySettings(notes)
        self.routes: list[Table] = []
        self.app_routes: list[tuple[Table, str]] = []
        self.seen: dict[tuple[str | None, str, bool], str] = {}
        self.upstreams: dict[str, Backend] = {}
        self.backends: dict[str, Backend] = {}
        self.hosted_servers: list[str] = []

    def drop(self, d: Directive, why: str, what: str | None = None) -> None:
        self.notes.drop(d.where, what or d.text(), why)

    # -- contexts -----------------------------------------------------------------------

    def run(self, directives: tuple[Directive, ...]) -> None:
        for d in _walk(directives, "upstream"):
            self.upstream(d)
        self.block(directives, _Scope(), "main")

    def block(self, directives: tuple[Directive, ...], parent: _Scope, context: str) -> None:
        scope = self.scope(directives, parent)
        for d in directives:
            if d.name == "http" and d.block is not None:
                self.block(d.block, scope, "http")
            elif d.name == "server" and d.block is not None and context in ("main", "http"):
                self.server(d, scope)
            elif d.name == "events" and d.block is not None:
                for e in d.block:
                    if e.name == "worker_connections" and e.args and e.args[0].isdigit():
                        self.settings.value("max_connections", int(e.args[0]), int(e.args[0]), e)
                    else:
                        self.settings.common(e)
            elif d.name not in ("upstream", *_SCOPE_DIRECTIVES):
                self.settings.common(d)

    def server(self, server: Directive, parent: _Scope) -> None:
        assert server.block is not None
        scope = self.scope(server.block, parent)
        hosts = self.hosts(server)
        listens = [d for d in server.block if d.name == "listen"]
        for d in listens:
            self.settings.listen(d)
        if not listens:  # nginx's default when it runs as root
            self.settings.add_listen("0.0.0.0:80")
            self.settings.ports.add(80)
        before = len(self.routes)
        has_root_location = False
        for d in server.block:
            if d.name == "location":
                has_root_location |= d.args in (("/",), ("^~", "/"))
                self.location(d, scope, hosts)
            elif d.name in _ROUTE_DIRECTIVES:
                self.drop(d, "only a location can send requests somewhere in kanri")
            elif d.name not in ("listen", "server_name", *_SCOPE_DIRECTIVES):
                self.settings.common(d)
        if scope.root is not None and not has_root_location:
            self.add_routes(server, hosts, "/", False, self.static_route(scope, scope.root))
        if len(self.routes) > before and hosts != [None]:
            self.hosted_servers.append(hosts[0] or "")

    def location(self, loc: Directive, parent: _Scope, hosts: list[str | None]) -> None:
        assert loc.block is not None
        modifier, path = ("", loc.args[0]) if len(loc.args) == 1 else (loc.args[0], loc.args[-1])
        label = f"location {' '.join(loc.args)}"
        if modifier in ("~", "~*"):
            return self.drop(
                loc,
                "kanri routes match path prefixes, not regular expressions; these requests now go"
                " to the route with the longest matching prefix",
                label,
            )
        if path.startswith("@"):
            return self.drop(loc, "kanri has no named locations (internal redirects)", label)
        if len(loc.args) > 2 or modifier not in ("", "=", "^~") or not path.startswith("/"):
            return self.drop(loc, "not a location kanri can route", label)
        exact = modifier == "="
        scope = self.scope(loc.block, parent)
        found = {d.name: d for d in loc.block if d.name in _ROUTE_DIRECTIVES}
        nested = [d for d in loc.block if d.name == "location"]
        route: Table | None = None
        backend: str | None = None
        if "proxy_pass" in found:
            target = self.proxy_pass(found["proxy_pass"], path, exact, label)
            if target is not None:
                backend, strip = target
                route = Table(values={"app": backend})
                if strip:
                    route.set("strip_prefix", True)
            for name in ("alias", "try_files"):
                if name in found:
                    self.drop(found[name], "ignored next to proxy_pass")
            if any(d.name == "expires" for d in loc.block):
                expires = next(d for d in loc.block if d.name == "expires")
                self.drop(expires, "kanri sends `cache` for static routes only; set it in the app")
        elif "alias" in found:
            route = self.static_target(found["alias"], found["alias"].args[0], path, exact, scope)
        elif scope.root is not None:
            static = posixpath.normpath(scope.root.rstrip("/") + path)
            route = self.static_target(loc, static, path, exact, scope)
        elif not nested:
            self.drop(loc, "no proxy_pass, root or alias here, so nothing to route", label)
        if route is not None:
            if route.values.get("static") is not None and "try_files" in found:
                self.try_files(found["try_files"], route, path)
            self.add_routes(loc, hosts, path, exact, route, backend=backend)
        for d in loc.block:
            if d.name == "location":
                self.location(d, scope, hosts)
            elif d.name not in _ROUTE_DIRECTIVES and d.name not in _SCOPE_DIRECTIVES:
                self.settings.common(d)
        return None

    # -- routes -------------------------------------------------------------------------

    def static_target(
        self, d: Directive, static: str, path: str, exact: bool, scope: _Scope
    ) -> Table | None:
        if "$" in static:
            self.drop(d, "kanri serves a fixed directory; variables are not expanded")
            return None
        if exact and not path.endswith("/"):
            self.drop(
                d,
                "kanri's static routes serve directories; serving one file from an exact"
                " location is not supported (a static route for its directory serves it)",
                f"location = {path} ({d.text()})",
            )
            return None
        if not static.startswith("/"):
            self.notes.check.append(
                f"{d.where}: {static!r} was relative to nginx's prefix; kanri reads it relative"
                " to kanri.toml's directory"
            )
        return self.static_route(scope, posixpath.normpath(static))

    def static_route(self, scope: _Scope, static: str) -> Table:
        route = Table(values={"static": static})
        if scope.index is not None and scope.index != "index.html":
            route.set("index", scope.index)
        if scope.cache is not None:
            route.set("cache", scope.cache)
        return route

    def add_routes(
        self,
        d: Directive,
        hosts: list[str | None],
        path: str,
        exact: bool,
        target: Table,
        *,
        backend: str | None = None,
    ) -> None:
        for host in hosts:
            key = (host, path, exact)
            if key in self.seen:
                where = f"host {host} " if host else ""
                self.drop(
                    d,
                    f"same {where}path as the route from {self.seen[key]}; kanri routes by host"
                    " and path, not by listen address",
                    f"{'location = ' if exact else 'location '}{path}",
                )
                continue
            self.seen[key] = d.where
            route = Table()
            if host is not None:
                route.set("host", host)
            route.set("path", path)
            if exact:
                route.set("exact", True)
            for name, value in target.values.items():
                route.set(name, value)
            route.notes = {k: list(v) for k, v in target.notes.items()}
            route.comments.append(f"from {d.where}")
            self.routes.append(route)
            if backend is not None:
                self.app_routes.append((route, backend))

    def proxy_pass(
        self, d: Directive, path: str, exact: bool, label: str
    ) -> tuple[str, bool] | None:
        url = d.args[0] if d.args else ""
        if "$" in url:
            self.drop(d, "kanri sends a route to one app; variables are not expanded")
            return None
        if url.startswith("http://unix:"):
            socket, _, rest = url[len("http://unix:") :].partition(":")
            backend = self.backend(f"unix:{socket}", posixpath.basename(socket).split(".")[0])
            uri: str | None = rest or None
            self.notes.check.append(
                f"{d.where}: nginx reached this app through the Unix socket {socket}; under kanri"
                " it must listen on 127.0.0.1:$PORT instead (e.g. gunicorn --bind 127.0.0.1:$PORT)"
            )
        else:
            match = re.fullmatch(r"(https?)://([^/]+)(/.*)?", url)
            if match is None:
                self.drop(d, "not an http:// address")
                return None
            scheme, authority, uri = match.groups()
            if scheme == "https":
                self.notes.check.append(
                    f"{d.where}: nginx spoke HTTPS to this app; kanri speaks plain HTTP to its apps"
                )
            backend = self.upstreams.get(authority) or self.address_backend(authority, scheme, path)
        backend.uses.append(f"{label} ({d.where})")
        self.backends[backend.key] = backend
        if uri is None or uri == path:
            return backend.key, False
        if uri == "/" and not exact:
            if not path.endswith("/"):
                self.notes.check.append(
                    f"{d.where}: nginx turned {path}/x into //x here; kanri's strip_prefix sends /x"
                )
            return backend.key, True
        self.drop(
            d,
            f"kanri can only strip the prefix (strip_prefix), not replace {path} with {uri};"
            " the app now receives the original path",
        )
        return backend.key, False

    def address_backend(self, authority: str, scheme: str, path: str) -> Backend:
        host, port = host_port(authority, 443 if scheme == "https" else 80)
        segment = path.strip("/").split("/")[0]
        hint = re.sub(r"[^A-Za-z0-9_-]+", "-", segment).strip("-") or f"app-{port}"
        backend = self.backend(f"{host}:{port}", hint)
        backend.servers = [(host, port)]
        if host not in LOCAL_HOSTS:
            self.notes.check.append(
                f"nginx proxied to {host}:{port}; kanri proxies only to apps it runs itself"
            )
        return backend

    def backend(self, key: str, hint: str) -> Backend:
        if key not in self.backends:
            self.backends[key] = Backend(key, hint, described=[key])
        return self.backends[key]

    def try_files(self, d: Directive, route: Table, path: str) -> None:
        *tries, last = d.args if len(d.args) >= 2 else ("", "")
        odd = [t for t in tries if t not in ("$uri", "$uri/", "$uri/index.html")]
        if odd:
            self.drop(d, "kanri tries the file, then the directory's index file, then `fallback`")
        if last.startswith("/") and "$" not in last and last.startswith(path.rstrip("/") + "/"):
            route.set("fallback", "/" + last[len(path.rstrip("/")) + 1 :])
        elif last.startswith("@"):
            self.drop(d, "kanri cannot fall back from files to an app; route the path to the app")
        elif last not in ("=404", "") and not odd:
            self.drop(d, "kanri answers 404 when no file matches, or serves `fallback` (a file)")

    # -- upstreams and addresses --------------------------------------------------------

    def upstream(self, d: Directive) -> None:
        if not d.args or d.block is None:
            return
        name = d.args[0]
        backend = Backend(f"upstream {name}", name, described=[])
        for s in d.block:
            if s.name == "server" and s.args:
                self.upstream_server(s, backend)
            elif s.name == "keepalive" and s.args and s.args[0].isdigit():
                self.keepalive(s, int(s.args[0]))
            elif s.name == "least_conn":
                backend.balance = "least_conn"
            elif s.name in ("ip_hash", "hash", "sticky", "random"):
                self.drop(s, "kanri balances round robin or least_conn; no sticky sessions")
            else:
                self.drop(s, "no kanri counterpart in an upstream")
        self.upstreams[name] = backend

    def keepalive(self, s: Directive, count: int) -> None:
        """nginx keeps no idle upstream connections unless told, so configs name a
        small pool; kanri's default is larger, and a smaller one only costs."""
        if count > UPSTREAM_KEEPALIVE:
            self.settings.value("upstream_keepalive", count, count, s)
        else:
            self.notes.handle(
                s.where,
                s.text(),
                f"kanri's `upstream_keepalive` default keeps up to {UPSTREAM_KEEPALIVE} idle"
                " connections per instance; fewer only close and reopen them under load",
            )

    def upstream_server(self, s: Directive, backend: Backend) -> None:
        address = s.args[0]
        params = dict(p.partition("=")[::2] for p in s.args[1:])
        if "down" in params or "backup" in params:
            return self.drop(s, "kanri runs every instance it starts and balances over them all")
        backend.described.append(address)
        if not address.startswith("unix:"):
            backend.servers.append(host_port(address, 80))
        for param, value in params.items():
            if param == "max_fails" and value.isdigit():
                self.settings.value("max_fails", int(value), int(value), s)
            elif param == "fail_timeout":
                self.settings.time_value("fail_timeout", value, s)
            else:
                self.drop(
                    s, "kanri balances evenly over ready instances", f"server {address} {param}"
                )
        return None

    def hosts(self, server: Directive) -> list[str | None]:
        assert server.block is not None
        hosts: list[str | None] = []
        names = [(d, n) for d in server.block if d.name == "server_name" for n in d.args]
        for d, written in names:
            name = written.lower()
            if name in ("_", ""):
                continue
            if name.startswith("."):
                hosts += [name[1:], "*" + name]
            elif _host_name(name):
                hosts.append(name)
            else:
                self.drop(d, "kanri matches a host name or *.domain only", f"server_name {name}")
        if not hosts and any(n not in ("_", "") for _, n in names):
            self.notes.check.append(f"{server.where}: this server's routes now match every host")
        return hosts or [None]

    # -- settings -----------------------------------------------------------------------

    def scope(self, directives: tuple[Directive, ...], parent: _Scope) -> _Scope:
        scope = parent
        for d in directives:
            if d.name == "root" and d.args:
                scope = replace(scope, root=d.args[0])
            elif d.name == "index" and d.args:
                scope = replace(scope, index=d.args[0])
                if len(d.args) > 1:
                    self.drop(d, f"kanri tries one index file: {d.args[0]}")
            elif d.name == "expires" and d.args:
                cache = self.settings.expires(d)
                scope = replace(scope, cache=cache)
        return scope

    def result(self) -> NginxImport:
        for name, backend in self.upstreams.items():
            if backend.key not in self.backends:
                self.notes.drop("nginx", f"upstream {name}", "no proxy_pass uses it")
        if len(set(self.hosted_servers)) == 1 and all("host" in r.values for r in self.routes):
            self.notes.check.append(
                f"nginx also sent requests for other hosts to the server of {self.hosted_servers[0]}"
                " (its default server); remove `host` from its routes to do the same"
            )
        ports = sorted(self.settings.ports)
        if len(ports) > 1:
            self.notes.check.append(
                f"nginx had server blocks on ports {', '.join(map(str, ports))};"
                " kanri routes every request by host and path, whichever address it came to"
            )
        return NginxImport(
            self.settings.table(), self.routes, self.app_routes, self.backends, self.notes
        )


def _host_name(name: str) -> bool:
    """True for names kanri's `host` takes: example.com or *.example.com."""
    bare = name[2:] if name.startswith("*.") else name
    return bool(bare) and not any(c in bare for c in "~$:*/")


def _walk(directives: tuple[Directive, ...], name: str) -> list[Directive]:
    found: list[Directive] = []
    for d in directives:
        if d.name == name:
            found.append(d)
        elif d.block is not None and d.name == "http":
            found += _walk(d.block, name)
    return found
