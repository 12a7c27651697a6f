"""Scenario 8: memory per idle keep-alive connection, with 5,000 of them open.

Each proxy (1 worker) in turn: its RSS, then 5,000 clients that each send one
GET through it to the shared upstream and keep the connection open, its RSS
again; the difference divided by the connections still open. kanri runs with
``max_connections`` above 5,000, nginx with ``worker_connections`` to match,
and the harness raises its own open-files limit (the proxies inherit it).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import peers
from bench.contenders import (
    Running,
    make_content,
    start_caddy,
    start_haproxy,
    start_kanri_proxy,
    start_nginx,
    start_upstream,
)
from bench.load import IdleClients
from bench.options import Options
from bench.procs import Cleanup, free_port, raise_fd_limit, rss_bytes
from bench.report import Table, add_ratios

KEEPALIVE = 64
CONNECTIONS = 5000
CONTENDERS = ("kanri", "nginx", "haproxy", "caddy")
SMOKE = frozenset({"kanri", "nginx"})
KIB = 1024


def run(opts: Options) -> Table:
    only = opts.only if opts.only is not None else (SMOKE if opts.smoke else None)
    count = 500 if opts.smoke else CONNECTIONS
    limit = raise_fd_limit(count * 2 + 1000)
    table = Table(
        8,
        "Memory per idle keep-alive connection",
        f"{count:,} clients, each after one `GET /` through the proxy (1 worker), left idle; "
        "growth of the proxy's RSS divided by the connections.",
        [
            ("contender", "contender", ""),
            ("connections held", "held", ",d"),
            ("RSS before MiB", "before_mib", ".1f"),
            ("RSS after MiB", "after_mib", ".1f"),
            ("KiB per connection", "kib_per_conn", ".2f"),
            ("x nginx", "kib_per_conn_x", ".2f"),
        ],
    )
    if limit < count + 100:
        table.skipped.append(f"the open-files limit is {limit}, too low for {count} connections")
        return table
    # The directory goes last: what runs in it is stopped first.
    with tempfile.TemporaryDirectory(prefix="kanri-bench-") as tmp_name, Cleanup() as cleanup:
        tmp = Path(tmp_name)
        content = make_content(tmp / "content")
        upstream = free_port()
        start_upstream(cleanup, tmp, upstream, content)
        starters: dict[str, Callable[[Cleanup], Running]] = {
            "kanri": lambda c: start_kanri_proxy(
                c, tmp, free_port(), 1, keepalive=KEEPALIVE, upstream_port=upstream, static=content
            ),
            "nginx": lambda c: start_nginx(
                c, tmp, free_port(), 1, keepalive=KEEPALIVE, upstream_ports=[upstream]
            ),
            "haproxy": lambda c: start_haproxy(
                c, tmp, free_port(), 1, keepalive=KEEPALIVE, upstream_port=upstream
            ),
            "caddy": lambda c: start_caddy(
                c, tmp, free_port(), 1, keepalive=KEEPALIVE, upstream_port=upstream
            ),
        }
        for name in CONTENDERS:
            if only is not None and name not in only:
                continue
            with Cleanup() as per:
                try:
                    proxy = starters[name](per)
                except peers.UnavailableError as exc:
                    table.skipped.append(str(exc))
                    continue
                IdleClients(proxy.port, 50).close()  # first requests: pools, caches, code paths
                time.sleep(0.5)
                before = rss_bytes(proxy.pids())
                clients = IdleClients(proxy.port, count)
                try:
                    time.sleep(1.0)
                    after = rss_bytes(proxy.pids())
                    held = clients.still_open()
                finally:
                    clients.close()
            table.rows.append(
                {
                    "contender": proxy.name,
                    "held": held,
                    "before_mib": before / 2**20,
                    "after_mib": after / 2**20,
                    "kib_per_conn": (after - before) / max(held, 1) / KIB,
                }
            )
            print(
                f"bench: idle, {proxy.name}: {(after - before) / max(held, 1) / KIB:.2f} KiB/conn",
                file=sys.stderr,
                flush=True,
            )
    add_ratios(table.rows, group=(), base="nginx", keys=("kib_per_conn",))
    return table
