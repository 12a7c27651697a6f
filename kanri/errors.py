"""The one exception tree of kanri.

    KanriError                   anything kanri reports to a user
     +-- ConfigError             kanri.toml is unreadable or invalid (carries every problem)
     +-- SupervisorError         an app could not be started or stopped as asked
     |    +-- NotReadyError      an app did not become ready within ready_timeout
     +-- ControlError            the daemon could not be reached or refused a request
     |    +-- UnknownTargetError no such app or instance
     |    +-- ReloadRefusedError the new config is invalid; nothing was changed
     +-- AlreadyRunningError     a daemon already runs for this project

Only the CLI turns these into exit codes and messages; library code raises them
with a message that says what went wrong and what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass


class KanriError(Exception):
    """Base of every error kanri reports to a user."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a config file: where it is, and what is wrong."""

    file: str
    path: str  # dotted key path, e.g. "apps.web.instances"; "" for the whole file
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


class ConfigError(KanriError):
    """kanri.toml is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        count = len(problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the config; nothing was started:"
        super().__init__("\n".join([head, *(f"  {p}" for p in problems)]))


class SupervisorError(KanriError):
    """An app could not be started or stopped as asked."""


class NotReadyError(SupervisorError):
    """An app did not become ready within its ready_timeout."""


class ControlError(KanriError):
    """The daemon could not be reached, or it refused a request."""


class UnknownTargetError(ControlError):
    """A request named an app or instance that does not exist."""


class AlreadyRunningError(KanriError):
    """A kanri daemon already runs for this project (it holds the project's lock)."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        who = f" (pid {pid})" if pid else ""
        super().__init__(f"kanri is already running for this project{who}")


class ReloadRefusedError(ControlError):
    """A config reload was refused (the file is invalid); the running stack is unchanged."""
