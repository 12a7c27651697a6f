"""The control API: HTTP + JSON on the project's Unix socket, owner only.

Every endpoint is one small handler whose docstring is its reference; the
same text is in docs/api.md. Handlers never touch supervisor state themselves:
they call the Controller (the daemon), which applies the request in its loop.
A bad request gets a 4xx JSON error and never disturbs the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from kanri.control import wire
from kanri.control.wire import Request, RequestError
from kanri.errors import KanriError, UnknownTargetError

ACTIONS = ("start", "stop", "restart", "reload")
Handler = Callable[[Request, re.Match[str]], Awaitable[Any]]


class Controller(Protocol):
    """What the API needs from the daemon."""

    def status(self) -> dict[str, Any]: ...
    async def instances(self) -> list[dict[str, Any]]: ...
    def describe(self, app: str) -> dict[str, Any]: ...
    async def act(self, action: str, target: str) -> dict[str, Any]: ...
    async def scale(self, app: str, count: int) -> dict[str, Any]: ...
    def log_lines(
        self, app: str | None, count: int, since: float | None
    ) -> list[dict[str, str]]: ...
    def follow_logs(self, app: str | None) -> AsyncIterator[dict[str, str]]: ...
    async def metrics(self) -> dict[str, Any]: ...
    async def reload_config(self) -> dict[str, Any]: ...
    def down(self) -> None: ...


class ControlServer:
    """Serves the API on ``path`` (mode 0600, in a 0700 directory) while in its context."""

    def __init__(self, path: Path, controller: Controller) -> None:
        self.path = path
        self.controller = controller
        self._server: asyncio.Server | None = None
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"/v1/status"), self.get_status),
            ("GET", re.compile(r"/v1/apps"), self.get_apps),
            ("GET", re.compile(r"/v1/apps/(?P<app>[^/]+)"), self.get_app),
            (
                "POST",
                re.compile(r"/v1/apps/(?P<target>[^/]+)/(?P<action>[a-z]+)"),
                self.post_action,
            ),
            ("GET", re.compile(r"/v1/logs"), self.get_logs),
            ("GET", re.compile(r"/v1/metrics"), self.get_metrics),
            ("POST", re.compile(r"/v1/reload"), self.post_reload),
            ("POST", re.compile(r"/v1/down"), self.post_down),
        ]

    async def __aenter__(self) -> ControlServer:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path.parent, 0o700)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # stale: the caller holds the project lock
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=wire.MAX_HEAD
            )
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                request = await wire.read_request(reader)
                handler, match = self._route(request)
                result = await handler(request, match)
            except RequestError as exc:
                writer.write(wire.response(exc.status, {"error": exc.message}))
            except UnknownTargetError as exc:
                writer.write(wire.response(404, {"error": str(exc)}))
            except KanriError as exc:
                writer.write(wire.response(409, {"error": str(exc)}))
            else:
                if isinstance(result, _Stream):
                    await self._stream(result.items, writer)
                else:
                    writer.write(wire.response(200, result))
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the client went away; nothing to answer
        except Exception as exc:  # a bug must not take the daemon down: answer 500
            with contextlib.suppress(Exception):
                writer.write(wire.response(500, {"error": f"internal error: {type(exc).__name__}"}))
                await writer.drain()
        finally:
            writer.close()

    async def _stream(
        self, items: AsyncIterator[dict[str, str]], writer: asyncio.StreamWriter
    ) -> None:
        writer.write(wire.stream_head())
        async for item in items:
            writer.write(wire.chunk(item))
            await writer.drain()
        writer.write(wire.LAST_CHUNK)

    def _route(self, request: Request) -> tuple[Handler, re.Match[str]]:
        allowed = []
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if method == request.method:
                return handler, match
            allowed.append(method)
        if allowed:
            raise RequestError(
                405, f"{request.method} is not allowed here; use {', '.join(allowed)}"
            )
        raise RequestError(404, f"no endpoint {request.path}; see docs/api.md")

    # -- endpoints -------------------------------------------------------------------

    async def get_status(self, request: Request, match: re.Match[str]) -> Any:
        """GET /v1/status: the daemon's pid, version, config file, start time and phase."""
        return self.controller.status()

    async def get_apps(self, request: Request, match: re.Match[str]) -> Any:
        """GET /v1/apps: every instance with its state, pid, port, uptime, restarts, cpu, memory."""
        return {"instances": await self.controller.instances()}

    async def get_app(self, request: Request, match: re.Match[str]) -> Any:
        """GET /v1/apps/NAME: config, env keys, log paths, recent transitions, exit codes."""
        return self.controller.describe(match["app"])

    async def post_action(self, request: Request, match: re.Match[str]) -> Any:
        """POST /v1/apps/TARGET/ACTION: start, stop, restart, reload, or scale {"instances": N}.

        TARGET is an app name, ``app:index`` or ``all``.
        """
        action, target = match["action"], match["target"]
        if action == "scale":
            count = request.json().get("instances")
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 1024:
                raise RequestError(422, 'scale needs {"instances": N} with N a whole number 0-1024')
            return await self.controller.scale(target, count)
        if action not in ACTIONS:
            raise RequestError(
                404, f"unknown action {action!r}; use one of: {', '.join(ACTIONS)}, scale"
            )
        request.json()  # an invalid body is an error even where no body is needed
        return await self.controller.act(action, target)

    async def get_logs(self, request: Request, match: re.Match[str]) -> Any:
        """GET /v1/logs?app=NAME&n=N&since=SECONDS&follow=1: recent lines; follow streams NDJSON."""
        app = request.query.get("app") or None
        try:
            count = int(request.query.get("n", "50"))
            since = float(request.query["since"]) if request.query.get("since") else None
        except ValueError:
            raise RequestError(
                400, "n must be a whole number and since a number of seconds"
            ) from None
        if not 0 <= count <= 100_000:
            raise RequestError(400, "n must be between 0 and 100000")
        lines = self.controller.log_lines(app, count, since)
        if request.query.get("follow") in ("1", "true"):
            return _Stream(_then(lines, self.controller.follow_logs(app)))
        return {"lines": lines}

    async def get_metrics(self, request: Request, match: re.Match[str]) -> Any:
        """GET /v1/metrics: per-instance cpu/memory and the proxy's request and error counters."""
        return await self.controller.metrics()

    async def post_reload(self, request: Request, match: re.Match[str]) -> Any:
        """POST /v1/reload: re-read kanri.toml and apply only what changed (invalid: 409)."""
        request.json()
        return await self.controller.reload_config()

    async def post_down(self, request: Request, match: re.Match[str]) -> Any:
        """POST /v1/down: stop every app and then the daemon; answers before stopping."""
        self.controller.down()
        return {"stopping": True}


class _Stream:
    def __init__(self, items: AsyncIterator[dict[str, str]]) -> None:
        self.items = items


async def _then(
    first: list[dict[str, str]], rest: AsyncIterator[dict[str, str]]
) -> AsyncIterator[dict[str, str]]:
    for item in first:
        yield item
    async for item in rest:
        yield item
