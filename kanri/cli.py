"""The `kanri` command. Exit codes: 0 success, 1 the operation failed, 2 usage or config error.

Everything but `check`, `up` and `startup` talks to the running daemon through
the control API only (kanri.control.client).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from kanri.config.model import Config
from kanri.config.units import parse_duration
from kanri.control.client import Client, NotRunningError
from kanri.errors import ConfigError, KanriError
from kanri.native import proxy_compiled

EXIT_FAILED = 1
EXIT_USAGE = 2

config_option = click.option(
    "-c",
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default="kanri.toml",
    show_default=True,
    help="The project's config file (its directory holds the .kanri/ state).",
)
env_option = click.option(
    "--env",
    "env_name",
    metavar="NAME",
    default=None,
    help="Merge each app's [apps.NAME.env_<NAME>] table into its env (as PM2's --env).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    click.echo(f"kanri: {message}", err=True)
    sys.exit(code)


def load(config_file: Path, env_name: str | None) -> Config:
    from kanri.config import load_config

    try:
        return load_config(config_file, env_name)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_USAGE)


def client_for(config_file: Path) -> Client:
    """The client for a project's daemon; found from the config's directory, not its contents
    (so `kanri ls` still works while kanri.toml is being edited)."""
    home = os.environ.get("KANRI_HOME")
    state = Path(home).resolve() if home else config_file.resolve().parent / ".kanri"
    return Client(state / "kanri.sock")


def run_client(action: Any) -> Any:
    """Run one client call, turning its errors into messages and exit code 1."""
    try:
        return action()
    except NotRunningError as exc:
        fail(str(exc))
    except KanriError as exc:
        fail(str(exc))


class KanriGroup(click.Group):
    """Turns any KanriError that reaches the top into a message and an exit code.

    `kanri import` is loaded only when asked for: the daemon runs this same
    module and should not carry the importers in its memory.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), "import"])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "import":
            from kanri.importers import import_group

            return import_group
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        from kanri.importers import ImporterError

        try:
            return super().invoke(ctx)
        except ImporterError as exc:
            fail(str(exc), EXIT_USAGE)
        except KanriError as exc:
            fail(str(exc))


@click.group(cls=KanriGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    package_name="kanri",
    message="%(prog)s, version %(version)s (proxy: "
    + ("compiled" if proxy_compiled() else "plain Python, not compiled")
    + ")",
)
def main() -> None:
    """Run a whole web stack on one server from one kanri.toml."""


# -- config and foreground ----------------------------------------------------------------


@main.command()
@config_option
@env_option
def check(config_file: Path, env_name: str | None) -> None:
    """Validate the config file and show what it would run; start nothing."""
    from kanri.config.check import describe_config

    click.echo(describe_config(load(config_file, env_name)))


@main.command()
@config_option
@env_option
@click.option("-d", "--detach", is_flag=True, help="Run in the background (as a daemon).")
def up(config_file: Path, env_name: str | None, detach: bool) -> None:
    """Start every app in dependency order; Ctrl-C (or `kanri down`) stops them all."""
    config = load(config_file, env_name)
    if detach:
        sys.exit(start_detached(config, config_file))
    from kanri.background import run_daemon
    from kanri.terminal import Printer

    sys.exit(run_daemon(config, Printer(list(config.apps))))


def start_detached(config: Config, config_file: Path) -> int:
    """Start the daemon in its own session and wait until it says every app is ready."""
    from kanri.background import send_config
    from kanri.daemon import NOTIFY_FD_ENV, state_dir_for

    client = client_for(config_file)
    try:
        status = client.status()
    except KanriError:
        pass
    else:
        click.echo(f"kanri is already running here (pid {status['pid']}); see `kanri ls`")
        return 0
    state = state_dir_for(config)
    (state / "logs").mkdir(parents=True, exist_ok=True, mode=0o700)
    out_path = state / "logs" / "daemon.out"
    read_fd, write_fd = os.pipe()
    with out_path.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kanri.background"],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=out,
            cwd=config.root,
            env={**os.environ, NOTIFY_FD_ENV: str(write_fd)},
            pass_fds=(write_fd,),
            start_new_session=True,
        )
    os.close(write_fd)
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError), proc.stdin:  # if it died, its log says why
        send_config(proc.stdin, config)
    with os.fdopen(read_fd, "rb") as pipe:
        answer = pipe.readline()  # EOF (b"") if the daemon died before it could say
    if not answer:
        proc.wait(5)
        tail = out_path.read_text(errors="replace").strip().splitlines()[-20:]
        fail("the daemon exited before it was ready:\n" + "\n".join(tail))
    result = json.loads(answer)
    if not result.get("ok"):
        fail(result.get("error", "the daemon could not start"))
    click.echo(f"kanri started in the background (pid {proc.pid})")
    click.echo(result.get("summary", ""))
    return 0


