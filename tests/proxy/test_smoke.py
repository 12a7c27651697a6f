from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.proxy.helpers import RunningProxy, TestUpstream, route, snapshot


def test_get_through_proxy(proxy: RunningProxy, upstream: TestUpstream, root: Path) -> None:
    proxy.publish(snapshot([route("/", root, app="app")], {"app": [upstream.upstream()]}))
    with httpx.Client(base_url=proxy.url) as client:
        response = client.get("/echo?x=1")
    assert response.status_code == 200
    seen = json.loads(response.content)
    assert seen["target"] == "/echo?x=1"
