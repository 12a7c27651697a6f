"""Reasons to restart an instance that is not a crash: memory, a schedule, changed files."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import psutil
from croniter import croniter
from watchfiles import DefaultFilter, awatch

from kanri.config.model import AppConfig
from kanri.config.units import format_size
from kanri.supervisor.instance import Instance
from kanri.supervisor.states import State

MEMORY_INTERVAL = 1.0
DEFAULT_IGNORES = ("node_modules", ".git", "__pycache__", ".kanri", ".next", ".venv", "venv")


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes (0 if it is gone)."""
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


class _WatchFilter(DefaultFilter):
    def __init__(self, ignore: Sequence[str], skip_files: Sequence[Path]) -> None:
        super().__init__(ignore_dirs=(*DefaultFilter.ignore_dirs, *DEFAULT_IGNORES))
        self._patterns = tuple(ignore)
        self._skip = {str(p) for p in skip_files}

    def __call__(self, change: object, path: str) -> bool:
        if path in self._skip or not super().__call__(change, path):  # type: ignore[arg-type]
            return False
        name = Path(path).name
        return not any(
            fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(name, pat) or f"/{pat}/" in path
            for pat in self._patterns
        )


def watch_paths(app: AppConfig, root: Path) -> list[Path]:
    if app.watch is True:
        return [app.cwd or root]
    if app.watch is False:
        return []
    return list(app.watch)


async def watch_files(
    app: AppConfig,
    root: Path,
    instances: Callable[[], Sequence[Instance]],
    own_logs: Sequence[Path],
    ready: asyncio.Event | None = None,
) -> None:
    """Restart the app's instances when a watched file changes.

    The app's own log files are never watched, or every line it logged would
    restart it.
    """
    paths = watch_paths(app, root)
    if not paths:
        return
    watcher = awatch(
        *paths,
        watch_filter=_WatchFilter(app.ignore_watch, own_logs),
        debounce=300,
        step=50,
        yield_on_timeout=True,
        rust_timeout=500,
    )
    async for changes in watcher:
        if ready is not None:
            ready.set()  # the watcher is running: changes from now on are seen
        if not changes:
            continue
        first = sorted(p for _, p in changes)[0]
        for inst in instances():
            inst.restart(f"watched file changed: {first}")
