"""The summary `kanri check` prints for a config that loaded: what would run, and where."""

from __future__ import annotations

from pathlib import Path

from kanri.config.model import AppConfig, Config, Route


def describe_config(config: Config) -> str:
    """A short plain-text summary of a loaded config: proxy, routes and apps."""
    env = f" (env: {config.env_name})" if config.env_name else ""
    lines = [f"{config.file}{env}: OK", ""]

    if config.proxy is None:
        lines.append("proxy: off (no [[routes]])")
    else:
        workers = config.proxy.workers
        plural = "s" if workers != 1 else ""
        lines.append(
            f"proxy: listening on {', '.join(config.proxy.listen)} ({workers} worker{plural})"
        )

    if config.routes:
        lines.append(f"routes ({len(config.routes)}):")
        matches = [_route_match(route) for route in config.routes]
        width = max(len(match) for match in matches)
        for match, route in zip(matches, config.routes, strict=True):
            lines.append(f"  {match.ljust(width)} -> {_route_target(route, config.root)}")

    if config.apps:
        lines.append(f"apps ({len(config.apps)}, in start order):")
        order = config.app_order()
        width = max(len(name) for name in order)
        for name in order:
            lines.append(f"  {name.ljust(width)}  {_app_summary(config.apps[name], config.root)}")
    else:
        lines.append("apps: none")
    return "\n".join(lines)


def _route_match(route: Route) -> str:
    path = f"= {route.path}" if route.exact else route.path
    return f"{route.host or '*'} {path}"


def _route_target(route: Route, root: Path) -> str:
    if route.app is not None:
        return f"app {route.app}"
    assert route.static is not None  # the model guarantees exactly one target
    return f"static {_shown_path(route.static, root)}"


def _app_summary(app: AppConfig, root: Path) -> str:
    count = app.instances
    parts = [f"{count} instance{'s' if count != 1 else ''}"]
    if app.port is None:
        parts.append("ports auto" if count != 1 else "port auto")
    elif count == 1:
        parts.append(f"port {app.port}")
    else:
        parts.append(f"ports {app.port}-{app.port + count - 1}")
    if app.cwd is not None:
        parts.append(f"cwd {_shown_path(app.cwd, root)}")
    if app.depends_on:
        parts.append(f"after {', '.join(app.depends_on)}")
    return ", ".join(parts)


def _shown_path(path: Path, root: Path) -> str:
    """Paths under the config's directory are shown relative to it, as the user wrote them."""
    try:
        return str(path.relative_to(root.resolve())) or "."
    except ValueError:
        return str(path)
