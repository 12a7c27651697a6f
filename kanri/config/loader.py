"""Reading kanri.toml into a validated, frozen Config, or one ConfigError listing every problem.

Loading runs in three passes, and each pass collects problems instead of stopping
at the first, so a user fixes a file in one round trip:

1. read the file and parse the TOML, then check the top-level shape;
2. validate ``[proxy]``, each ``[[routes]]`` entry and each ``[apps.NAME]`` table
   with its model, turning pydantic's errors into key paths and plain messages;
3. cross-check the parts that validated: route targets, dependencies, fixed
   ports, files and directories on disk, users and groups.

Loading reads the file system and the user database; it starts and writes nothing.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from kanri.config.messages import (
    describe,
    port_span,
    toml_syntax_message,
    translate,
    unknown_app,
    unknown_key,
)
from kanri.config.model import APP_NAME, ENV_NAME, AppConfig, Config, ProxyConfig, Route
from kanri.errors import ConfigError, ConfigProblem

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

TOP_LEVEL_KEYS = ("proxy", "routes", "apps")

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def load_config(path: Path | str, env_name: str | None = None) -> Config:
    """Read, validate and cross-check a kanri.toml; raise ConfigError listing every problem.

    With ``env_name``, each app's env is merged with its ``[apps.NAME.env_<env_name>]``
    table (the profile's values win), as PM2's ``--env`` does.
    """
    loader = _Loader(Path(path), str(path))
    return loader.load(env_name)


def key_path(*parts: str | int) -> str:
    """Dotted TOML key path: key_path("routes", 2, "path") == "routes[2].path"."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else json.dumps(part)
            out += f".{key}" if out else key
    return out


class _Loader:
    """One load of one file; owns the list of problems found so far."""

    def __init__(self, file: Path, shown_name: str) -> None:
        self.file = Path(os.path.abspath(file))
        self.root = self.file.parent
        self.shown_name = shown_name
        self.problems: list[ConfigProblem] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(ConfigProblem(self.shown_name, path, message))

    def fail(self) -> ConfigError:
        return ConfigError(list(self.problems))

    # -- pass 1: the file and its top-level shape ------------------------------------------

    def load(self, env_name: str | None) -> Config:
        data = self.read()
        if data is None:
            raise self.fail()

        for key in data:
            if key not in TOP_LEVEL_KEYS:
                self.problem(key_path(key), unknown_key(key, TOP_LEVEL_KEYS, {}))

        proxy_raw = data.get("proxy")
        routes_raw = data.get("routes", [])
        apps_raw = data.get("apps", {})
        if proxy_raw is not None and not isinstance(proxy_raw, dict):
            self.problem("proxy", f"expected a table ([proxy]), got {describe(proxy_raw)}")
            proxy_raw = None
        if not isinstance(routes_raw, list):
            self.problem(
                "routes",
                f"expected an array of tables ([[routes]] entries), got {describe(routes_raw)}",
            )
            routes_raw = []
        if not isinstance(apps_raw, dict):
            self.problem(
                "apps", f"expected a table of apps ([apps.NAME] tables), got {describe(apps_raw)}"
            )
            apps_raw = {}
        if "apps" not in data and "routes" not in data:
            self.problem("", "nothing to run: add an [apps.NAME] table or a [[routes]] entry")

        # -- pass 2: each section on its own -----------------------------------------------
        proxy = None
        if proxy_raw is not None:
            proxy = self.validate(ProxyConfig, proxy_raw, ("proxy",))
        routes = self.validate_routes(routes_raw)
        apps = self.validate_apps(apps_raw)

        # -- pass 3: across sections, on what validated ------------------------------------
        app_names = list(apps_raw)
        self.check_routes(routes, app_names)
        self.check_routed_apps_listen(routes, apps)
        self.check_apps(apps, apps_raw, app_names)
        if env_name is not None:
            apps = self.apply_profile(apps, apps_raw, env_name)

        if self.problems:
            raise self.fail()
        if proxy is None and routes_raw:
            proxy = ProxyConfig()
        return Config(
            file=self.file,
            root=self.root,
            proxy=proxy,
            routes=tuple(routes.values()),
            apps=apps,
            env_name=env_name,
        )

    def read(self) -> dict[str, Any] | None:
        try:
            raw = self.file.read_bytes()
        except FileNotFoundError:
            self.problem("", "file not found; create it, or give the path of your kanri.toml")
            return None
        except IsADirectoryError:
            self.problem("", "this is a directory; give the path of a kanri.toml file")
            return None
        except OSError as exc:
            self.problem("", f"cannot read the file: {exc.strerror or exc}")
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            self.problem("", f"not UTF-8 text (bad byte at line {line}); save the file as UTF-8")
            return None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            self.problem("", toml_syntax_message(str(exc), text))
            return None

    # -- pass 2: sections --------------------------------------------------------------------

    def validate(
        self, model: type[M], data: dict[str, Any], where: Loc, name: str | None = None
    ) -> M | None:
        """Validate one table with its model; on failure record its problems and return None."""
        full = data if name is None else data | {"name": name}
        try:
            return model.model_validate(full, context={"root": self.root})
        except ValidationError as exc:
            for loc, message in translate(model, exc.errors(include_url=False)):
                self.problem(key_path(*where, *loc), message)
            return None

    def validate_routes(self, routes_raw: list[Any]) -> dict[int, Route]:
        """Valid routes by their index in the file (the index is what problems refer to)."""
        routes: dict[int, Route] = {}
        for index, raw in enumerate(routes_raw):
            if not isinstance(raw, dict):
                self.problem(
                    key_path("routes", index),
                    f"expected a table ([[routes]] entry), got {describe(raw)}",
                )
                continue
            route = self.validate(Route, raw, ("routes", index))
            if route is not None:
                routes[index] = route
        return routes

    def validate_apps(self, apps_raw: dict[str, Any]) -> dict[str, AppConfig]:
        apps: dict[str, AppConfig] = {}
        for name, raw in apps_raw.items():
            where = ("apps", name)
            name_ok = APP_NAME.fullmatch(name) is not None
            if not name_ok:
                self.problem(
                    key_path(*where),
                    f"{name!r} is not an app name; use letters, digits, '_', '.' and '-',"
                    " starting with a letter or digit (the name becomes part of file names)",
                )
            if not isinstance(raw, dict):
                self.problem(
                    key_path(*where), f"expected a table ([apps.{name}]), got {describe(raw)}"
                )
                continue
            data = dict(raw)
            ok = True
            for key, why in (
                ("name", "an app's name is the name of its table, [apps.NAME]"),
                ("env_profiles", "write one [apps.NAME.env_PROFILE] table per profile"),
            ):
                if key in data:
                    del data[key]
                    self.problem(key_path(*where, key), f"unknown key `{key}`; {why}")
                    ok = False
            auto = data.get("autorestart", False)
            if not isinstance(auto, bool):
                # Checked here rather than left to the model: the model can only refuse
                # it for the table as a whole, which would hide every other problem.
                del data["autorestart"]
                self.problem(
                    key_path(*where, "autorestart"),
                    f"expected true or false, got {describe(auto)};"
                    ' or write restart = "always", "on-failure" or "never"',
                )
                ok = False
            ok = self.check_env_names(data, where) and ok
            app = self.validate(AppConfig, data, where, name)
            if app is not None and ok and name_ok:
                apps[name] = app
        return apps

    def check_env_names(self, data: dict[str, Any], where: Loc) -> bool:
        """Environment variable names must be names a shell can use."""
        ok = True
        for key, table in data.items():
            if key == "env_":
                self.problem(
                    key_path(*where, key),
                    "a profile needs a name after env_, e.g. [apps.NAME.env_production]",
                )
                ok = False
            if not (key == "env" or key.startswith("env_")) or not isinstance(table, dict):
                continue
            for var in table:
                if not ENV_NAME.fullmatch(var):
                    self.problem(
                        key_path(*where, key, var),
                        f"{var!r} is not an environment variable name; use letters, digits"
                        " and '_', not starting with a digit",
                    )
                    ok = False
        return ok

    # -- pass 3: cross-checks ----------------------------------------------------------------

    def check_routed_apps_listen(
        self, routes: dict[int, Route], apps: Mapping[str, AppConfig]
    ) -> None:
        for index, route in routes.items():
            app = apps.get(route.app) if route.app is not None else None
            if app is not None and app.ready == "started":
                self.problem(
                    key_path("routes", index, "app"),
                    f'app {route.app!r} has ready = "started": it serves no port, so a route'
                    " cannot send it requests; route to an app that listens on $PORT",
                )

    def check_routes(self, routes: dict[int, Route], app_names: Sequence[str]) -> None:
        seen: dict[tuple[str | None, str, bool], int] = {}
        for index, route in routes.items():
            where = ("routes", index)
            if route.app is not None and route.app not in app_names:
                self.problem(key_path(*where, "app"), unknown_app(route.app, app_names))
            if route.static is not None:
                self.check_static(route, route.static, where)
            elif route.fallback is not None:
                self.problem(
                    key_path(*where, "fallback"),
                    'fallback is for static routes; remove it or use static = "DIR"',
                )
            key = (route.host, route.path, route.exact)
            if key in seen:
                what = f"host {route.host!r} and path" if route.host else "path"
                self.problem(
                    key_path(*where),
                    f"same {what} {route.path!r} as {key_path('routes', seen[key])};"
                    " only the first would ever match, so remove one of them",
                )
            else:
                seen[key] = index

    def check_static(self, route: Route, static: Path, where: Loc) -> None:
        if not static.exists():
            self.problem(
                key_path(*where, "static"),
                f"directory {str(static)!r} does not exist; static paths are relative to"
                f" the config file's directory ({self.root})",
            )
            return
        if not static.is_dir():
            self.problem(
                key_path(*where, "static"),
                f"{str(static)!r} is not a directory; give the directory to serve files from",
            )
            return
        if route.fallback is None:
            return
        target = (static / route.fallback.lstrip("/")).resolve()
        if not target.is_relative_to(static.resolve()):
            self.problem(
                key_path(*where, "fallback"),
                f"{route.fallback!r} is outside the static root {str(static)!r}; give a file"
                ' inside it, e.g. fallback = "index.html"',
            )
        elif not target.is_file():
            self.problem(
                key_path(*where, "fallback"),
                f"no file {route.fallback!r} in {str(static)!r}; fallback must name a file"
                ' inside the static root, e.g. fallback = "index.html"',
            )

    def check_apps(
        self, apps: dict[str, AppConfig], apps_raw: dict[str, Any], app_names: Sequence[str]
    ) -> None:
        for name, app in apps.items():
            where = ("apps", name)
            for dep in app.depends_on:
                if dep not in app_names:
                    self.problem(key_path(*where, "depends_on"), unknown_app(dep, app_names))
            cwd_ok = True
            if app.cwd is not None and not app.cwd.is_dir():
                cwd_ok = False
                what = "is not a directory" if app.cwd.exists() else "does not exist"
                self.problem(
                    key_path(*where, "cwd"),
                    f"{str(app.cwd)!r} {what}; cwd is relative to the config file's"
                    f" directory ({self.root})",
                )
            if isinstance(app.watch, tuple) and cwd_ok:
                listed = isinstance(apps_raw[name].get("watch"), list)
                for index, watched in enumerate(app.watch):
                    if not watched.exists():
                        at = (
                            key_path(*where, "watch", index)
                            if listed
                            else key_path(*where, "watch")
                        )
                        self.problem(
                            at,
                            f"{str(watched)!r} does not exist; watch paths are relative to the"
                            f" app's cwd ({app.cwd or self.root})",
                        )
            if app.user is not None and not _user_exists(app.user):
                self.problem(
                    key_path(*where, "user"),
                    f"no user {app.user!r} on this system; give an existing user name or id",
                )
            if app.group is not None and not _group_exists(app.group):
                self.problem(
                    key_path(*where, "group"),
                    f"no group {app.group!r} on this system; give an existing group name or id",
                )
        self.check_cycles(apps)
        self.check_ports(apps)

    def check_cycles(self, apps: dict[str, AppConfig]) -> None:
        reported: set[frozenset[str]] = set()
        done: set[str] = set()

        def visit(name: str, stack: list[str]) -> None:
            if name in stack:
                cycle = [*stack[stack.index(name) :], name]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    self.problem(
                        key_path("apps", cycle[0], "depends_on"),
                        f"dependency cycle: {' -> '.join(cycle)}; no app in it could start"
                        " first, so remove one of these depends_on entries",
                    )
                return
            if name in done:
                return
            stack.append(name)
            for dep in apps[name].depends_on:
                if dep in apps:
                    visit(dep, stack)
            stack.pop()
            done.add(name)

        for name in apps:
            visit(name, [])

    def check_ports(self, apps: dict[str, AppConfig]) -> None:
        fixed: list[tuple[str, int, int]] = []
        for name, app in apps.items():
            if app.port is None:
                continue
            first, last = app.port, app.port + app.instances - 1
            span = port_span(first, last)
            if last > 65535:
                self.problem(
                    key_path("apps", name, "port"),
                    f"{app.instances} instances from port {first} need ports {span}, past 65535;"
                    f" use a port of at most {65536 - app.instances}",
                )
                continue
            for other, other_first, other_last in fixed:
                if first <= other_last and other_first <= last:
                    self.problem(
                        key_path("apps", name, "port"),
                        f"ports {span} overlap ports {port_span(other_first, other_last)} of"
                        f" app {other!r} (each instance takes port + its number); move one"
                        " range, or leave port out to have free ports chosen",
                    )
            fixed.append((name, first, last))

    def apply_profile(
        self, apps: dict[str, AppConfig], apps_raw: dict[str, Any], env_name: str
    ) -> dict[str, AppConfig]:
        # Profiles are read from the raw tables so that an app which failed to
        # validate still counts as defining its profiles.
        defined = sorted(
            {
                key[4:]
                for raw in apps_raw.values()
                if isinstance(raw, dict)
                for key in raw
                if key.startswith("env_") and key != "env_"
            }
        )
        if env_name not in defined:
            known = f"profiles defined: {', '.join(defined)}" if defined else "no profiles defined"
            self.problem("", f"no app has an [apps.NAME.env_{env_name}] table; {known}")
            return apps
        return {
            name: app.model_copy(update={"env": app.env | app.env_profiles[env_name]})
            if env_name in app.env_profiles
            else app
            for name, app in apps.items()
        }


# -- turning pydantic errors into plain messages ------------------------------------------------


def _user_exists(user: str) -> bool:
    try:
        if user.isdigit():
            pwd.getpwuid(int(user))
        else:
            pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def _group_exists(group: str) -> bool:
    try:
        if group.isdigit():
            grp.getgrgid(int(group))
        else:
            grp.getgrnam(group)
    except KeyError:
        return False
    return True
