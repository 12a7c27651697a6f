"""The Next.js + Django example under `kanri up`, end to end through the proxy.

The stack runs from the example's own kanri.toml, rewritten only where a test
must differ: a free listen port, absolute paths (the copy lives in tmp_path,
beside its own .kanri/ state) and a copy of the database, so the test can add a
row while the stack runs and see it come back through Django and Next.js.

Needs `make -C examples/nextjs-django setup` first; skipped without it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import tomllib
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.load import BackgroundLoad
from kanri.control.client import Client
from tests.helpers import KanriUp, free_port, kanri_cli, wait_until

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "nextjs-django"
BACKEND = EXAMPLE / "backend"
FRONTEND = EXAMPLE / "frontend"
CSS = "/static/items/site.css"

# What `make setup` leaves behind; without any of it the stack cannot run.
SETUP_OUTPUTS = {
    "the example's virtualenv with gunicorn": EXAMPLE / ".venv" / "bin" / "gunicorn",
    "the Next.js build": FRONTEND / ".next" / "BUILD_ID",
    "the seeded database": BACKEND / "db.sqlite3",
    "the collected static files": BACKEND / "staticfiles" / "items" / "site.css",
}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def toml_table(header: str, table: dict[str, Any]) -> str:
    return "\n".join([header, *(f"{k} = {toml_value(v)}" for k, v in table.items())]) + "\n"


def stack_config(tmp_path: Path, port: int, database: Path) -> Path:
    """The example's kanri.toml, listening on ``port``, with absolute paths and its own DB."""
    config = tomllib.loads((EXAMPLE / "kanri.toml").read_text())
    config["proxy"]["listen"] = [f"127.0.0.1:{port}"]
    for route in config["routes"]:
        if "static" in route:
            route["static"] = str(EXAMPLE / route["static"])
    for app in config["apps"].values():
        app["cwd"] = str(EXAMPLE / app["cwd"])
    config["apps"]["api"]["env"]["DJANGO_DB_PATH"] = str(database)

    parts = [toml_table("[proxy]", config["proxy"])]
    parts += [toml_table("[[routes]]", route) for route in config["routes"]]
    parts += [toml_table(f"[apps.{name}]", app) for name, app in config["apps"].items()]
    path = tmp_path / "kanri.toml"
    path.write_text("\n".join(parts))
    return path


class Stack:
    def __init__(self, kanri: KanriUp, url: str, database: Path) -> None:
        self.kanri = kanri
        self.url = url
        self.database = database

    def add_item(self, title: str) -> None:
        """Insert a row behind Django's back, as another writer would."""
        created = datetime.now(UTC).replace(tzinfo=None)  # Django keeps naive UTC in SQLite
        with closing(sqlite3.connect(self.database)) as db, db:
            db.execute(
                "INSERT INTO items_item (title, summary, created) VALUES (?, ?, ?)",
                (title, "added by the test", created.isoformat(" ")),
            )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    missing = [what for what, path in SETUP_OUTPUTS.items() if not path.exists()]
    if missing:
        pytest.skip(
            f"the Next.js + Django example is not set up (missing {', '.join(missing)}); "
            "run `make -C examples/nextjs-django setup`"
        )
    tmp_path = tmp_path_factory.mktemp("example-stack")
    database = tmp_path / "db.sqlite3"
    shutil.copyfile(BACKEND / "db.sqlite3", database)
    port = free_port()
    kanri = KanriUp(stack_config(tmp_path, port, database))
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=5) as client:

            def answers(path: str) -> bool:
                if kanri.proc.poll() is not None:
                    raise AssertionError(f"kanri exited ({kanri.proc.returncode}):\n{kanri.text()}")
                try:
                    return client.get(path).status_code == 200
                except httpx.TransportError:
                    return False

            # Both apps answer through the proxy: Django's health and Next.js's.
            wait_until(lambda: answers("/api/health/"), 60, "the API through the proxy")
            wait_until(lambda: answers("/healthz"), 60, "Next.js through the proxy")
        yield Stack(kanri, url, database)
    finally:
        kanri.close()


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        yield client


