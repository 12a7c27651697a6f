"""Reading a PM2 ecosystem file into plain data: .js/.cjs/.mjs with node, .json, .yaml.

A JavaScript ecosystem file is a program, so it is run the way PM2 runs it: by
node, which a PM2 user has. The file may print to stdout itself, so the data
comes back after a marker line instead of as the whole of stdout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from kanri.importers.errors import SourceError
from kanri.importers.yaml_subset import load_yaml

NODE_TIMEOUT = 15.0
_MARKER = "\n--kanri-import-json--\n"
# require() as PM2 does; an ES module that require() refuses is loaded with import() instead.
_EVALUATE = """
const file = require("path").resolve(process.argv[1]);
const emit = (data) => {
  const seen = new WeakSet();
  const json = JSON.stringify(data === undefined ? null : data, (key, value) => {
    if (typeof value === "object" && value !== null) {
      if (seen.has(value)) return undefined;
      seen.add(value);
    }
    return value;
  });
  require("fs").writeSync(1, MARKER + json + "\\n");
  process.exit(0);
};
const fail = (err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(3);
};
let loaded;
try {
  loaded = require(file);
} catch (err) {
  if (!err || err.code !== "ERR_REQUIRE_ESM") fail(err);
  loaded = import(require("url").pathToFileURL(file).href);
}
Promise.resolve(loaded).then((m) => {
  const isModule = m && (m.__esModule || m[Symbol.toStringTag] === "Module") && "default" in m;
  emit(isModule ? m.default : m);
}, fail);
"""

JS_SUFFIXES = (".js", ".cjs", ".mjs")
YAML_SUFFIXES = (".yaml", ".yml")


def read_ecosystem(path: Path) -> Any:
    """The ecosystem file's data as JSON-like Python values; SourceError when it cannot be read."""
    shown = str(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise SourceError(
            shown, f"{what}; give the PM2 ecosystem file (ecosystem.config.js, .json or .yaml)"
        )
    suffix = path.suffix.lower()
    if suffix in JS_SUFFIXES:
        return _evaluate_js(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(shown, f"cannot be read: {exc}") from exc
    if suffix in YAML_SUFFIXES:
        return load_yaml(text, shown)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        hint = "" if suffix == ".json" else " (kanri reads .js, .cjs, .mjs, .json, .yaml and .yml)"
        raise SourceError(
            shown, f"JSON syntax error at column {exc.colno}: {exc.msg}{hint}", exc.lineno
        ) from exc


def _evaluate_js(path: Path) -> Any:
    shown = str(path)
    node = shutil.which("node")
    if node is None:
        raise SourceError(
            shown,
            "`node` was not found on PATH; it is needed to evaluate a JavaScript ecosystem file."
            " Install Node.js, or on a machine that has it run"
            " `node -p 'JSON.stringify(require(\"./ecosystem.config.js\"))' > ecosystem.json`"
            " and import the .json file",
        )
    script = _EVALUATE.replace("MARKER", json.dumps(_MARKER))
    try:
        done = subprocess.run(
            [node, "-e", script, str(path.resolve())],
            cwd=path.resolve().parent,
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SourceError(
            shown,
            f"node did not finish evaluating the file within {NODE_TIMEOUT:g}s; an ecosystem file"
            " should only export its configuration",
        ) from exc
    _, marker, data = done.stdout.rpartition(_MARKER)
    if done.returncode != 0 or not marker:
        raise SourceError(shown, "node could not evaluate the file:\n" + _node_error(done.stderr))
    return json.loads(data)


def _node_error(stderr: str) -> str:
    """Node's report: the message and the first stack frame outside node's own code."""
    keep: list[str] = []
    frame_kept = False
    for line in stderr.rstrip().splitlines():
        if line.startswith("Node.js v"):
            continue
        if line.lstrip().startswith("at "):
            if frame_kept or "node:" in line or "[eval]" in line:
                continue
            frame_kept = True
        keep.append(f"  {line}" if line.strip() else "")
    return "\n".join(keep).rstrip() or "  (node printed nothing; exit code was not 0)"
