"""The guardian that makes sure no instance outlives the daemon, even after `kill -9`.

PR_SET_PDEATHSIG only reaches an instance's first process, and only with a
signal it may ignore. So the daemon also starts this tiny shell process and
tells it, over a pipe, which process groups exist. When the pipe reaches EOF
(the daemon is gone, however it died) the guardian sends SIGTERM to every group
it knows, waits a moment, then SIGKILLs whatever is left. It costs about a
megabyte, and nothing when the daemon exits normally (it has already stopped
every group, so the guardian has nothing to kill).
"""

from __future__ import annotations

import contextlib
import subprocess

_GUARDIAN = r"""
trap '' INT HUP
groups=" "
while read -r op id; do
  case "$op" in
    add) groups="$groups$id " ;;
    del) rest=" "; for g in $groups; do [ "$g" = "$id" ] || rest="$rest$g "; done; groups="$rest" ;;
  esac
done
[ "$groups" = " " ] && exit 0
for g in $groups; do kill -TERM -"$g" 2>/dev/null; done
i=0
while [ $i -lt 30 ]; do
  alive=0
  for g in $groups; do kill -0 -"$g" 2>/dev/null && alive=1; done
  [ $alive -eq 0 ] && exit 0
  sleep 0.1; i=$((i + 1))
done
for g in $groups; do kill -KILL -"$g" 2>/dev/null; done
exit 0
"""


class Watchdog:
    """Keeps the guardian process informed of the live process groups."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            ["/bin/sh", "-c", _GUARDIAN, "kanri-guardian"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            process_group=0,  # out of the terminal's group: Ctrl-C must not reach it
            close_fds=True,
        )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def add(self, pgid: int) -> None:
        self._send(f"add {pgid}\n")

    def remove(self, pgid: int) -> None:
        self._send(f"del {pgid}\n")

    def _send(self, line: str) -> None:
        stdin = self._proc.stdin
        if stdin is None or stdin.closed:
            return
        with contextlib.suppress(BrokenPipeError, OSError):
            stdin.write(line.encode())
            stdin.flush()

    def close(self, timeout: float = 5.0) -> None:
        """Normal shutdown: EOF lets the guardian exit (after killing anything left)."""
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
