"""Fixtures: one upstream pair and one proxy (real worker processes) per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.proxy.helpers import RunningProxy, TestUpstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[TestUpstream]:
    server = TestUpstream("a")
    yield server
    server.close()


@pytest.fixture(scope="module")
def upstream_b() -> Iterator[TestUpstream]:
    server = TestUpstream("b")
    yield server
    server.close()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProxy]:
    running = RunningProxy(
        tmp_path_factory.mktemp("state"),
        client_max_body_size="1KiB",
        max_header_size="8KiB",
        read_timeout="1s",
        connect_timeout="1s",
        queue_timeout="1s",
    )
    yield running
    running.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path
