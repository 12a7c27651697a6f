"""Starting each contender from a config written for the run, and knowing its processes.

- the shared upstream: one nginx process (``return 200`` for ``/``, files for
  the rest) that every proxy forwards to;
- kanri (``kanri up -d``), nginx, HAProxy and Caddy as proxies with N workers;
- PM2 (its own ``PM2_HOME`` per run) and supervisord as supervisors.

kanri can only route to apps it runs, so in the proxy scenarios its app ``up``
is a stand-in process (``sleep``) whose fixed ``port`` is the shared
upstream's: kanri's readiness check (a TCP connect) passes, and kanri's proxy
sends its requests to the very processes the other proxies use.

Each ``start_*`` registers how to stop what it started with the Cleanup.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench import peers
from bench.procs import (
    BenchError,
    Cleanup,
    children,
    kill_tree,
    start,
    tail,
    wait_answers,
)

HERE = Path(__file__).parent
APPS = HERE / "apps"
HELLO_JS = APPS / "hello.js"
IDLE_PY = APPS / "idle.py"
BODY = b"hello, world\n"
MAX_CONNECTIONS = 10240  # per worker, for every proxy: room for scenario 8's 5,000 idle clients


def fd_limit() -> int:
    """The open-files limit the contenders inherit (the harness raises it as far as it may)."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class Running:
    """A started contender: where it listens and which processes are its own."""

    name: str
    port: int
    pids: Callable[[], list[int]]
    app_pids: Callable[[], list[int]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _user_line() -> str:
    # nginx drops to "nobody" by default; the temp dirs and files here belong to root.
    return "user root;\n" if os.geteuid() == 0 else ""


def _tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    try:
        proc = psutil.Process(pid)
        return [pid, *(p.pid for p in proc.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


# --- the shared upstream ------------------------------------------------------------


def make_content(root: Path) -> Path:
    """Files served by the upstream (``64k.bin``) and the static routes (``1k.bin``, ``1m.bin``)."""
    root.mkdir(parents=True, exist_ok=True)
    pattern = bytes(range(256))
    for name, size in (("1k.bin", 1024), ("64k.bin", 64 * 1024), ("1m.bin", 1024 * 1024)):
        (root / name).write_bytes((pattern * (size // 256 + 1))[:size])
    return root


def start_upstream(cleanup: Cleanup, tmp: Path, port: int, content: Path) -> Running:
    """One nginx process answering ``/`` with a 13-byte body, files, and POST ``/upload``
    (after reading the whole body)."""
    nginx = peers.need("nginx")
    conf = tmp / "upstream.conf"
    log = tmp / "upstream.log"
    conf.write_text(
        f"""worker_processes 1;
daemon off;
{_user_line()}error_log {tmp}/upstream-error.log warn;
pid {tmp}/upstream.pid;
worker_rlimit_nofile {min(fd_limit(), 20480)};
events {{ worker_connections 10240; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  client_max_body_size 0;
  client_body_temp_path {tmp}/upstream-body;
  open_file_cache max=64 inactive=60s;
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location = / {{ default_type text/plain; return 200 "hello, world\\n"; }}
    location = /upload {{
      # Read the whole body (into memory) before answering, as an app does: nginx
      # buffers it, then asks itself for the answer over a Unix socket.
      client_body_buffer_size 2m;
      proxy_request_buffering on;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://answer/ok;
    }}
    location / {{ root {content}; }}
  }}
  upstream answer {{ server unix:{tmp}/upstream-answer.sock; keepalive 16; }}
  server {{
    listen unix:{tmp}/upstream-answer.sock;
    location / {{ default_type text/plain; return 200 "ok\\n"; }}
  }}
}}
"""
    )
    proc = start(cleanup, "upstream nginx", [nginx, "-p", str(tmp), "-c", str(conf)], log=log)
    wait_answers(port, "the upstream nginx", proc=proc, log=log)
    return Running("upstream", port, lambda: _tree(proc.pid))


# --- kanri ------------------------------------------------------------------------


class Kanri:
    """A kanri project in a directory, run with ``kanri up -d`` and stopped with ``kanri down``."""

    def __init__(self, cleanup: Cleanup, project: Path, toml: str, *, timeout: float = 60) -> None:
        self.project = project
        project.mkdir(parents=True, exist_ok=True)
        self.config = project / "kanri.toml"
        self.config.write_text(toml)
        cleanup.push(f"kanri in {project}", self.down)
        self.daemon = 0
        result = self.cli("up", "-d", timeout=timeout)
        log = project / ".kanri" / "logs" / "kanri.log"
        if result.returncode != 0:
            raise BenchError(
                f"kanri up -d failed ({result.returncode}): {result.stdout}{result.stderr}{tail(log)}"
            )
        self.daemon = int((project / ".kanri" / "kanri.lock").read_text().strip())

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kanri", *args, "-c", str(self.config)],
            check=False,
            cwd=self.project,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(os.environ, NO_COLOR="1"),
        )

    def workers(self) -> list[int]:
        return children(self.daemon, contains="kanri.proxy.worker")

    def pids(self) -> list[int]:
        """The daemon and its proxy workers (not the apps, not the idle guardian shell)."""
        return [self.daemon, *self.workers()]

    def ls(self) -> list[dict[str, Any]]:
        result = self.cli("ls", "--json")
        if result.returncode != 0:
            raise BenchError(f"kanri ls failed: {result.stderr.strip()}")
        rows: list[dict[str, Any]] = json.loads(result.stdout)
        return rows

    def app_pids(self, app: str) -> list[int]:
        """The app's instance processes and their descendants."""
        pids = []
        for row in self.ls():
            if row["app"] == app and row.get("pid"):
                pids += _tree(int(row["pid"]))
        return pids

    def down(self) -> None:
        if self.config.exists():
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.cli("down", timeout=60)
        if self.daemon and psutil.pid_exists(self.daemon):
            kill_tree(self.daemon)


def kanri_proxy_toml(
    port: int,
    workers: int,
    *,
    keepalive: int,
    upstream_port: int | None = None,
    static: Path | None = None,
) -> str:
    """The [proxy] table and routes for the proxy scenarios (access log off, as for the peers)."""
    text = f"""[proxy]
listen = ["127.0.0.1:{port}"]
workers = {workers}
access_log = false
upstream_keepalive = {keepalive}
client_max_body_size = "2MiB"
max_connections = {MAX_CONNECTIONS}

"""
    if static is not None:
        text += f'[[routes]]\npath = "/static/"\nstatic = "{static}"\n\n'
    if upstream_port is not None:
        text += f"""[[routes]]
path = "/"
app = "up"

[apps.up]
# A stand-in: the shared upstream already listens on this port (see bench/contenders.py).
command = "sleep 1000000"
port = {upstream_port}
"""
    return text


def start_kanri_proxy(
    cleanup: Cleanup,
    tmp: Path,
    port: int,
    workers: int,
    *,
    keepalive: int,
    upstream_port: int,
    static: Path,
) -> Running:
    toml = kanri_proxy_toml(
        port, workers, keepalive=keepalive, upstream_port=upstream_port, static=static
    )
    kanri = Kanri(cleanup, tmp / f"kanri-{port}", toml)
    wait_answers(port, "kanri's proxy")
    return Running("kanri", port, kanri.pids, extra={"kanri": kanri})


# --- nginx ------------------------------------------------------------------------


def nginx_conf(
    tmp: Path,
    port: int,
    workers: int,
    *,
    keepalive: int,
    upstream_ports: list[int],
    static: Path | None = None,
    tuned: bool = True,
) -> str:
    """nginx as an expert sets it up in front of an app: keep-alive to the app, HTTP/1.1,
    no access log, sendfile and open_file_cache (1 s, as kanri's) for static files.
    ``tuned=False`` keeps nginx's defaults for passive health and retries (scenario 9)."""
    servers = "\n".join(f"    server 127.0.0.1:{p};" for p in upstream_ports)
    static_block = f"    location /static/ {{ alias {static}/; }}\n" if static else ""
    buffers = (
        "      proxy_request_buffering off;  # stream uploads, as kanri does\n"
        "      proxy_buffers 16 16k;          # a 64 KiB answer fits in memory\n"
        "      proxy_buffer_size 16k;\n"
        if tuned
        else ""
    )
    return f"""worker_processes {workers};
daemon off;
{_user_line()}error_log {tmp}/error.log warn;
pid {tmp}/nginx.pid;
worker_rlimit_nofile {min(fd_limit(), MAX_CONNECTIONS * 2)};
events {{ worker_connections {MAX_CONNECTIONS}; }}
http {{
  access_log off;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 75s;
  keepalive_requests 100000;
  client_max_body_size 2m;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  open_file_cache max=2048 inactive=20s;
  open_file_cache_valid 1s;
  open_file_cache_errors on;
  upstream up {{
{servers}
    keepalive {keepalive};
    keepalive_requests 100000;
  }}
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
{static_block}    location / {{
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
{buffers}    }}
  }}
}}
"""


def start_nginx(
    cleanup: Cleanup,
    tmp: Path,
    port: int,
    workers: int,
    *,
    keepalive: int,
    upstream_ports: list[int],
    static: Path | None = None,
    tuned: bool = True,
    name: str = "nginx",
) -> Running:
    nginx = peers.need("nginx")
    home = tmp / f"nginx-{port}"
    home.mkdir(parents=True, exist_ok=True)
    conf = home / "nginx.conf"
    conf.write_text(
        nginx_conf(
            home,
            port,
            workers,
            keepalive=keepalive,
            upstream_ports=upstream_ports,
            static=static,
            tuned=tuned,
        )
    )
    log = home / "out.log"
    proc = start(cleanup, name, [nginx, "-p", str(home), "-c", str(conf)], log=log)
    wait_answers(port, name, proc=proc, log=log)
    return Running(name, port, lambda: _tree(proc.pid))


# --- HAProxy ----------------------------------------------------------------------


def start_haproxy(
    cleanup: Cleanup,
    tmp: Path,
    port: int,
    workers: int,
    *,
    keepalive: int,
    upstream_port: int,
) -> Running:
    haproxy = peers.need("haproxy")
    home = tmp / f"haproxy-{port}"
    home.mkdir(parents=True, exist_ok=True)
    conf = home / "haproxy.cfg"
    conf.write_text(
        f"""global
  nbthread {workers}
  maxconn {min(MAX_CONNECTIONS, (fd_limit() - 200) // 2)}

defaults
  mode http
  option http-keep-alive
  http-reuse always
  option forwardfor
  timeout connect 60s
  timeout client 75s
  timeout server 60s
  timeout http-request 60s
  timeout http-keep-alive 75s

frontend fe
  bind 127.0.0.1:{port}
  http-request set-header X-Real-IP %[src]
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  default_backend up

backend up
  server up1 127.0.0.1:{upstream_port} pool-max-conn {keepalive * workers}
"""
    )
    log = home / "out.log"
    proc = start(cleanup, "haproxy", [haproxy, "-db", "-f", str(conf)], log=log)
    wait_answers(port, "HAProxy", proc=proc, log=log)
    return Running("HAProxy", port, lambda: _tree(proc.pid))


# --- Caddy ------------------------------------------------------------------------


def start_caddy(
    cleanup: Cleanup,
    tmp: Path,
    port: int,
    workers: int,
    *,
    keepalive: int,
    upstream_port: int,
    static: Path | None = None,
) -> Running:
    caddy = peers.need("caddy")
    home = tmp / f"caddy-{port}"
    home.mkdir(parents=True, exist_ok=True)
    conf = home / "Caddyfile"
    static_block = (
        f"  handle_path /static/* {{\n    root * {static}\n    file_server\n  }}\n"
        if static
        else ""
    )
    conf.write_text(
        f"""{{
  admin off
  auto_https off
}}

http://127.0.0.1:{port} {{
  bind 127.0.0.1
{static_block}  handle {{
    reverse_proxy 127.0.0.1:{upstream_port} {{
      header_up X-Real-IP {{remote_host}}
      transport http {{
        keepalive 60s
        keepalive_idle_conns {keepalive}
        keepalive_idle_conns_per_host {keepalive}
      }}
    }}
  }}
}}
"""
    )
    env = dict(
        os.environ,
        GOMAXPROCS=str(workers),
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
    )
    log = home / "out.log"
    proc = start(
        cleanup,
        "caddy",
        [caddy, "run", "--config", str(conf), "--adapter", "caddyfile"],
        log=log,
        env=env,
    )
    wait_answers(port, "Caddy", proc=proc, log=log)
    return Running("Caddy", port, lambda: _tree(proc.pid))


# --- PM2 --------------------------------------------------------------------------


class Pm2:
    """PM2 with its own PM2_HOME: its daemon ("God") and apps end with the run."""

    def __init__(self, cleanup: Cleanup, home: Path) -> None:
        self.bin = peers.need("pm2")
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, PM2_HOME=str(home), PM2_DISCRETE_MODE="true")
        self._god = 0
        cleanup.push(f"PM2 in {home}", self.kill)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.bin, *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
        )
        if self._god == 0 and (self.home / "pm2.pid").exists():
            self._god = self.god()
        return result

    def start(self, apps: list[dict[str, Any]], name: str = "ecosystem") -> None:
        eco = self.home / f"{name}.json"
        eco.write_text(json.dumps({"apps": apps}, indent=1))
        result = self.cli("start", str(eco))
        if result.returncode != 0:
            raise BenchError(f"pm2 start failed: {result.stdout[-400:]}{result.stderr[-400:]}")

    def god(self) -> int:
        return int((self.home / "pm2.pid").read_text().strip())

    def jlist(self) -> list[dict[str, Any]]:
        result = self.cli("jlist")
        text = result.stdout
        rows: list[dict[str, Any]] = json.loads(text[text.index("[") :])
        return rows

    def app_pids(self, name: str) -> list[int]:
        return [int(r["pid"]) for r in self.jlist() if r["name"] == name and r.get("pid")]

    def kill(self) -> None:
        if self._god or (self.home / "pm2.pid").exists():
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.cli("kill", timeout=30)
            if self._god and psutil.pid_exists(self._god):
                kill_tree(self._god)


def hello_app(
    name: str, port: int, *, instances: int, cluster: bool, **extra: Any
) -> dict[str, Any]:
    """A PM2 app entry for bench/apps/hello.js (fork instances get PORT, PORT+1, ...)."""
    app: dict[str, Any] = {
        "name": name,
        "script": str(HELLO_JS),
        "exec_mode": "cluster" if cluster else "fork",
        "instances": instances,
        "env": {"PORT": str(port)},
        "autorestart": True,
        **extra,
    }
    if not cluster and instances > 1:
        app["increment_var"] = "PORT"
    return app


def wait_pm2_ready(pm2: Pm2, name: str, count: int, ports: list[int], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        online = [
            r for r in pm2.jlist() if r["name"] == name and r["pm2_env"]["status"] == "online"
        ]
        if len(online) >= count:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"PM2 app {name}: {len(online)} of {count} instances online")
        time.sleep(0.1)
    for port in ports:
        wait_answers(port, f"PM2 app {name}", timeout=max(1.0, deadline - time.monotonic()))


# --- supervisord ------------------------------------------------------------------


def start_supervisord(cleanup: Cleanup, tmp: Path, programs: dict[str, tuple[str, int]]) -> int:
    """supervisord in the foreground with one [program] per entry (name -> (command, port))."""
    supervisord = peers.need("supervisord")
    home = tmp / "supervisord"
    home.mkdir(parents=True, exist_ok=True)
    conf = home / "supervisord.conf"
    text = f"""[unix_http_server]
file={home}/supervisor.sock
chmod=0700

[supervisord]
nodaemon=true
logfile={home}/supervisord.log
pidfile={home}/supervisord.pid
childlogdir={home}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{home}/supervisor.sock
"""
    for name, (command, port) in programs.items():
        text += (
            f'\n[program:{name}]\ncommand={command}\nenvironment=PORT="{port}"\n'
            "autorestart=true\nstartsecs=1\n"
        )
    conf.write_text(text)
    log = home / "out.log"
    proc = start(cleanup, "supervisord", [supervisord, "-n", "-c", str(conf)], log=log)
    # Its programs run in process groups of their own: a stop that goes wrong
    # (a timeout, Ctrl-C) must not leave them behind. Runs first (last in).
    cleanup.push("supervisord's programs", lambda: kill_tree(proc.pid))
    for name, (_command, port) in programs.items():
        wait_port_open(port, f"supervisord program {name}", proc=proc, log=log)
    return proc.pid


def wait_port_open(
    port: int,
    what: str,
    *,
    timeout: float = 30,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Wait until something accepts TCP connections on port (for apps that speak no HTTP)."""
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what}: exited with code {proc.returncode}{tail(log)}")
        if time.monotonic() > deadline:
            raise BenchError(f"{what} did not listen on port {port} within {timeout:g}s{tail(log)}")
        time.sleep(0.05)
