"""PM2 ecosystem apps into kanri ``[apps.NAME]`` tables.

Each PM2 key is carried over to its kanri equivalent (milliseconds become
duration strings, "300M" becomes "300MiB"), noted in a comment where the meaning
shifts, or listed as not carried over with the reason.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanri.config.model import APP_NAME, ENV_NAME
from kanri.importers.document import AppDraft, Notes, TomlValue
from kanri.importers.errors import SourceError
from kanri.importers.pm2_values import (
    EXTENSIONS,
    KEY_ORDER,
    NAME_BAD,
    NOT_CARRIED,
    PLACEHOLDER,
    as_port,
    default_port,
    is_binary,
    join_words,
    pm2_cron,
    port_to_var,
    rebase,
    short,
    words_of,
)
from kanri.importers.units import pm2_duration, pm2_memory


@dataclass
class Pm2App:
    """One converted app, and where it listened under PM2 (to join it with nginx)."""

    draft: AppDraft
    ports: set[int] = field(default_factory=set)
    base_port: int | None = None
    cluster: bool = False  # PM2 cluster mode: instances shared one port


@dataclass
class Pm2Import:
    apps: list[Pm2App]
    notes: Notes


def convert_ecosystem(data: Any, shown: str, source_dir: Path, out_dir: Path) -> Pm2Import:
    """Convert an ecosystem file's data; ``out_dir`` is where the kanri.toml will live."""
    notes = Notes()
    raw_apps: Any = data
    if isinstance(data, dict):
        raw_apps = data.get("apps", [])
        for key, value in data.items():
            if key == "deploy":
                notes.drop(shown, "deploy", "kanri does not deploy code; keep your deploy tool")
            elif key != "apps":
                notes.drop(shown, f"{key} {short(value)}", "not an app setting PM2 or kanri know")
    if isinstance(raw_apps, dict):
        raw_apps = [raw_apps]
    if not isinstance(raw_apps, list) or not raw_apps:
        raise SourceError(shown, "no apps found; an ecosystem file exports { apps: [ ... ] }")
    apps: list[Pm2App] = []
    context = _Context(shown, source_dir, out_dir, notes)
    for index, raw in enumerate(raw_apps):
        if not isinstance(raw, dict):
            notes.drop(shown, f"apps[{index}] {short(raw)}", "an app must be an object")
            continue
        apps.append(_App(raw, index, context).convert())
    return Pm2Import(apps, notes)


def forget_port(app: Pm2App) -> None:
    """The app is behind kanri's proxy now: let kanri choose its ports."""
    app.draft.main.drop("port")
    if app.base_port is not None:
        app.draft.main.comments.append(
            f"PM2 ran it on port {app.base_port}. kanri gives each instance its own PORT;"
            " the proxy listens where nginx did"
        )


@dataclass
class _Context:
    """What every app of one file shares while it is converted."""

    shown: str
    source_dir: Path
    out_dir: Path
    notes: Notes
    taken: set[str] = field(default_factory=set)


