"""The daemon as a process: in the foreground for `kanri up`, in the background for `kanri up -d`.

`kanri up -d` starts ``python -m kanri.background`` and writes the Config it has
just validated to the new process's stdin (``send_config``), so the daemon runs
exactly what was checked. A daemon lives for weeks, so this process leaves out
what it would only carry: the CLI (click, the control client), pydantic's
validators (built only if it reloads the config, see kanri.config.model) and,
while it imports the modules it starts on, the OpenSSL bindings. Together that
is about 10 MiB of its RSS (benchmark scenario 7).
"""

from __future__ import annotations

import contextlib
import pickle
import sys
from collections.abc import Iterator
from importlib.util import find_spec
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from kanri.config.model import Config
    from kanri.terminal import Printer

EXIT_FAILED = 1
# hashlib's own implementations; without them (and without _hashlib) it logs an error per hash.
_BUILTIN_HASHES = ("_md5", "_sha1", "_sha256", "_sha512", "_sha3", "_blake2")


def run_daemon(config: Config, printer: Printer | None) -> int:
    """Run the daemon until it stops; return its exit code.

    A KanriError (also one raised through a task group) is printed as ``kanri: ...``.
    """
    import asyncio

    from kanri.daemon import Daemon
    from kanri.errors import AlreadyRunningError, KanriError

    try:
        return asyncio.run(Daemon(config, printer=printer).run())
    except AlreadyRunningError as exc:
        return _failed(f"{exc}; see it with `kanri ls`, stop it with `kanri down`")
    except KanriError as exc:
        return _failed(str(exc))
    except BaseExceptionGroup as group:  # raised through a task group: show ours, plainly
        matched, _ = group.split(KanriError)
        if matched is None:
            raise
        return _failed("\n".join(str(e) for e in _leaves(matched)))


def _failed(message: str) -> int:
    print(f"kanri: {message}", file=sys.stderr, flush=True)
    return EXIT_FAILED


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def send_config(stream: IO[bytes], config: Config) -> None:
    """Hand a validated Config to the daemon being started (the CLI's side)."""
    pickle.dump(config, stream, protocol=pickle.HIGHEST_PROTOCOL)


def receive_config(stream: IO[bytes]) -> Config:
    """The Config that `kanri up -d` validated; unpickling does not validate again."""
    from kanri.config.model import Config

    config = pickle.load(stream)
    if not isinstance(config, Config):
        raise TypeError(f"expected a kanri Config on stdin, got {type(config).__name__}")
    return config


@contextlib.contextmanager
def _without_openssl() -> Iterator[None]:
    """Import inside this block without Python's OpenSSL bindings (about 4 MiB of RSS).

    The daemon speaks no TLS and hashes nothing: asyncio imports ``ssl`` only if it
    can (and then has no TLS support), hashlib and hmac fall back to Python's own
    hashes without ``_hashlib``. Only imports made inside the block go without: a
    module imported later (anyio, for apps that watch files, needs ssl) gets them.
    """
    if any(find_spec(name) is None for name in _BUILTIN_HASHES):
        yield
        return
    held = [name for name in ("ssl", "_hashlib") if name not in sys.modules]
    for name in held:
        sys.modules[name] = None  # type: ignore[assignment]  # None: "cannot be imported"
    try:
        yield
    finally:
        for name in held:
            sys.modules.pop(name, None)


def main() -> None:
    with _without_openssl():
        import kanri.daemon  # noqa: F401  (every module the daemon starts on)

        config = receive_config(sys.stdin.buffer)
    sys.exit(run_daemon(config, None))


if __name__ == "__main__":
    main()
