"""The proxy's hot modules are compiled, and compiled from the current source.

setup.py compiles them with mypyc; a stale build would run old code in the
tests and the benchmarks, so an edited module fails here until it is rebuilt
(``make install``). With KANRI_PURE=1 the build keeps them Python, and so does
this check.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from importlib.machinery import ExtensionFileLoader
from pathlib import Path

import pytest

from kanri.native import (
    GROUP_LIBRARY,
    HEADS_MODULE,
    HOT_MODULES,
    PROXY_DIR,
    compiled_file,
    proxy_compiled,
)

ROOT = Path(__file__).resolve().parents[2]
PURE = bool(os.environ.get("KANRI_PURE"))


@pytest.mark.skipif(PURE, reason="KANRI_PURE=1: the proxy is meant to be plain Python")
@pytest.mark.parametrize("name", HOT_MODULES)
def test_hot_module_is_compiled_and_fresh(name: str) -> None:
    built = compiled_file(name)
    assert built is not None, f"kanri/proxy/{name}.py is not compiled: run `make install`"
    # The code is in the group library; a module's shim is rebuilt only when it changes.
    code = compiled_file(GROUP_LIBRARY)
    assert code is not None, "the compiled proxy's shared library is missing: run `make install`"
    source = PROXY_DIR / f"{name}.py"
    assert code.stat().st_mtime >= source.stat().st_mtime, (
        f"the compiled proxy is older than {source.name}: run `make install` to rebuild it"
    )
    module = importlib.import_module(f"kanri.proxy.{name}")
    # (mypyc names the file of a module first imported by another compiled one oddly)
    assert module.__spec__ is not None
    assert isinstance(module.__spec__.loader, ExtensionFileLoader)


@pytest.mark.skipif(PURE, reason="KANRI_PURE=1: the proxy is meant to be plain Python")
def test_head_parser_is_compiled_and_fresh() -> None:
    built = compiled_file(HEADS_MODULE)
    assert built is not None, "kanri/proxy/_heads.c is not compiled: run `make install`"
    source = PROXY_DIR / f"{HEADS_MODULE}.c"
    assert built.stat().st_mtime >= source.stat().st_mtime, (
        "the compiled head parser is older than _heads.c: run `make install` to rebuild it"
    )
    from kanri.proxy import http, upstream

    assert http.parse_request is not None
    assert upstream.parse_response is not None


@pytest.mark.skipif(PURE, reason="KANRI_PURE=1: the proxy is meant to be plain Python")
def test_version_says_the_proxy_is_compiled() -> None:
    assert proxy_compiled()
    out = subprocess.run(
        [sys.executable, "-m", "kanri", "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert "(proxy: compiled)" in out