@main.command()
@config_option
@env_option
@click.option("--install", is_flag=True, help="Write the unit to /etc/systemd/system (needs root).")
@click.option(
    "--user", "user", metavar="USER", help="Run kanri as USER (default: you, or $SUDO_USER)."
)
def startup(config_file: Path, env_name: str | None, install: bool, user: str | None) -> None:
    """Print a systemd unit that starts this project at boot (or --install it)."""
    import getpass

    from kanri import systemd

    config = load(config_file, env_name)
    who = user or os.environ.get("SUDO_USER") or getpass.getuser()
    try:
        text = systemd.render_unit(config, kanri_argv=[sys.executable, "-m", "kanri"], user=who)
        if not install:
            click.echo(text, nl=False)
            return
        path = systemd.install_unit(text, systemd.unit_name(config))
    except KanriError as exc:
        fail(str(exc))
    click.echo(f"wrote {path}; now run:")
    click.echo(systemd.enable_hint(systemd.unit_name(config)))


@main.command()
@config_option
def down(config_file: Path) -> None:
    """Stop every app and the daemon."""
    client = client_for(config_file)
    status = run_client(client.status)
    run_client(client.down)
    pid = int(status["pid"])
    deadline = time.monotonic() + 300
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _pid_alive(pid):
        fail(f"the daemon (pid {pid}) is still stopping; see .kanri/logs/kanri.log")
    click.echo("kanri stopped")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own child not yet reaped) is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# -- inspecting ----------------------------------------------------------------------------


@main.command(name="ls")
@config_option
@json_option
def ls(config_file: Path, as_json: bool) -> None:
    """List every instance: state, pid, uptime, restarts, cpu, memory, port."""
    rows = run_client(client_for(config_file).instances)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from kanri.views import instances_table, print_renderable

    print_renderable(instances_table(rows))


main.add_command(ls, name="status")


@main.command()
@config_option
@json_option
@click.argument("app")
def describe(config_file: Path, as_json: bool, app: str) -> None:
    """Show an app's config, env keys, log files, recent transitions and exit codes."""
    info = run_client(lambda: client_for(config_file).describe(app))
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    from kanri.views import describe_text

    click.echo(describe_text(info))


@main.command()
@config_option
@click.argument("target", required=False)
@click.option(
    "-n", "--lines", "count", default=20, show_default=True, help="How many recent lines."
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines as they come.")
@click.option("--since", metavar="DURATION", help='Only lines newer than this, e.g. "10m".')
def logs(
    config_file: Path, target: str | None, count: int, follow: bool, since: str | None
) -> None:
    """Print recent log lines of TARGET (an app, app:N, or all); -f follows new ones."""
    seconds = None
    if since is not None:
        try:
            seconds = parse_duration(since)
        except ValueError as exc:
            fail(f"--since: {exc}", EXIT_USAGE)
    client = client_for(config_file)
    path = client.logs_path(target, count, seconds, follow)
    try:
        if follow:
            for item in client.stream(path):
                _print_log(item)
        else:
            for item in client.call("GET", path)["lines"]:
                _print_log(item)
    except KeyboardInterrupt:
        pass
    except KanriError as exc:
        fail(str(exc))


def _print_log(item: dict[str, str]) -> None:
    click.echo(f"{item['instance']} | {item['line']}")


@main.command()
@config_option
def monit(config_file: Path) -> None:
    """A live view of every instance's CPU and memory, and the proxy's traffic."""
    from kanri.views import monit_loop

    client = client_for(config_file)
    run_client(client.status)
    try:
        monit_loop(client)
    except KeyboardInterrupt:
        pass
    except KanriError as exc:
        fail(str(exc))


# -- steering ------------------------------------------------------------------------------


def _action(name: str, help_text: str) -> None:
    @main.command(name=name, help=help_text)
    @config_option
    @click.argument("target")
    def command(config_file: Path, target: str) -> None:
        result = run_client(lambda: client_for(config_file).act(name, target))
        for inst in result["instances"]:
            pid = f" (pid {inst['pid']})" if inst["pid"] else ""
            click.echo(f"{inst['name']}: {inst['state']}{pid}")


_action("start", "Start TARGET: an app, app:N, or all.")
_action("stop", "Stop TARGET: an app, app:N, or all.")
_action("restart", "Stop and start TARGET (an app, app:N, or all) at once.")


@main.command()
@config_option
@click.argument("target", required=False)
def reload(config_file: Path, target: str | None) -> None:
    """Zero-downtime rolling reload of TARGET (an app, app:N, or all).

    Without TARGET: re-read kanri.toml and apply only what changed.
    """
    client = client_for(config_file)
    if target is None:
        result = run_client(client.reload_config)
        for key in ("added", "removed", "reloaded", "scaled"):
            if result[key]:
                click.echo(f"{key}: {', '.join(result[key])}")
        click.echo(f"routes: {'updated' if result['routes_changed'] else 'unchanged'}")
        for note in result["notes"]:
            click.echo(f"note: {note}")
        return
    result = run_client(lambda: client.act("reload", target))
    for inst in result["instances"]:
        pid = f" (pid {inst['pid']})" if inst["pid"] else ""
        click.echo(f"{inst['name']}: {inst['state']}{pid}")


@main.command()
@config_option
@click.argument("app")
@click.argument("count", type=click.IntRange(0, 1024))
def scale(config_file: Path, app: str, count: int) -> None:
    """Run COUNT instances of APP from now on."""
    result = run_client(lambda: client_for(config_file).scale(app, count))
    click.echo(f"{result['app']}: {result['instances']} instance(s)")
