"""The routing table and balancer choices, as pure functions of their inputs."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from kanri.proxy.balance import Balancer, Pool
from kanri.proxy.routing import RouteTable, host_key
from kanri.proxy.snapshot import AppTargets, Upstream
from tests.proxy.helpers import route


def table(root: Path) -> RouteTable:
    return RouteTable(
        [
            route("/", root, app="web"),
            route("/api/", root, app="api"),
            route("/api/admin/", root, app="admin"),
            route("/health", root, app="probe", exact=True),
            route("/", root, app="shop", host="shop.example.com"),
            route("/", root, app="tenants", host="*.example.com"),
            route("/static/", root, static="."),
        ]
    )


def app_for(t: RouteTable, host: bytes, path: bytes) -> str | None:
    entry = t.match(host, path)
    return None if entry is None else (entry.app or "static")


def test_longest_prefix_exact_and_hosts(tmp_path: Path) -> None:
    t = table(tmp_path)
    assert app_for(t, b"x.org", b"/") == "web"
    assert app_for(t, b"x.org", b"/api/users") == "api"
    assert app_for(t, b"x.org", b"/api/admin/x") == "admin"
    assert app_for(t, b"x.org", b"/api") == "web"  # "/api/" does not match "/api"
    assert app_for(t, b"x.org", b"/health") == "probe"
    assert app_for(t, b"x.org", b"/healthz") == "web"
    assert app_for(t, b"shop.example.com", b"/cart") == "shop"
    assert app_for(t, b"eu.example.com", b"/cart") == "tenants"
    assert app_for(t, b"example.com", b"/cart") == "web"  # *.example.com needs a subdomain
    assert app_for(t, b"shop.example.com", b"/api/x") == "api"  # longer path wins over host
    assert app_for(t, b"x.org", b"/static/app.js") == "static"


def test_no_match_is_none(tmp_path: Path) -> None:
    t = RouteTable([route("/api/", tmp_path, app="api")])
    assert t.match(b"x", b"/") is None


def test_strip_prefix(tmp_path: Path) -> None:
    entry = RouteTable([route("/api", tmp_path, app="api", strip_prefix=True)]).match(b"", b"/api")
    assert entry is not None
    assert entry.upstream_path(b"/api/users?x=1") == b"/users?x=1"
    assert entry.upstream_path(b"/api") == b"/"
    assert entry.upstream_path(b"/api?x") == b"/?x"


def test_host_key() -> None:
    assert host_key(b"Example.COM:8080") == b"example.com"
    assert host_key(b"[::1]:8080") == b"[::1]"
    assert host_key(b"example.com.") == b"example.com"
    assert host_key(None) == b""


@given(st.binary(max_size=200), st.binary(max_size=50))
def test_match_never_raises(path: bytes, host: bytes) -> None:
    t = table(Path("/srv"))
    entry = t.match(host_key(host), path)
    assert entry is None or path.startswith(entry.prefix)


def pools(n: int) -> tuple[Pool, ...]:
    return tuple(Pool(Upstream(f"a:{i}", "a", "127.0.0.1", 1000 + i)) for i in range(n))


def test_round_robin_skips_instances_out_of_rotation() -> None:
    members = pools(3)
    balancer = Balancer(AppTargets("a", tuple(p.upstream for p in members)), members)
    assert [balancer.pick(0.0, []) for _ in range(4)] == [*members, members[0]]
    members[1].down_until = 10.0
    assert [balancer.pick(5.0, []) for _ in range(4)] == [members[2], members[0]] * 2
    assert balancer.pick(5.0, [members[0], members[2]]) is members[1]  # last resort
    for p in members:
        p.failed_check = True
    assert balancer.pick(20.0, []) is not None  # all out: try them anyway


def test_least_conn_prefers_the_least_busy() -> None:
    members = pools(3)
    targets = AppTargets("a", tuple(p.upstream for p in members), balance="least_conn")
    balancer = Balancer(targets, members)
    members[0].active, members[1].active, members[2].active = 5, 1, 3
    assert balancer.pick(0.0, []) is members[1]
    assert balancer.pick(0.0, [members[1]]) is members[2]
