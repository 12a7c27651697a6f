"""A wheel built as pip builds it for a user has the compiled proxy in it.

pip builds kanri in an isolated environment before any dependency is
installed; the compiled proxy must come out of that too, not only out of a
developer's venv where pydantic and the rest are already there.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kanri.native import GROUP_LIBRARY, HEADS_MODULE, HOT_MODULES

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(600)
def test_wheel_has_the_compiled_proxy(tmp_path: Path) -> None:
    # A fresh venv: the build's type check must not find this venv's pydantic & co.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    out = tmp_path / "wheels"
    result = subprocess.run(
        [str(venv / "bin" / "pip"), "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = out.glob("kanri-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    compiled = {
        Path(n).name.split(".")[0]
        for n in names
        if n.startswith("kanri/proxy/") and n.endswith(".so")
    }
    assert compiled == {GROUP_LIBRARY, HEADS_MODULE, *HOT_MODULES}, sorted(compiled)
    assert "kanri/proxy/_heads.pyi" in names
    assert "kanri/proxy/http.py" in names  # the source ships too: tracebacks show its lines
