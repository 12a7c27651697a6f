"""Processes the harness starts, and what it reads about them from /proc.

Every process is started in its own session (so its whole group can be
signalled) and registered with a ``Cleanup`` that stops it, in reverse order,
when the scenario ends: normally, on an error, or on Ctrl-C. CPU time comes
from ``/proc/PID/stat`` (utime + stime), memory from psutil.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import psutil

CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A contender could not be started or measured; the message says which and why."""


class Cleanup:
    """Undo actions run last-in first-out; ``close`` never raises and runs each action once."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], object]]] = []

    def push(self, what: str, action: Callable[[], object]) -> None:
        self._actions.append((what, action))

    def close(self) -> None:
        while self._actions:
            what, action = self._actions.pop()
            try:
                action()
            except Exception as exc:
                print(f"bench: cleanup of {what} failed: {exc}", flush=True)

    def __enter__(self) -> Cleanup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stop_group(pid: int, timeout: float = 5.0, sig: int = signal.SIGTERM) -> None:
    """Signal the process group led by pid, then SIGKILL it if it outlives timeout."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            break
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant (for daemons that left our process group)."""
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(procs, timeout=3)


def start(
    cleanup: Cleanup,
    what: str,
    argv: list[str],
    *,
    log: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stop_signal: int = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start argv in a new session, output to log; stopped (as a group) by cleanup."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    cleanup.push(what, lambda: stop_group(proc.pid, sig=stop_signal))
    return proc


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """count distinct free ports (held open together while choosing)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def answers(port: int, path: str = "/", timeout: float = 1.0) -> bool:
    """True if a GET to 127.0.0.1:port answers with a 2xx status."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode()
            )
            head = sock.recv(64)
    except OSError:
        return False
    return head.startswith(b"HTTP/1.") and head[9:10] == b"2"


def wait_answers(
    port: int,
    what: str,
    *,
    timeout: float = 20.0,
    path: str = "/",
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Wait until port answers a GET with 2xx; fail with the log's tail if proc exits first."""
    deadline = time.monotonic() + timeout
    while not answers(port, path, timeout=0.5):
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what} exited with code {proc.returncode}{tail(log)}")
        if time.monotonic() > deadline:
            raise BenchError(f"{what} did not answer on port {port} within {timeout:g}s{tail(log)}")
        time.sleep(0.05)


def tail(log: Path | None, lines: int = 8) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").strip().splitlines()[-lines:]
    return ("; last lines of " + str(log) + ":\n    " + "\n    ".join(text)) if text else ""


def cpu_split(pids: Iterable[int]) -> tuple[float, float]:
    """(utime, stime) of the given processes, in seconds (a vanished process counts 0)."""
    user = system = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        user += int(fields[11])  # field 14 of proc(5)
        system += int(fields[12])  # field 15
    return user / CLK_TCK, system / CLK_TCK


def cpu_seconds(pids: Iterable[int]) -> float:
    """utime + stime of the given processes, in seconds."""
    return sum(cpu_split(pids))


def rss_bytes(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += psutil.Process(pid).memory_info().rss
    return total


def pss_bytes(pids: Iterable[int]) -> int:
    """Proportional set size: shared pages split among the processes that map them."""
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += psutil.Process(pid).memory_full_info().pss
    return total


def children(pid: int, *, contains: str = "", recursive: bool = False) -> list[int]:
    """Pids of pid's children whose command line contains ``contains``."""
    try:
        procs = psutil.Process(pid).children(recursive=recursive)
    except psutil.NoSuchProcess:
        return []
    found = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if contains in " ".join(proc.cmdline()):
                found.append(proc.pid)
    return found


def raise_fd_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE (soft, and hard when allowed) to at least wanted; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
        return wanted
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


AUTOGROUP = Path("/proc/sys/kernel/sched_autogroup_enabled")


@contextlib.contextmanager
def flat_scheduling(keep: bool = False, switch: Path = AUTOGROUP) -> Iterator[str]:
    """Turn the kernel's autogroup off for the run; yield what to report about it.

    With autogroup on, the scheduler shares CPU between sessions first and
    between processes second. Every contender starts in a session of its own,
    but they split into sessions differently (nginx's workers share their
    master's, wrk has the harness's), and on 2 cores that alone moved scenario 1
    by up to 10%. Off, every process competes on its own. The old value comes
    back when the run ends, on an error or on Ctrl-C too.
    """
    try:
        before = switch.read_text().strip()
    except OSError:
        yield "not in this kernel"
        return
    if before == "0":
        yield "off"
        return
    if keep:
        yield "on (kept by --autogroup keep)"
        return
    try:
        switch.write_text("0")
    except OSError as exc:
        yield f"on (could not turn it off: {exc.strerror}; as root, the harness can)"
        return
    try:
        yield "off for the run (on before, restored after)"
    finally:
        switch.write_text(before)


@contextlib.contextmanager
def timed(label: str, verbose: bool = True) -> Iterator[None]:
    began = time.monotonic()
    yield
    if verbose:
        print(f"bench: {label} took {time.monotonic() - began:.1f}s", flush=True)