def seeded_titles() -> list[str]:
    with closing(sqlite3.connect(BACKEND / "db.sqlite3")) as db:
        return [title for (title,) in db.execute("SELECT title FROM items_item ORDER BY id")]


def test_api_returns_the_items_as_json(client: httpx.Client) -> None:
    response = client.get("/api/v1/data")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    titles = [item["title"] for item in body["items"]]
    assert seeded_titles()
    assert titles[: len(seeded_titles())] == seeded_titles()
    assert body["served_by"].startswith("api:")


def test_home_page_is_rendered_by_nextjs_with_data_from_django(
    stack: Stack, client: httpx.Client
) -> None:
    # A row that exists only now: the page can show it only if Next.js asked
    # Django (through the proxy, at KANRI_URL) while rendering this request.
    fresh = f"Added while running {uuid.uuid4().hex[:8]}"
    stack.add_item(fresh)

    response = client.get("/")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "__next" in html or "/_next/static/" in html  # Next.js's markup, not Django's
    for title in [*seeded_titles(), fresh]:
        assert title in html
    assert "Rendered by Next.js instance web:" in html
    assert f'href="{CSS}"' in html


def test_client_page_is_served_by_nextjs(client: httpx.Client) -> None:
    response = client.get("/client")
    assert response.status_code == 200
    assert "Items fetched by the browser" in response.text
    assert "/_next/static/" in response.text


def test_static_css_has_an_etag_and_answers_304(client: httpx.Client) -> None:
    response = client.get(CSS)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert response.content == (BACKEND / "staticfiles" / "items" / "site.css").read_bytes()
    assert response.headers["cache-control"] == "public, max-age=3600"  # cache = "1h"
    etag = response.headers["etag"]

    again = client.get(CSS, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag


def test_static_route_serves_only_collected_files(client: httpx.Client) -> None:
    assert client.get("/static/items/logo.svg").headers["content-type"].startswith("image/svg+xml")
    assert client.get("/static/items/missing.css").status_code == 404


def _config(stack: Stack) -> Path:
    return stack.kanri.output.parent / "kanri.toml"


def _instances(stack: Stack, app: str) -> list[dict[str, Any]]:
    result = kanri_cli(_config(stack), "ls", "--json")
    assert result.returncode == 0, result.stderr
    return [row for row in json.loads(result.stdout) if row["app"] == app]


def test_kill_9_of_a_nextjs_instance_under_load_fails_nothing(stack: Stack) -> None:
    port = int(stack.url.rsplit(":", 1)[1])
    victim = _instances(stack, "web")[0]
    load = BackgroundLoad(port, 10.0, clients=16, path="/").start()
    wait_until(lambda: load.result is None and _proxy_busy(stack), 5, "the load to start")
    os.kill(int(victim["pid"]), signal.SIGKILL)
    result = load.wait(60)
    print(f"kill -9 of a Next.js instance: {result}")
    assert result.ok > 50 and result.failed == 0, result
    wait_until(
        lambda: all(r["state"] == "ready" for r in _instances(stack, "web")), 60, "the restart"
    )


def test_reload_of_django_under_load_fails_nothing(stack: Stack) -> None:
    port = int(stack.url.rsplit(":", 1)[1])
    before = {r["pid"] for r in _instances(stack, "api")}
    load = BackgroundLoad(port, 10.0, clients=16, path="/api/v1/data").start()
    wait_until(lambda: _proxy_busy(stack), 5, "the load to start")
    reload = kanri_cli(_config(stack), "reload", "api")
    assert reload.returncode == 0, reload.stdout + reload.stderr
    result = load.wait(60)
    print(f"kanri reload api (Gunicorn, 2 instances): {result}")
    assert result.ok > 50 and result.failed == 0, result
    after = {r["pid"] for r in _instances(stack, "api")}
    assert len(after) == 2 and not before & after


def _proxy_busy(stack: Stack) -> bool:
    metrics = Client(stack.kanri.output.parent / ".kanri" / "kanri.sock").metrics()
    return int(metrics["proxy"]["connections"]) > 0
