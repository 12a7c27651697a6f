"""Putting an import together: PM2 apps, nginx routes, and the join between them.

A route's backend (an nginx upstream or address) becomes the PM2 app that
listened on that port, when there is one; otherwise an app placeholder whose
command the user fills in.
"""

from __future__ import annotations

from pathlib import Path

from kanri.importers.document import AppDraft, Draft, render
from kanri.importers.errors import SourceError
from kanri.importers.nginx import LOCAL_HOSTS, Backend, NginxImport, convert_nginx
from kanri.importers.nginx_parse import parse_nginx
from kanri.importers.pm2 import Pm2App, Pm2Import, convert_ecosystem, forget_port
from kanri.importers.pm2_read import read_ecosystem
from kanri.importers.pm2_values import NAME_BAD, PLACEHOLDER

_READY = (
    "kanri counts an instance ready once it accepts connections on $PORT (or answers `health`),"
    ' so this app must listen on $PORT; a worker that serves no port needs ready = "started"'
)
_FILL = (
    "the command that starts this app, listening on $PORT, e.g."
    ' "node server.js" or "gunicorn mysite.wsgi --bind 127.0.0.1:$PORT"'
)


def import_files(pm2_file: Path | None, nginx_file: Path | None, out_dir: Path) -> Draft:
    """Read and convert the given files; ``out_dir`` is where the kanri.toml will be written."""
    pm2 = None
    nginx = None
    sources = []
    if pm2_file is not None:
        data = read_ecosystem(pm2_file)
        pm2 = convert_ecosystem(data, str(pm2_file), pm2_file.resolve().parent, out_dir.resolve())
        sources.append(f"PM2: {pm2_file}")
    if nginx_file is not None:
        nginx = convert_nginx(parse_nginx(nginx_file))
        sources.append(f"nginx: {nginx_file} (and the files it includes)")
        if not nginx.routes and pm2 is None:
            raise SourceError(
                str(nginx_file),
                "nothing to import: no server block has a location kanri can route (a prefix"
                " or = location with proxy_pass, root or alias)",
            )
    return build(sources, pm2, nginx)


def import_text(pm2_file: Path | None, nginx_file: Path | None, out_dir: Path) -> str:
    return render(import_files(pm2_file, nginx_file, out_dir))


def build(sources: list[str], pm2: Pm2Import | None, nginx: NginxImport | None) -> Draft:
    draft = Draft(sources=sources)
    pm2_apps = pm2.apps if pm2 is not None else []
    if pm2 is not None:
        draft.notes.extend(pm2.notes)
        for app in pm2_apps:
            draft.apps[app.draft.name] = app.draft
    routed: set[str] = set()
    if nginx is not None:
        draft.notes.extend(nginx.notes)
        draft.proxy = nginx.proxy
        names: dict[str, str] = {}
        for key, backend in nginx.backends.items():
            match = _match(backend, pm2_apps, draft)
            names[key] = match.draft.name if match is not None else _placeholder(backend, draft)
            if match is not None and match.draft.name not in routed:
                routed.add(match.draft.name)
                forget_port(match)
                if backend.balance is not None:
                    match.draft.main.set("balance", backend.balance, "nginx least_conn")
        for route, key in nginx.app_routes:
            route.values["app"] = names[key]
        draft.routes = nginx.routes
    for app in pm2_apps:
        if app.draft.name in routed:
            continue
        if nginx is not None or app.base_port is None:
            why = "no nginx route reaches this app. " if nginx is not None else ""
            app.draft.main.comments.append(why + _READY)
        if app.cluster and app.base_port is not None:
            draft.notes.check.append(
                f"apps.{app.draft.name}: PM2 cluster mode shared port {app.base_port} between"
                f" instances; kanri gives instance n port {app.base_port} + n. To keep one"
                " address, put kanri's proxy there with a [[routes]] entry for this app (or"
                " import your nginx config too, with --nginx)"
            )
    return draft


def _match(backend: Backend, apps: list[Pm2App], draft: Draft) -> Pm2App | None:
    """The PM2 app that listened where nginx sent these requests, if any."""
    matched: list[Pm2App] = []
    missing: list[str] = []
    for host, port in backend.servers:
        app = next((a for a in apps if port in a.ports), None) if host in LOCAL_HOSTS else None
        if app is None:
            missing.append(f"{host}:{port}")
        elif app not in matched:
            matched.append(app)
    if not matched:
        return None
    chosen = matched[0]
    if len(matched) > 1:
        others = ", ".join(a.draft.name for a in matched[1:])
        draft.notes.check.append(
            f"nginx's {backend.key} reached the PM2 apps {chosen.draft.name} and {others};"
            f" kanri sends its routes to {chosen.draft.name} only"
        )
    if missing:
        draft.notes.check.append(
            f"nginx's {backend.key} also listed {', '.join(missing)}, where no PM2 app listened;"
            f" its routes go to {chosen.draft.name}"
        )
    return chosen


def _placeholder(backend: Backend, draft: Draft) -> str:
    base = NAME_BAD.sub("-", backend.hint).strip("-._") or "app"
    name, n = base, 2
    while name in draft.apps:
        name, n = f"{base}-{n}", n + 1
    app = AppDraft(name)
    app.main.comments.append(
        f"nginx sent {', '.join(backend.uses)} to {', '.join(backend.described)}"
    )
    app.main.set("command", PLACEHOLDER, f"write {_FILL}")
    if len(backend.described) > 1:
        app.main.set(
            "instances",
            len(backend.described),
            f"nginx balanced over {len(backend.described)} servers",
        )
    if backend.balance is not None:
        app.main.set("balance", backend.balance, "nginx least_conn")
    draft.apps[name] = app
    draft.notes.todo.append(
        f"apps.{name}.command: the app nginx reached at {', '.join(backend.described)}"
    )
    return name
