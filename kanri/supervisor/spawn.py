"""Turning an app's config into a command line and an environment, and starting it.

Every instance runs in its own process group (so a stop signal reaches the
whole tree) and gets PR_SET_PDEATHSIG, so it is signalled if the daemon dies
without a chance to clean up.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import re
import shlex
import signal
import socket
from collections.abc import Callable, Mapping
from pathlib import Path

from kanri.config.model import AppConfig

_PR_SET_PDEATHSIG = 1
_SHELL_CHARS = frozenset("|&;<>()`*?[]~\n#")
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def needs_shell(command: str) -> bool:
    """True when the command uses shell syntax (pipes, &&, globs, $(...), VAR=value prefixes)."""
    if any(c in _SHELL_CHARS for c in command) or "$(" in command:
        return True
    try:
        words = shlex.split(command)
    except ValueError:
        return True  # unbalanced quotes: let the shell report it in the app's log
    return bool(words) and "=" in words[0] and not words[0].startswith("=")


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Replace $NAME and ${NAME} from env (unknown names become empty, as in sh)."""
    return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), text)


def build_argv(app: AppConfig, env: Mapping[str, str]) -> list[str]:
    """The argv that runs one instance: directly when possible, via /bin/sh when needed."""
    prefix = shlex.split(app.interpreter) if app.interpreter else []
    if needs_shell(app.command):
        script = app.command
        if app.args:
            script += " " + shlex.join(app.args)
        return ["/bin/sh", "-c", script] if not prefix else [*prefix, "-c", script]
    words = [expand_vars(w, env) for w in shlex.split(app.command)]
    return [*prefix, *words, *(expand_vars(a, env) for a in app.args)]


def instance_env(
    app: AppConfig, index: int, port: int, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)  # systemd's: only kanri itself may notify
    env.update(extra or {})
    env.update(app.env)
    env.update(
        {
            "PORT": str(port),
            "KANRI_APP": app.name,
            "KANRI_INSTANCE": str(index),
            "NODE_APP_INSTANCE": str(index),  # what PM2 sets; apps written for PM2 read it
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _die_with_parent() -> Callable[[], None]:
    """What the child runs between fork and exec: ask for SIGTERM when the daemon dies.

    prctl is looked up now, in the daemon: the forked child only calls it.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


async def spawn(
    argv: list[str], env: dict[str, str], cwd: Path | None, user: str | None, group: str | None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=env,
        process_group=0,
        preexec_fn=_die_with_parent(),
        user=user,
        group=group,
    )


def kill_group(pgid: int, sig: int) -> bool:
    """Send sig to a process group; False if the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


class PortAllocator:
    """Hands out free loopback ports, never the same one twice while it is in use."""

    def __init__(self) -> None:
        self._taken: set[int] = set()

    def take(self, fixed: int | None = None) -> int:
        if fixed is not None:
            self._taken.add(fixed)
            return fixed
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in self._taken:
                self._taken.add(port)
                return port
        raise RuntimeError("could not find a free loopback port")

    def release(self, port: int) -> None:
        self._taken.discard(port)