class _App:
    """One PM2 app being converted; ``used`` records the keys already handled."""

    def __init__(self, raw: dict[str, Any], index: int, context: _Context) -> None:
        self.raw = raw
        self.index = index
        self.source_dir = context.source_dir
        self.out_dir = context.out_dir
        self.notes = context.notes
        self.used: set[str] = set()
        self.name = self._name(context.taken)
        self.where = f"{context.shown} (app {self.name})"
        self.app = Pm2App(AppDraft(self.name))
        self.table = self.app.draft.main
        self.cwd = context.source_dir

    def take(self, *keys: str) -> tuple[str, Any] | None:
        found = [(key, self.raw[key]) for key in keys if key in self.raw]
        self.used.update(keys)
        for key, _ in found[1:]:
            self.drop(key, f"{found[0][0]} is used instead")
        return found[0] if found else None

    def drop(self, key: str, why: str) -> None:
        self.notes.drop(self.where, f"apps[{self.index}].{key} {short(self.raw.get(key))}", why)

    def convert(self) -> Pm2App:
        self._cwd()
        self._command()
        self._instances()
        self._restarts()
        self._limits()
        self._stopping()
        self._logs()
        self._env()
        for pm2_key, kanri_key in ("uid", "user"), ("gid", "group"):
            if found := self.take(pm2_key, kanri_key):
                self.table.set(kanri_key, str(found[1]))
        for key in self.raw:
            if key not in self.used:
                self.drop(key, NOT_CARRIED.get(key, "not a PM2 option kanri knows"))
        rank = {key: i for i, key in enumerate(KEY_ORDER)}
        self.table.values = dict(
            sorted(self.table.values.items(), key=lambda item: rank.get(item[0], len(rank)))
        )
        return self.app

    def _name(self, taken: set[str]) -> str:
        self.used.add("name")
        raw_name = self.raw.get("name")
        if not isinstance(raw_name, str) or not raw_name:
            script = str(self.raw.get("script") or "app")
            raw_name = Path(script.split(maxsplit=1)[0]).stem or "app"
        name = NAME_BAD.sub("-", raw_name).strip("-_.") or "app"
        base, n = name, 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        taken.add(name)
        if name != raw_name and "name" in self.raw:
            self.notes.check.append(
                f"apps[{self.index}] name {raw_name!r} is {name!r} in kanri"
                " (names are letters, digits, _ . -)"
            )
        assert APP_NAME.fullmatch(name)
        return name

    def _cwd(self) -> None:
        found = self.take("cwd")
        if found and isinstance(found[1], str) and found[1]:
            self.cwd = self.source_dir / os.path.expanduser(found[1])
            self.table.set("cwd", rebase(found[1], self.source_dir, self.out_dir))

    def _command(self) -> None:
        script = self.take("script")
        args = self.take("args")
        interpreter = self.take("interpreter", "exec_interpreter")
        interpreter_args = self.take("interpreter_args", "node_args")
        arg_words = words_of(args[1]) if args else []
        if script is None or not isinstance(script[1], str) or not script[1].strip():
            self.table.set("command", PLACEHOLDER)
            self.notes.todo.append(f"apps.{self.name}.command: the PM2 app had no script")
            self._ports("", arg_words)
            return
        words = shlex.split(script[1]) if " " in script[1].strip() else [script[1]]
        program, arg_words = words[0], words[1:] + arg_words
        arg_words = self._ports(program, arg_words)
        extra = words_of(interpreter_args[1]) if interpreter_args else []
        if interpreter and interpreter[1] not in ("none", None):
            self.table.set("command", join_words([program, *arg_words]))
            self.table.set("interpreter", join_words([str(interpreter[1]), *extra]))
            return
        implied, why = self._implied_interpreter(program)
        if interpreter is None and implied:
            self.table.set("command", join_words([implied, *extra, program, *arg_words]), why)
            return
        if interpreter_args:
            self.drop(interpreter_args[0], "the script runs without an interpreter")
        if "/" not in program and (self.cwd / program).is_file():
            program = "./" + program  # PM2 looks in cwd first; a shell would look in PATH
        self.table.set("command", join_words([program, *arg_words]))

    def _implied_interpreter(self, program: str) -> tuple[str | None, str | None]:
        """What PM2 would run the script with when no interpreter is given."""
        implied = EXTENSIONS.get(Path(program).suffix.lower())
        if implied:
            return implied, None
        path = self.cwd / program
        if path.is_file():
            return (None, None) if is_binary(path) else ("node", None)
        if "/" not in program:
            return None, None  # a command on PATH: npm, yarn, gunicorn...
        return "node", (
            f"{program} was not found at import; PM2 runs a file without a known extension"
            " with node unless it is a binary, so node is assumed"
        )

    def _ports(self, program: str, words: list[str]) -> list[str]:
        """Find where the app listened under PM2; return args with that port as $PORT."""
        words, args_port = port_to_var(words)
        candidates: list[tuple[str, int]] = []
        found = self.take("port")
        if found is not None:
            candidates.append(("port", as_port(found[1])))
        env = self.raw.get("env")
        if isinstance(env, dict) and "PORT" in env:
            candidates.append(("env.PORT", as_port(env["PORT"])))
        if args_port is not None:
            candidates.append(("args", args_port))
        valid = [(what, port) for what, port in candidates if port]
        for what, port in candidates:
            if not port:
                self.notes.drop(self.where, f"apps[{self.index}].{what}", "not a port number")
        if not valid:
            default = default_port(program, words)
            if default is not None:
                self.app.ports.add(default)  # for matching nginx's proxy_pass only
                self.table.comments.append(
                    f"{Path(program).name} listens on port {default} unless PORT is set;"
                    " kanri sets PORT for each instance"
                )
            return words
        base = valid[0][1]
        for what, port in valid[1:]:
            if port != base:
                self.notes.check.append(
                    f"apps.{self.name}: {valid[0][0]} says port {base} but {what} says {port};"
                    f" kanri uses {base}"
                )
        self.app.base_port = base
        self.app.ports.add(base)
        self.table.set(
            "port",
            base,
            f"PM2 ran it on port {base}; kanri sets $PORT = {base} (instance n: {base} + n)",
        )
        return words

    def _instances(self) -> None:
        found = self.take("instances")
        mode = self.take("exec_mode")
        cluster = mode is not None and mode[1] in ("cluster", "cluster_mode")
        if mode is not None and not cluster and mode[1] not in ("fork", "fork_mode"):
            self.drop("exec_mode", 'PM2 knows "fork" and "cluster"')
        count: int | str | None = None
        if found is not None:
            value = found[1]
            if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
                value = int(value)
            if value in ("max", 0) and not isinstance(value, bool):
                count = "max"
            elif isinstance(value, int) and not isinstance(value, bool) and value > 0:
                count = value
            elif isinstance(value, int) and not isinstance(value, bool):
                cpus = len(os.sched_getaffinity(0)) or 1
                count = max(1, cpus + value)
                self.table.note(
                    "instances",
                    f"PM2's {value} means all CPUs but {-value}: {count} on this machine ({cpus}"
                    ' CPUs), computed at import; write "max" or a number for the server',
                )
            else:
                self.drop("instances", 'use a number, "max", 0 (max) or -1 (CPUs - 1)')
        if count is not None and (count != 1 or "instances" in self.table.notes):
            self.table.set("instances", count)
        if cluster:
            self.app.cluster = True
            self.table.comments.append(
                "PM2 cluster mode: kanri runs separate instances behind its proxy, each with its own"
                " $PORT, so the app must listen on $PORT"
            )
        increment = self.take("increment_var")
        if increment is not None:
            self.table.comments.append(
                f"PM2 increment_var {increment[1]!r}: kanri gives every instance KANRI_INSTANCE"
                " (0, 1, ...) and its own PORT"
            )
        base = self.app.base_port
        if base is not None and isinstance(count, int) and increment and increment[1] == "PORT":
            self.app.ports.update(range(base, base + count))
        if increment is not None and increment[1] != "PORT":
            self.drop("increment_var", "compute it in the app from KANRI_INSTANCE")
        instance_var = self.take("instance_var")
        if instance_var is not None and instance_var[1] != "NODE_APP_INSTANCE":
            self.drop("instance_var", "kanri sets NODE_APP_INSTANCE and KANRI_INSTANCE")

    def _restarts(self) -> None:
        found = self.take("autorestart")
        if found is not None and found[1] is False:
            self.table.set("restart", "never", "PM2 autorestart: false")
        elif found is not None and found[1] is not True:
            self.drop("autorestart", "PM2 wants true or false")
        codes = self.take("stop_exit_codes")
        if codes is not None:
            if codes[1] in (0, [0]) and "restart" not in self.table.values:
                self.table.set("restart", "on-failure", "PM2 stop_exit_codes [0]")
            else:
                self.drop(
                    "stop_exit_codes", 'kanri can only skip exit code 0 (restart = "on-failure")'
                )
        if (found := self.take("max_restarts")) is not None:
            if isinstance(found[1], int) and not isinstance(found[1], bool) and found[1] >= 0:
                self.table.set("max_restarts", found[1])
            else:
                self.drop("max_restarts", "not a whole number >= 0")
        self._duration("min_uptime", "min_uptime")
        exp = self.take("exp_backoff_restart_delay")
        delay = self._duration("restart_delay", "restart_delay")
        if exp is not None:
            try:
                self.table.set("restart_delay", pm2_duration(exp[1]))
            except ValueError:
                self.drop("exp_backoff_restart_delay", "not a number of milliseconds")
                return
            if delay is not None:
                self.drop("restart_delay", "exp_backoff_restart_delay gives the first delay")
            self.table.set(
                "backoff",
                "exponential",
                "PM2 exp_backoff_restart_delay: kanri doubles the delay after each fast crash,"
                " up to max_restart_delay",
            )
        elif delay is not None:
            self.table.set("backoff", "fixed", "PM2 waits the same restart_delay every time")

    def _duration(self, key: str, kanri_key: str) -> str | None:
        found = self.take(key)
        if found is None:
            return None
        try:
            value = pm2_duration(found[1])
        except ValueError:
            self.drop(key, 'not milliseconds (a number) or a time such as "5s"')
            return None
        self.table.set(kanri_key, value)
        return value

    def _limits(self) -> None:
        if (found := self.take("max_memory_restart")) is not None:
            try:
                self.table.set("max_memory", pm2_memory(found[1]))
            except ValueError:
                self.drop("max_memory_restart", 'not a size such as "300M" or a number of bytes')
        if (found := self.take("cron_restart", "cron")) is not None:
            cron = pm2_cron(found[1])
            if cron is None:
                self.drop(
                    found[0], "not a cron expression kanri reads (5 fields, or 6 with seconds 0)"
                )
            else:
                self.table.set("cron_restart", cron)
        if (found := self.take("watch")) is not None:
            value = found[1]
            if isinstance(value, str):
                value = [value]
            if value is True or (isinstance(value, list) and value):
                watch: TomlValue = value if value is True else [str(v) for v in value]
                self.table.set("watch", watch)
            elif value not in (False, None, []):
                self.drop("watch", "use true, false, a path or a list of paths")
        if (found := self.take("ignore_watch")) is not None:
            value = [found[1]] if isinstance(found[1], str) else found[1]
            if isinstance(value, list):
                self.table.set("ignore_watch", [str(v) for v in value])
            else:
                self.drop("ignore_watch", "use a list of patterns")

    def _stopping(self) -> None:
        self._duration("kill_timeout", "kill_timeout")
        if (found := self.take("kill_signal")) is not None:
            name = str(found[1]).upper()
            name = name if name.startswith("SIG") else "SIG" + name
            if name in signal.Signals.__members__:
                self.table.set("kill_signal", name)
            else:
                self.drop("kill_signal", "not a signal name such as SIGINT")
        self._duration("listen_timeout", "ready_timeout")

    def _logs(self) -> None:
        out = self._log_path("out_file", "output", "out", "out_log")
        err = self._log_path("error_file", "error", "err", "err_file", "err_log")
        if out is not None:
            self.table.set("out_file", out)
        if err is not None:
            self.table.set("error_file", err)
        both = self._log_path("log_file", "log")
        if both is not None and out is None and err is None:
            self.table.set(
                "out_file", both, "PM2 log_file: with no error_file, kanri writes both streams here"
            )
        elif both is not None:
            self.drop("log_file", "kanri writes each stream once: out_file, and error_file if set")

    def _log_path(self, *keys: str) -> str | None:
        found = self.take(*keys)
        if found is None or isinstance(found[1], bool):
            return None  # log_file: true is PM2's default combined file
        value = str(found[1])
        if value in ("/dev/null", "NULL"):
            self.drop(found[0], "kanri keeps every instance's log in a rotated file")
            return None
        if os.path.isabs(value) or value.startswith("~"):
            return value
        return rebase(
            os.path.join(os.path.relpath(self.cwd, self.source_dir), value),
            self.source_dir,
            self.out_dir,
        )

    def _env(self) -> None:
        profiles = [key for key in self.raw if key.startswith("env_")]
        self.used.update(profiles)
        found = self.take("env")
        if found is not None:
            self.app.draft.env = self._env_table("env", found[1])
        for key in profiles:
            table = self._env_table(key, self.raw[key])
            if table or isinstance(self.raw[key], dict):
                self.app.draft.profiles[key[4:]] = table

    def _env_table(self, key: str, value: Any) -> dict[str, TomlValue]:
        if not isinstance(value, dict):
            self.drop(key, "not a table of variables")
            return {}
        env: dict[str, TomlValue] = {}
        for name, item in value.items():
            where = f"{key}.{name}"
            if name == "PORT" and key == "env":
                continue  # carried over as `port`
            if name == "PORT":
                if port := as_port(item):
                    self.app.ports.add(port)  # still where nginx may send requests
                self.notes.drop(
                    self.where,
                    f"apps[{self.index}].{where} {short(item)}",
                    "kanri sets PORT for every instance (from `port`); it is not set per environment",
                )
            elif not ENV_NAME.fullmatch(name):
                self.notes.drop(self.where, f"apps[{self.index}].{where}", "not a variable name")
            elif isinstance(item, str | int | float | bool):
                env[name] = item
            else:
                self.notes.drop(
                    self.where,
                    f"apps[{self.index}].{where} {short(item)}",
                    "not a string or number",
                )
        return env
