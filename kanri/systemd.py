"""Starting kanri at boot with systemd: the unit file, installing it, and sd_notify.

``kanri startup`` renders one service unit per project that runs ``kanri up`` in
the foreground. The unit is ``Type=notify``: systemd counts the service as started
only when kanri sends ``READY=1`` (via ``notify``) once every app is ready, so
units ordered after it start against a working stack.

Unit files have their own quoting rules, and a project path may hold any
character, so every value goes through one of two writers: ``_exec_word`` for
the words of ``ExecStart=`` and ``Environment=`` (quoted, ``%`` and ``$`` escaped)
and ``_bare`` for settings that take the rest of the line as is.

The daemon imports this module for ``notify`` alone, so what only rendering and
installing a unit need (shutil, tempfile) is imported where it is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import pwd
import re
import shlex
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

from kanri.config.model import Config
from kanri.errors import KanriError

SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
# systemd's own default for services, used when the caller has no PATH at all.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STOP_MARGIN = 30  # seconds on top of the sum of the kill_timeouts
START_MARGIN = 30  # seconds on top of every app's ready_timeout, one after another
NOTIFY_TIMEOUT = 2.0  # a full notify socket must not stall kanri's event loop for long

_UNIT_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_SAFE_WORD = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# systemd refuses these in the executable path itself ("contains special characters"),
# and the path, unlike the arguments, is not subject to $ expansion, so no escape fits.
_BAD_EXECUTABLE = re.compile(r"[\"'\\$]")


def unit_name(config: Config) -> str:
    """``kanri-<project dir>-<hash>.service``: readable, and distinct for each project directory.

    Characters systemd does not allow in unit names become ``-``; the short hash of
    the full path keeps ``/srv/a/app`` and ``/srv/b/app`` apart.
    """
    root = str(config.root)
    label = _UNIT_CHARS.sub("-", config.root.name).strip("-.")[:64] or "project"
    digest = hashlib.sha256(root.encode(errors="surrogateescape")).hexdigest()[:8]
    return f"kanri-{label}-{digest}.service"


def render_unit(
    config: Config,
    *,
    kanri_argv: Sequence[str],
    user: str,
    group: str | None = None,
    env_name: str | None = None,
    environment: Mapping[str, str] | None = None,
) -> str:
    """A complete systemd service unit that runs ``kanri up`` for this project.

    ``kanri_argv`` is how to run kanri (``["/srv/app/.venv/bin/kanri"]`` or
    ``[sys.executable, "-m", "kanri"]``); a bare name is looked up on PATH now.
    ``env_name`` defaults to the profile the config was loaded with. The service
    environment gets ``KANRI_HOME`` (if set now, made absolute) and ``PATH`` from
    the current environment, then ``environment`` on top. The same inputs and
    environment always give the same text.
    """
    if not kanri_argv:
        raise KanriError("kanri_argv is empty; give the command that runs kanri")
    _check_app_users(config, user)
    profile = env_name if env_name is not None else config.env_name
    argv = [_executable(kanri_argv[0]), *kanri_argv[1:], "up", "-c", str(config.file)]
    if profile:
        argv += ["--env", profile]

    env: dict[str, str] = {}
    home = os.environ.get("KANRI_HOME")
    if home:
        env["KANRI_HOME"] = str(Path(home).resolve())
    env["PATH"] = os.environ.get("PATH") or DEFAULT_PATH
    env.update(environment or {})

    name = unit_name(config)
    root = str(config.root)
    lines = [
        f"# {name}: runs the kanri stack in {root} at boot.",
        "# Written by `kanri startup`. To install it, either run `sudo kanri startup --install`,",
        f"# or save this text as /etc/systemd/system/{name} and run:",
        f"#   sudo systemctl daemon-reload && sudo systemctl enable --now {name}",
        "",
        "[Unit]",
        f"Description=kanri stack in {_bare('Description', root)}",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        # kanri sends READY=1 once every app is ready; only kanri itself may notify.
        "Type=notify",
        "NotifyAccess=main",
        f"WorkingDirectory={_bare('WorkingDirectory', root)}",
        "ExecStart=" + " ".join(_exec_word(word, expand=True) for word in argv),
        f"User={_bare('User', user)}",
    ]
    if group is not None:
        lines.append(f"Group={_bare('Group', group)}")
    for key, value in env.items():
        if not _ENV_NAME.fullmatch(key):
            raise KanriError(f"{key!r} is not an environment variable name; use e.g. NODE_ENV")
        lines.append(f"Environment={_exec_word(f'{key}={value}', expand=False)}")
    lines += [
        # SIGTERM goes to kanri alone, which stops each app with its own kill_signal
        # and kill_timeout; SIGKILL reaches the whole cgroup only after TimeoutStopSec.
        "KillMode=mixed",
        f"TimeoutStartSec={_start_timeout(config)}",
        f"TimeoutStopSec={_stop_timeout(config)}",
        "Restart=on-failure",
        "RestartSec=2",
        "LimitNOFILE=65536",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def install_unit(text: str, name: str, directory: Path = SYSTEM_UNIT_DIR) -> Path:
    """Write the unit to ``directory/name`` atomically (mode 0644) and return its path.

    A reader (systemd on ``daemon-reload``) sees the old file or the new one, never
    half of one.
    """
    if "/" in name or not name.endswith(".service"):
        raise KanriError(f"{name!r} is not a service unit name; use e.g. kanri-app.service")
    import tempfile

    path = directory / name
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fchmod(out.fileno(), 0o644)
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        reason = "permission denied" if isinstance(exc, PermissionError) else exc.strerror
        raise KanriError(
            f"cannot write {path}: {(reason or str(exc)).lower()}; run with sudo, or print the"
            " unit with `kanri startup` and install it yourself"
        ) from exc
    return path


def enable_hint(name: str) -> str:
    """The commands to print after installing: load and start the unit, then watch it."""
    quoted = shlex.quote(name)
    return (
        f"systemctl daemon-reload && systemctl enable --now {quoted}\n"
        f"systemctl status {quoted}    # is it running?\n"
        f"journalctl -u {quoted} -f    # follow its logs\n"
    )


def notify(message: str) -> bool:
    """Send ``message`` (e.g. ``"READY=1"``) to systemd as sd_notify(3) does.

    Returns False, and never raises, when ``$NOTIFY_SOCKET`` is unset (not run by
    systemd) or the message could not be sent: notification is best effort.
    """
    target = os.environ.get("NOTIFY_SOCKET")
    if not target:
        return False
    if target.startswith("@"):
        address = "\0" + target[1:]  # abstract namespace
    elif target.startswith("/"):
        address = target
    else:
        return False  # e.g. vsock:, which only a VM's service manager uses
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(NOTIFY_TIMEOUT)
            sock.sendto(message.encode(), address)
    except OSError:
        return False
    return True


# -- helpers -------------------------------------------------------------------------


def _stop_timeout(config: Config) -> int:
    # kanri stops apps one after another (dependents first), each within its kill_timeout.
    total = sum(app.kill_timeout for app in config.apps.values())
    return math.ceil(total + STOP_MARGIN)


def _start_timeout(config: Config) -> int:
    # Apps start one after another in dependency order, each given its ready_timeout
    # (and a second); systemd's default of 90s is too short for three default apps.
    total = sum(app.ready_timeout + 1.0 for app in config.apps.values())
    return math.ceil(total + START_MARGIN)


def _check_app_users(config: Config, user: str) -> None:
    runs_as = _uid(user)
    if runs_as == 0:
        return
    for name, app in config.apps.items():
        if app.user is None or app.user == user:
            continue
        if runs_as is not None and _uid(app.user) == runs_as:
            continue
        raise KanriError(
            f"apps.{name}.user is {app.user!r}, so kanri must run as root to switch to it,"
            f" but the unit runs kanri as {user!r}; run kanri as root or remove"
            f" apps.{name}.user"
        )


def _uid(user: str) -> int | None:
    """The uid of a user name or numeric id, or None if this system has no such user."""
    try:
        return pwd.getpwuid(int(user)).pw_uid if user.isdigit() else pwd.getpwnam(user).pw_uid
    except (KeyError, OverflowError):
        return None


def _executable(word: str) -> str:
    import shutil

    path = word if os.path.isabs(word) else shutil.which(word)
    if path is None:
        raise KanriError(f"cannot find {word!r} on PATH; give the absolute path of kanri")
    if _BAD_EXECUTABLE.search(path) or _CONTROL.search(path):
        raise KanriError(
            f"systemd cannot run {path!r}: an executable path may not contain quotes, backslashes"
            " or $; install kanri (or Python) under a plainer path"
        )
    return path


def _bare(key: str, value: str) -> str:
    """A value for a setting that takes the rest of the line literally, bar specifiers."""
    if not value or _CONTROL.search(value) or value != value.strip() or value.endswith("\\"):
        raise KanriError(
            f"{key}={value!r} cannot be written in a unit file: it is empty, holds a control"
            " character, or starts or ends with whitespace or a backslash"
        )
    return value.replace("%", "%%")


def _exec_word(word: str, *, expand: bool) -> str:
    """One word of ExecStart= (``expand``: $VAR is substituted) or Environment=.

    systemd splits these lines into words with C-style double quotes, then expands
    ``%`` specifiers in each word, then (ExecStart= only) ``$`` variables; ``%%``
    and ``$$`` are their escapes.
    """
    if _CONTROL.search(word):
        raise KanriError(f"{word!r} holds a control character, which a unit file cannot carry")
    escaped = word.replace("%", "%%")
    if expand:
        escaped = escaped.replace("$", "$$")
    if _SAFE_WORD.fullmatch(word):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'
