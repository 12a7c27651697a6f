"""`kanri import pm2|nginx`: write a commented kanri.toml from existing PM2 and nginx configs.

Errors are raised as kanri.importers.errors exceptions (KanriError subclasses);
the `kanri` command maps them to exit code 2.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from kanri.importers.build import import_files
from kanri.importers.document import Draft, render
from kanri.importers.errors import ImporterError, OutputExistsError

_output = click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the kanri.toml here instead of printing it; relative paths in it are made"
    " relative to this file's directory.",
)
_force = click.option("--force", is_flag=True, help="Overwrite the -o file if it exists.")
_path = click.Path(path_type=Path)


@click.group("import", context_settings={"help_option_names": ["-h", "--help"]})
def import_group() -> None:
    """Write a kanri.toml from a PM2 ecosystem file and/or an nginx config.

    The file starts with comments listing what to fill in, what to check, and every
    option that could not be carried over, with the reason.
    """


@import_group.command("pm2", short_help="Import a PM2 ecosystem file (and an nginx config).")
@click.argument("file", type=_path)
@click.option(
    "--nginx",
    "nginx_file",
    type=_path,
    default=None,
    help="Also import this nginx config; its proxy_pass targets are matched to PM2 apps by port.",
)
@_output
@_force
def pm2_command(file: Path, nginx_file: Path | None, output: Path | None, force: bool) -> None:
    """Import FILE: ecosystem.config.js (.cjs, .mjs; evaluated with node), .json or .yaml."""
    _write(import_files(file, nginx_file, _out_dir(output)), output, force)


@import_group.command("nginx", short_help="Import an nginx config.")
@click.argument("file", type=_path)
@_output
@_force
def nginx_command(file: Path, output: Path | None, force: bool) -> None:
    """Import FILE, an nginx config (nginx.conf or a site file; includes are followed)."""
    _write(import_files(None, file, _out_dir(output)), output, force)


def _out_dir(output: Path | None) -> Path:
    return (output.parent if output is not None else Path()).resolve()


def _write(draft: Draft, output: Path | None, force: bool) -> None:
    text = render(draft)
    if output is None:
        click.echo(text, nl=False)
        return
    if output.exists() and not force:
        raise OutputExistsError(str(output))
    try:
        fd, temp = tempfile.mkstemp(prefix=".kanri-import-", dir=output.parent.resolve())
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temp, output)
    except OSError as exc:
        raise ImporterError(f"cannot write {output}: {exc.strerror or exc}") from exc
    dropped = len(draft.notes.dropped)
    click.echo(
        f"wrote {output}: {len(draft.apps)} apps, {len(draft.routes)} routes;"
        f" {len(draft.notes.todo)} to fill in, {dropped} options not carried over"
        " (listed at its top)",
        err=True,
    )
