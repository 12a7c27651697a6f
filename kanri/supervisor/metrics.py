"""CPU and memory of instances, counted over each instance's whole process tree."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil


class ProcessMeter:
    """Samples process trees; CPU % is the share used since the previous sample.

    psutil measures CPU % between two calls on the same Process object, so the
    objects are kept from one sample to the next (and dropped once gone). psutil is
    imported at the first sample: an idle daemon that nobody asks does not carry it.
    """

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}

    def _process(self, pid: int) -> psutil.Process:
        import psutil

        proc = self._procs.get(pid)
        if proc is None or not proc.is_running():
            proc = psutil.Process(pid)
            proc.cpu_percent(None)  # the first call only starts the measurement
            self._procs[pid] = proc
        return proc

    def sample(self, pids: list[int]) -> dict[int, tuple[float, int]]:
        """For each root pid: (cpu percent of one core, resident bytes) of it and its descendants."""
        import psutil

        seen: set[int] = set()
        out: dict[int, tuple[float, int]] = {}
        for pid in pids:
            cpu, rss = 0.0, 0
            try:
                root = self._process(pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for proc in tree:
                with contextlib.suppress(psutil.Error):
                    tracked = self._process(proc.pid)
                    seen.add(proc.pid)
                    cpu += tracked.cpu_percent(None)
                    rss += tracked.memory_info().rss
            out[pid] = (cpu, rss)
        for pid in list(self._procs):
            if pid not in seen:
                del self._procs[pid]
        return out
