"""How the CLI shows things: the `ls` table, `describe`, and the live `monit` view."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from kanri.config.units import format_duration, format_size
from kanri.control.client import Client

STATE_STYLES = {
    "ready": "green",
    "starting": "yellow",
    "draining": "cyan",
    "stopping": "yellow",
    "stopped": "dim",
    "backoff": "red",
    "errored": "bold red",
}


def print_renderable(renderable: RenderableType) -> None:
    Console().print(renderable)


def instances_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column, justify in (
        ("app", "left"),
        ("id", "right"),
        ("pid", "right"),
        ("state", "left"),
        ("uptime", "right"),
        ("restarts", "right"),
        ("cpu", "right"),
        ("memory", "right"),
        ("port", "right"),
        ("ready", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        uptime = row["uptime"]
        table.add_row(
            row["app"],
            str(row["instance"]),
            str(row["pid"] or "-"),
            Text(row["state"], style=STATE_STYLES.get(row["state"], "")),
            format_duration(uptime) if uptime is not None else "-",
            str(row["restarts"]),
            f"{row['cpu']:.1f}%" if row["pid"] else "-",
            format_size(row["memory"]) if row["pid"] else "-",
            str(row["port"]),
            "yes" if row["ready"] else "no",
        )
    return table


def describe_text(info: dict[str, Any]) -> str:
    cfg = info["config"]
    out = [f"app {info['name']}"]
    out.append(f"  command       {cfg['command']} {' '.join(cfg['args'])}".rstrip())
    out.append(f"  cwd           {cfg['cwd'] or '(the project directory)'}")
    out.append(f"  instances     {len(info['instances'])}")
    out.append(f"  restart       {cfg['restart']} (max_restarts {cfg['max_restarts']})")
    out.append(f"  env keys      {', '.join(info['env_keys']) or '(none)'}")
    for key in ("health", "max_memory", "cron_restart", "watch", "depends_on"):
        if cfg.get(key):
            out.append(f"  {key:<13} {cfg[key]}")
    for inst in info["instances"]:
        pid = f"pid {inst['pid']}" if inst["pid"] else "no process"
        out.append("")
        out.append(
            f"{inst['name']}: {inst['state']}, {pid}, port {inst['port']}, "
            f"{inst['restarts']} restart(s)"
        )
        out.append(f"  logs: {', '.join(inst['log_files'])}")
        if inst["exit_codes"]:
            codes = ", ".join(
                f"{_clock(e['at'])} {'?' if e['code'] is None else e['code']}"
                for e in inst["exit_codes"]
            )
            out.append(f"  last exits: {codes}")
        out.append("  recent transitions:")
        for t in inst["transitions"][-10:]:
            out.append(f"    {_clock(t['at'])} {t['from']} -> {t['to']}: {t['reason']}")
    return "\n".join(out)


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def monit_view(metrics: dict[str, Any], previous: dict[str, Any] | None, dt: float) -> Group:
    parts: list[RenderableType] = [instances_table(metrics["instances"])]
    proxy = metrics.get("proxy")
    if proxy:
        before = previous.get("proxy") if previous else None
        rate = errors = 0.0
        if before and dt > 0:
            rate = (proxy["requests"] - before["requests"]) / dt
            errors = (proxy["errors"] - before["errors"]) / dt
        parts.append(
            Text(
                f"\nproxy: {rate:.1f} req/s, {errors:.1f} 5xx/s "
                f"({proxy['requests']} requests, {proxy['errors']} errors in all)"
            )
        )
    parts.append(Text("\nCtrl-C to leave", style="dim"))
    return Group(*parts)


def monit_loop(client: Client, interval: float = 1.0) -> None:
    previous: dict[str, Any] | None = None
    last = time.monotonic()
    with Live(auto_refresh=False) as live:
        while True:
            metrics = client.metrics()
            now = time.monotonic()
            live.update(monit_view(metrics, previous, now - last), refresh=True)
            previous, last = metrics, now
            time.sleep(interval)
