"""Restart policy: after an instance exits, restart it, leave it, or give up for a while.

Pure logic over numbers, so it is tested without processes or clocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kanri.config.model import AppConfig

Verdict = Literal["restart", "stop", "errored"]


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    delay: float  # seconds to wait before the next start (restart or errored retry)
    reason: str


class RestartPolicy:
    """Counts fast crashes of one instance and decides what follows each exit.

    A crash is "fast" when the instance did not stay ready for ``min_uptime``.
    Each fast crash doubles the delay (exponential backoff from ``restart_delay``
    up to ``max_restart_delay``); a run of ``max_restarts`` fast crashes is a crash
    loop and ends in ERRORED, which is retried after ``errored_retry``. One run
    that stays up for ``min_uptime`` resets the count.
    """

    def __init__(self, app: AppConfig) -> None:
        self.app = app
        self.fast_crashes = 0

    def stable(self) -> None:
        """The instance has been ready for min_uptime: forget earlier crashes."""
        self.fast_crashes = 0

    def on_exit(self, returncode: int | None, ready_for: float, *, failed_start: bool) -> Decision:
        """Decide after an unrequested exit (or a start that never became ready)."""
        app = self.app
        clean = returncode == 0 and not failed_start
        if app.restart == "never":
            return Decision("stop", 0.0, "restart = never")
        if app.restart == "on-failure" and clean:
            return Decision("stop", 0.0, "exited with code 0 and restart = on-failure")
        if ready_for >= app.min_uptime:
            self.fast_crashes = 0
        self.fast_crashes += 1
        if self.fast_crashes > app.max_restarts:
            # After the cool-down one more try; a fast crash then lands here again.
            self.fast_crashes = app.max_restarts
            return Decision(
                "errored",
                app.errored_retry,
                f"{app.max_restarts + 1} fast exits in a row (each up less than min_uptime)",
            )
        return Decision("restart", self.delay(), "restarting")

    def delay(self) -> float:
        app = self.app
        if app.backoff == "fixed" or self.fast_crashes <= 1:
            return app.restart_delay
        grown: float = app.restart_delay * 2 ** (self.fast_crashes - 1)
        return min(grown, app.max_restart_delay)
