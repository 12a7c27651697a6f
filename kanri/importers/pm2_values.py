"""Tables and small conversions for PM2 ecosystem values: commands, ports, cron, paths."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

from croniter import croniter

PLACEHOLDER = "FILL ME: the command that starts this app"

EXTENSIONS = {".js": "node", ".cjs": "node", ".mjs": "node", ".py": "python3", ".sh": "bash"}
EXTENSIONS |= {".rb": "ruby", ".php": "php", ".pl": "perl", ".coffee": "coffee"}
EXTENSIONS |= {".ts": "ts-node", ".tsx": "ts-node"}
_PORT_FLAGS = ("-p", "--port")
_BIND_FLAGS = ("-b", "--bind", "--listen")
_SAFE_WORD = re.compile(r"[\w@%+=:,./$-]+")
NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]+")

# The order of keys in a generated [apps.NAME] table: what runs, then how it restarts and stops.
KEY_ORDER = (
    "command",
    "interpreter",
    "cwd",
    "instances",
    "port",
    "restart",
    "max_restarts",
    "min_uptime",
    "restart_delay",
    "backoff",
    "max_memory",
    "cron_restart",
    "watch",
    "ignore_watch",
    "kill_signal",
    "kill_timeout",
    "ready_timeout",
    "out_file",
    "error_file",
    "user",
    "group",
)

NOT_CARRIED = {
    "log_date_format": "kanri's log line format is fixed (a timestamp on every line)",
    "merge_logs": "kanri keeps one log file per instance (NAME-N.log)",
    "combine_logs": "kanri keeps one log file per instance (NAME-N.log)",
    "time": "kanri always puts a timestamp on every log line",
    "log_type": "kanri's logs are plain text lines with a timestamp",
    "pid_file": "kanri tracks its processes itself; `kanri ls` shows their pids",
    "wait_ready": "kanri counts an instance ready when it accepts connections on $PORT"
    " (or answers `health`), not on process.send('ready')",
    "shutdown_with_message": "kanri stops instances with kill_signal",
    "autostart": "`kanri up` starts every app",
    "namespace": "kanri groups apps by project: one kanri.toml and .kanri/ per directory",
    "watch_options": "kanri's file watcher takes no chokidar options",
    "watch_delay": "kanri's file watcher debounces changes itself",
    "treekill": "kanri always stops the whole process group",
    "kill_retry_time": "kanri sends kill_signal once, then SIGKILL after kill_timeout",
    "vizion": "kanri does not track source versions",
    "post_update": "kanri does not track source versions",
    "source_map_support": "Node-specific; add --enable-source-maps to the command if needed",
    "disable_source_map_support": "Node-specific; kanri adds nothing to the node command",
    "pmx": "PM2's monitoring has no kanri counterpart; `kanri monit` shows CPU and memory",
    "automation": "PM2's monitoring has no kanri counterpart; `kanri monit` shows CPU and memory",
    "trace": "PM2's monitoring has no kanri counterpart",
    "disable_trace": "PM2's monitoring has no kanri counterpart",
    "force": "kanri never starts an app twice",
    "filter_env": "kanri passes its own environment to apps, plus env",
    "append_env_to_name": "app names do not change with --env in kanri",
    "disable_logs": "kanri always keeps each instance's log (rotated by size)",
    "windowsHide": "only meaningful on Windows",
}


def rebase(path: str, source_dir: Path, out_dir: Path) -> str:
    """A path written relative to source_dir, rewritten relative to out_dir (kanri.toml's home)."""
    if os.path.isabs(path) or path.startswith("~"):
        return path
    return os.path.relpath(os.path.normpath(source_dir / path), out_dir)


def join_words(words: list[str]) -> str:
    """A command line; words that need no quotes (including $PORT) stay bare."""
    return " ".join(w if _SAFE_WORD.fullmatch(w) else shlex.quote(w) for w in words)


def words_of(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    try:
        return shlex.split(str(value))
    except ValueError:
        return str(value).split()


def port_to_var(words: list[str]) -> tuple[list[str], int | None]:
    """Replace the port of `-p 3000`, `--port=3000`, `--bind 0.0.0.0:8000` with $PORT."""
    out = list(words)
    for i, word in enumerate(out):
        flag, eq, value = word.partition("=")
        if not eq:
            if word not in _PORT_FLAGS + _BIND_FLAGS or i + 1 >= len(out):
                continue
            flag, value = word, out[i + 1]
        if flag in _PORT_FLAGS and value.isdigit():
            new, port = "$PORT", int(value)
        elif flag in _BIND_FLAGS and re.fullmatch(r".*:\d+", value):
            host, _, digits = value.rpartition(":")
            new, port = f"{host}:$PORT", int(digits)
        else:
            continue
        if eq:
            out[i] = f"{flag}={new}"
        else:
            out[i + 1] = new
        return out, port
    return out, None


def as_port(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    return 0


def pm2_cron(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    fields = value.split()
    if len(fields) == 6:  # PM2 (croner) reads a leading seconds field
        if fields[0] not in ("0", "00"):
            return None
        fields = fields[1:]
    text = " ".join(fields)
    return text if len(fields) == 5 and croniter.is_valid(text) else None


def is_binary(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            head = file.read(512)
    except OSError:
        return False
    return head.startswith(b"\x7fELF") or b"\0" in head


def short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def default_port(program: str, args: list[str]) -> int | None:
    """The port a well-known server listens on when none is given (and PORT is unset)."""
    name = Path(program).name
    if name == "next" and "start" in args:
        return 3000
    if name == "gunicorn":
        return 8000
    return None
