"""Reasons to restart an instance that is not a crash: memory, a schedule, changed files."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from kanri.config.model import AppConfig
from kanri.config.units import format_size
from kanri.supervisor.instance import Instance
from kanri.supervisor.states import State

MEMORY_INTERVAL = 1.0
DEFAULT_IGNORES = ("node_modules", ".git", "__pycache__", ".kanri", ".next", ".venv", "venv")


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes (0 if it is gone)."""
    import psutil  # only apps with max_memory pay for it

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


async def watch_memory(app: AppConfig, instances: Callable[[], Sequence[Instance]]) -> None:
    """Restart any ready instance whose process tree grows past max_memory."""
    assert app.max_memory is not None
    limit = app.max_memory
    while True:
        await asyncio.sleep(MEMORY_INTERVAL)
        for inst in instances():
            pid = inst.pid
            if inst.state is not State.READY or pid is None:
                continue
            rss = await asyncio.to_thread(tree_rss, pid)
            if rss > limit:
                inst.restart(f"memory {format_size(rss)} is over max_memory {format_size(limit)}")


async def cron_restarts(app: AppConfig, instances: Callable[[], Sequence[Instance]]) -> None:
    """Restart every instance at each time the cron expression names, one at a time."""
    from croniter import croniter  # only apps with cron_restart pay for it

    assert app.cron_restart is not None
    schedule = croniter(app.cron_restart, datetime.now())
    while True:
        at = schedule.get_next(float)
        await asyncio.sleep(max(0.0, at - time.time()))
        for inst in list(instances()):
            if inst.state.running:
                inst.restart(f"cron_restart {app.cron_restart!r}")
                # Rolling: the next one goes once this one is back (or has given up).
                await inst.wait_for(
                    lambda s: s is State.READY, app.ready_timeout + app.kill_timeout
                )


def watch_paths(app: AppConfig, root: Path) -> list[Path]:
    if app.watch is True:
        return [app.cwd or root]
    if app.watch is False:
        return []
    return list(app.watch)
