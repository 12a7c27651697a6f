"""Whether the proxy's per-request modules are compiled (setup.py builds them with mypyc).

Checked by file, without importing the proxy, so the CLI can say it cheaply.
"""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

PROXY_DIR = Path(__file__).parent / "proxy"

# The modules every proxied request runs through; setup.py compiles these.
HOT_MODULES = ("balance", "errors", "exchange", "http", "routing", "state", "static", "upstream")


# The shared library that holds the compiled code of all of them; each module's
# own extension file is a small shim that loads its part from here.
GROUP_LIBRARY = "_native__mypyc"

# The C module that parses the common request and response heads in one call
# (kanri/proxy/_heads.c); without it every head goes through llhttp.
HEADS_MODULE = "_heads"


def compiled_file(module: str) -> Path | None:
    """The extension file Python loads for ``kanri.proxy.<module>``, if there is one."""
    for suffix in EXTENSION_SUFFIXES:
        path = PROXY_DIR / f"{module}{suffix}"
        if path.exists():
            return path
    return None


def proxy_compiled() -> bool:
    return all(compiled_file(name) is not None for name in (*HOT_MODULES, HEADS_MODULE))
