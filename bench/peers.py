"""The peers kanri is measured against, installed on demand, and their versions.

nginx (nginx-light), HAProxy, Caddy, wrk and supervisord come from Debian's
packages (apt-get, as root); PM2 from the npm registry into
``bench/.cache/pm2`` (ignored by git). ``python -m bench install`` installs
whatever is missing and prints what is available; scenarios skip a contender
whose peer cannot be had, and say why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

HERE = Path(__file__).parent
CACHE = HERE / ".cache"
PM2_DIR = CACHE / "pm2"
PM2_BIN = PM2_DIR / "node_modules" / ".bin" / "pm2"

# peer name -> (Debian package, the program it provides)
APT = {
    "nginx": ("nginx-light", "nginx"),
    "haproxy": ("haproxy", "haproxy"),
    "caddy": ("caddy", "caddy"),
    "wrk": ("wrk", "wrk"),
    "supervisord": ("supervisor", "supervisord"),
}
PEERS = (*APT, "node", "pm2")


@dataclass(frozen=True)
class Peer:
    name: str
    path: str | None  # the program, or None when it is not available
    why: str = ""  # why it is not available


def _which(program: str) -> str | None:
    for directory in ("/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"):
        candidate = Path(directory) / program
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(program)


def _apt_install(packages: list[str]) -> str:
    """apt-get install packages; '' on success, else the reason."""
    if os.geteuid() != 0:
        return "not installed, and installing it needs root (apt-get)"
    if shutil.which("apt-get") is None:
        return "not installed, and this machine has no apt-get"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Debian starts a freshly installed nginx/haproxy/supervisor service on port 80 and
    # friends; a policy-rc.d that says "no" keeps the install from starting anything.
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        made_policy = True
    try:
        update = subprocess.run(
            ["apt-get", "update", "-q"],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if update.returncode != 0:
            return "apt-get update failed: " + update.stderr.strip()[-300:]
        install = subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if install.returncode != 0:
            return "apt-get install failed: " + (install.stderr or install.stdout).strip()[-300:]
    except subprocess.TimeoutExpired as exc:
        return f"apt-get timed out: {exc}"
    finally:
        if made_policy:
            policy.unlink(missing_ok=True)
    return ""


def _available_from_apt(package: str) -> bool:
    if shutil.which("apt-cache") is None:
        return False
    policy = subprocess.run(
        ["apt-cache", "policy", package], check=False, capture_output=True, text=True, timeout=60
    )
    match = re.search(r"Candidate:\s*(\S+)", policy.stdout)
    return bool(match) and match is not None and match.group(1) != "(none)"


def _npm_install_pm2() -> str:
    npm = _which("npm")
    if npm is None:
        return "not installed: PM2 comes from the npm registry, and this machine has no npm"
    PM2_DIR.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [npm, "install", "--prefix", str(PM2_DIR), "--no-audit", "--no-fund", "pm2"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0 or not PM2_BIN.exists():
        return "npm install pm2 failed: " + (result.stderr or result.stdout).strip()[-300:]
    return ""


def install(names: tuple[str, ...] = PEERS, *, quiet: bool = False) -> dict[str, Peer]:
    """Install the missing peers among names (one apt-get run) and say what is available."""
    missing = [n for n in names if n in APT and _which(APT[n][1]) is None]
    reasons: dict[str, str] = {}
    if missing:
        if not quiet:
            print(
                f"bench: installing {', '.join(APT[n][0] for n in missing)} (apt-get)", flush=True
            )
        why = _apt_install([APT[n][0] for n in missing])
        if why:  # try them one by one, so one missing package does not sink the others
            for name in missing:
                reasons[name] = _apt_install([APT[name][0]]) or ""
    if "pm2" in names and not PM2_BIN.exists() and _which("node") is not None:
        if not quiet:
            print("bench: installing pm2 (npm) into bench/.cache/pm2", flush=True)
        reasons["pm2"] = _npm_install_pm2()
    found.cache_clear()
    result = {}
    for name in names:
        peer = found(name)
        if peer.path is None and reasons.get(name):
            peer = Peer(name, None, reasons[name])
        result[name] = peer
    return result


@cache
def found(name: str) -> Peer:
    """Where peer name is, without installing anything."""
    if name == "pm2":
        if _which("node") is None:
            return Peer(name, None, "needs Node.js, which is not installed")
        if PM2_BIN.exists():
            return Peer(name, str(PM2_BIN))
        return Peer(name, None, "not installed (python -m bench install)")
    if name == "node":
        path = _which("node")
        return Peer(name, path, "" if path else "Node.js is not installed")
    package, program = APT[name]
    path = _which(program)
    if path is not None:
        return Peer(name, path)
    if shutil.which("apt-cache") and not _available_from_apt(package):
        return Peer(name, None, "not available from this machine's registries")
    return Peer(name, None, f"not installed ({package}; python -m bench install)")


def need(name: str) -> str:
    """The path of peer name; raises UnavailableError with the reason when it is missing."""
    peer = found(name)
    if peer.path is None:
        raise UnavailableError(f"{name}: {peer.why}")
    return peer.path


class UnavailableError(Exception):
    """A peer is not installed and cannot be; the scenario skips that contender."""


def _run(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (result.stdout + result.stderr).strip()


def _commit() -> str:
    """' (commit abc1234)' of the checkout being measured, if it is a git checkout."""
    root = str(HERE.parent)
    head = _run(["git", "-C", root, "rev-parse", "--short", "HEAD"])
    if not re.fullmatch(r"[0-9a-f]{7,40}", head):
        return ""
    dirty = _run(["git", "-C", root, "status", "--porcelain", "--", "kanri"])
    return f" (commit {head}{', with local changes in kanri/' if dirty else ''})"


def version(name: str) -> str:
    """The version of a peer (or of kanri, python, uvloop), or why there is none."""
    if name == "kanri":
        from importlib.metadata import version as dist_version

        from kanri.native import proxy_compiled

        build = "proxy compiled" if proxy_compiled() else "proxy in plain Python"
        return f"{dist_version('kanri')}{_commit()}, {build}"
    if name == "python":
        return sys.version.split()[0]
    if name == "uvloop":
        from importlib.metadata import version as dist_version

        return dist_version("uvloop")
    peer = found(name)
    if peer.path is None:
        return peer.why
    if name == "pm2":
        package = PM2_DIR / "node_modules" / "pm2" / "package.json"
        return str(json.loads(package.read_text())["version"])
    text = {
        "nginx": lambda: _run([peer.path or "", "-v"]),
        "haproxy": lambda: _run([peer.path or "", "-v"]).splitlines()[0],
        "caddy": lambda: _run([peer.path or "", "version"]),
        "wrk": lambda: _run([peer.path or "", "-v"]).splitlines()[0],
        "supervisord": lambda: _run([peer.path or "", "--version"]),
        "node": lambda: _run([peer.path or "", "--version"]),
    }[name]()
    match = re.search(r"v?(\d+\.\d+(?:\.\d+)?[\w.+~-]*)", text)
    return match.group(1) if match else text[:60]


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench install", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print availability as JSON")
    args = parser.parse_args(argv)
    peers = install(quiet=args.json)
    if args.json:
        print(json.dumps({name: {"path": p.path, "why": p.why} for name, p in peers.items()}))
    else:
        for name, peer in peers.items():
            print(f"{name:12} {version(name) if peer.path else 'unavailable: ' + peer.why}")
    return 0
