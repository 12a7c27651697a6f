"""The `kanri` command. Maps errors to exit codes: 0 ok, 1 operation failed, 2 usage/config."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from kanri.errors import ConfigError, KanriError

EXIT_FAILED = 1
EXIT_USAGE = 2

config_option = click.option(
    "-c",
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default="kanri.toml",
    show_default=True,
    help="The config file.",
)
env_option = click.option(
    "--env",
    "env_name",
    metavar="NAME",
    default=None,
    help="Merge each app's [apps.NAME.env_<NAME>] table into its env (as PM2's --env).",
)


def _load(config_file: Path, env_name: str | None):  # type: ignore[no-untyped-def]
    from kanri.config import load_config

    try:
        return load_config(config_file, env_name)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_USAGE)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kanri")
def main() -> None:
    """Run a whole web stack on one server from one kanri.toml."""


@main.command()
@config_option
@env_option
def check(config_file: Path, env_name: str | None) -> None:
    """Validate the config file and show what it would run; start nothing."""
    from kanri.config.check import describe_config

    config = _load(config_file, env_name)
    click.echo(describe_config(config))


@main.command()
@config_option
@env_option
def up(config_file: Path, env_name: str | None) -> None:
    """Start every app (and the proxy) in the foreground; Ctrl-C stops them all."""
    from kanri.daemon import Daemon
    from kanri.terminal import Printer

    config = _load(config_file, env_name)
    daemon = Daemon(config, printer=Printer(list(config.apps)))
    try:
        code = asyncio.run(daemon.run())
    except KanriError as exc:
        click.echo(f"kanri: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    sys.exit(code)
