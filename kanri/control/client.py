"""The client the CLI uses to talk to a daemon: plain HTTP/1.1 over the Unix socket."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from kanri.errors import ControlError


class NotRunningError(ControlError):
    """No daemon is listening on the project's socket."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float | None) -> None:
        super().__init__("kanri", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Client:
    def __init__(self, socket_path: Path, timeout: float | None = 60.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def _open(
        self, method: str, path: str, body: Any = None, timeout: float | None = None
    ) -> http.client.HTTPResponse:
        conn = _UnixConnection(self.socket_path, timeout if timeout is not None else self.timeout)
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        try:
            conn.request(method, path, body=payload, headers=headers)
            return conn.getresponse()
        except (FileNotFoundError, ConnectionRefusedError):
            raise NotRunningError(
                f"kanri is not running here (no daemon on {self.socket_path}); start it with `kanri up -d`"
            ) from None
        except PermissionError:
            raise ControlError(
                f"permission denied on {self.socket_path}: only the user who started kanri may control it"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise ControlError(f"lost contact with the daemon: {exc}") from None

    def call(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        """Send one request; return the decoded JSON answer or raise ControlError with its message."""
        resp = self._open(method, path, body, timeout)
        try:
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ControlError(f"lost contact with the daemon: {exc}") from None
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            raise ControlError(
                f"the daemon sent an answer that is not JSON ({resp.status})"
            ) from None
        if resp.status >= 400:
            message = data.get("error") if isinstance(data, dict) else None
            raise ControlError(message or f"the daemon answered {resp.status}")
        return data

    def stream(self, path: str) -> Iterator[Any]:
        """Yield each JSON line of a streamed answer until the daemon ends it."""
        resp = self._open("GET", path, timeout=None)
        if resp.status >= 400:
            data = json.loads(resp.read() or b"{}")
            raise ControlError(data.get("error") or f"the daemon answered {resp.status}")
        while line := resp.readline():
            yield json.loads(line)

    # -- the endpoints, by name ---------------------------------------------------------

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", "/v1/status", timeout=5)
        return result

    def instances(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("GET", "/v1/apps")["instances"]
        return result

    def describe(self, app: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/v1/apps/{quote(app, safe='')}")
        return result

    def act(self, action: str, target: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "POST", f"/v1/apps/{quote(target, safe=':')}/{action}", {}
        )
        return result

    def scale(self, app: str, count: int) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "POST", f"/v1/apps/{quote(app, safe='')}/scale", {"instances": count}
        )
        return result

    def logs_path(self, app: str | None, count: int, since: float | None, follow: bool) -> str:
        query: dict[str, str] = {"n": str(count)}
        if app:
            query["app"] = app
        if since is not None:
            query["since"] = str(since)
        if follow:
            query["follow"] = "1"
        return "/v1/logs?" + urlencode(query)

    def reload_config(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", "/v1/reload", {}, timeout=None)
        return result

    def metrics(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", "/v1/metrics", timeout=10)
        return result

    def down(self) -> None:
        self.call("POST", "/v1/down", {})
