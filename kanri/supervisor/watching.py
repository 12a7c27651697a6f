"""Restarting an app when its files change (watchfiles, loaded only for apps that watch)."""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Callable, Sequence
from pathlib import Path

from watchfiles import DefaultFilter, awatch

from kanri.config.model import AppConfig
from kanri.supervisor.instance import Instance
from kanri.supervisor.monitors import DEFAULT_IGNORES, watch_paths


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
