"""Builds kanri. The proxy's per-request modules are compiled to C with mypyc (part
of mypy) when it is available; without it, with KANRI_PURE=1, or when compiling
fails (no C compiler), they stay plain Python: the same proxy, slower.
docs/benchmarks.md has the figures of both."""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# The modules every proxied request runs through (kanri/native.py names them;
# read without importing kanri, whose dependencies may not be installed yet).
# They are strictly typed, so mypyc turns them into C with native attribute
# access and calls between them. settings.py and snapshot.py stay Python: their
# frozen dataclasses are pickled to the workers, which compiled ones do not support.
HOT_MODULES = runpy.run_path(str(Path(__file__).parent / "kanri" / "native.py"))["HOT_MODULES"]
HOT = [f"kanri/proxy/{name}.py" for name in HOT_MODULES]


def _warn(message: str) -> None:
    print(f"kanri: {message}; the proxy stays plain Python", file=sys.stderr)


# The common request and response heads, parsed in one call (see its opening comment).
HEADS = Extension("kanri.proxy._heads", ["kanri/proxy/_heads.c"], extra_compile_args=["-O2"])


def ext_modules() -> list[Any]:
    if os.environ.get("KANRI_PURE"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _warn("mypyc is not installed")
        return [HEADS]
    try:
        # pip builds kanri before it installs the dependencies, so mypyc's type check
        # may not find pydantic & co.: the compiled modules do not use them, and
        # errors in the modules they import for types only are not theirs to report.
        options = ["--strict", "--ignore-missing-imports", "--follow-imports=silent"]
        compiled = list(mypycify([*options, *HOT], group_name="kanri.proxy._native"))
    except (Exception, SystemExit) as exc:
        if os.environ.get("KANRI_REQUIRE_COMPILED"):
            # `make install`: the modules compiled before would stay in place and
            # look current, so a type error must stop the build, not be skipped.
            raise SystemExit(f"kanri: mypyc failed ({exc}); fix the error above") from exc
        _warn(f"mypyc failed ({exc})")
        return [HEADS]
    return [*compiled, HEADS]


class OptionalBuildExt(build_ext):
    """Compiling is an optimisation: a failure leaves no half-built modules behind."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            _warn(f"compiling failed ({exc})")
            for ext in self.extensions:
                for path in (
                    Path(self.get_ext_fullpath(ext.name)),
                    Path(self.get_ext_filename(ext.name)),
                ):
                    path.unlink(missing_ok=True)
            self.extensions = []


setup(ext_modules=ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
