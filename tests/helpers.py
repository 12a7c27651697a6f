"""Shared test helpers: waiting on conditions with deadlines, and running `kanri up`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

APPS = Path(__file__).parent / "apps"
PY = sys.executable


def wait_until(predicate: Callable[[], object], timeout: float, what: str = "condition") -> None:
    """Poll predicate until it is truthy; fail the test with ``what`` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


async def async_wait_until(
    predicate: Callable[[], object], timeout: float, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def get_json(port: int, path: str = "/") -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


def alive(pid: int) -> bool:
    """True if pid is a live process (zombies count as dead)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class KanriUp:
    """`kanri up` as a real child process, with its terminal output captured to a file."""

    def __init__(self, config: Path, *args: str) -> None:
        self.output = config.parent / "kanri-up.out"
        self._out = self.output.open("wb")
        env = dict(os.environ, NO_COLOR="1")
        self.proc = subprocess.Popen(
            [PY, "-m", "kanri", "up", "-c", str(config), *args],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=config.parent,
            env=env,
        )

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_for_output(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def seen() -> bool:
            match = regex.search(self.text())
            if match:
                found.append(match)
                return True
            if self.proc.poll() is not None:
                raise AssertionError(f"kanri exited ({self.proc.returncode}):\n{self.text()}")
            return False

        wait_until(seen, timeout, f"{pattern!r} in kanri's output")
        return found[0]

    def ports(self, app: str) -> dict[int, int]:
        """instance index -> port, read from the "spawned pid N on port P" lines."""
        rx = re.compile(
            rf"{re.escape(app)}:(\d+) pid \d+ \S+ -> starting: spawned pid \d+ on port (\d+)"
        )
        return {int(i): int(p) for i, p in rx.findall(self.text())}

    def descendants(self) -> list[int]:
        try:
            return [p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def free_port() -> int:
    """A loopback port that was free a moment ago (for the proxy's listen address)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def kanri_cli(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one `kanri` CLI command against the project of ``config``."""
    return subprocess.run(
        [PY, "-m", "kanri", *args, "-c", str(config)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
