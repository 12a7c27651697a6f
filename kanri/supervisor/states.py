r"""Instance states and the only transitions allowed between them.

Stdlib only, so it can be read (and tested) on its own. The graph::

       STOPPED --start--> STARTING --ready--> READY --reload, scale down--> DRAINING
          ^                  |                  |                               |
          |                  | stop, or not     | stop, restart (asked,         | in-flight done,
          |                  | ready in time    | memory, cron, watch)          | or drain_timeout
          |                  v                  v                               v
          +--- exited --- STOPPING <------------+-------------------------------+

       STARTING, READY --crashed--> BACKOFF --restart delay over--> STARTING
                               \--> ERRORED (crash loop) --errored_retry over--> STARTING
       STOPPING --killed for not getting ready--> BACKOFF or ERRORED
       STARTING, READY, DRAINING --exited, no restart wanted--> STOPPED
       BACKOFF, ERRORED --stop--> STOPPED

Every change goes through ``check_transition()``, which refuses an edge that
is not in the table: a bug in the supervisor shows up as an error at once,
not as an instance in an impossible state.
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    STOPPED = "stopped"  # no process; nothing scheduled
    STARTING = "starting"  # process spawned, not yet ready
    READY = "ready"  # passed its ready check; the proxy may route to it
    DRAINING = "draining"  # still running, no new requests; in-flight ones finish
    STOPPING = "stopping"  # kill signal sent; waiting for the process to exit
    BACKOFF = "backoff"  # exited unexpectedly; waiting to restart
    ERRORED = "errored"  # crash loop: gave up for now, retried after a cool-down

    def __str__(self) -> str:
        return self.value

    @property
    def running(self) -> bool:
        """True while a process exists for this instance."""
        return self in _RUNNING


_RUNNING = frozenset({State.STARTING, State.READY, State.DRAINING, State.STOPPING})

S = State
TRANSITIONS: frozenset[tuple[State, State]] = frozenset(
    {
        (S.STOPPED, S.STARTING),  # STOPPED -> STARTING: start requested
        (S.STARTING, S.READY),  # STARTING -> READY: ready check passed
        (S.STARTING, S.STOPPING),  # STARTING -> STOPPING: stop requested, or not ready in time
        (S.STARTING, S.BACKOFF),  # STARTING -> BACKOFF: exited before ready; will retry
        (S.STARTING, S.ERRORED),  # STARTING -> ERRORED: exited before ready, crash loop
        (S.STARTING, S.STOPPED),  # STARTING -> STOPPED: exited; policy says no restart
        (S.READY, S.DRAINING),  # READY -> DRAINING: reload or scale down
        (S.READY, S.STOPPING),  # READY -> STOPPING: stop, restart, memory or cron restart
        (S.READY, S.BACKOFF),  # READY -> BACKOFF: crashed; will restart
        (S.READY, S.ERRORED),  # READY -> ERRORED: crashed, crash loop
        (S.READY, S.STOPPED),  # READY -> STOPPED: exited; policy says no restart
        (S.DRAINING, S.STOPPING),  # DRAINING -> STOPPING: in-flight done or drain_timeout
        (S.DRAINING, S.STOPPED),  # DRAINING -> STOPPED: exited while draining
        (S.STOPPING, S.STOPPED),  # STOPPING -> STOPPED: process exited
        (S.STOPPING, S.BACKOFF),  # STOPPING -> BACKOFF: killed for not getting ready; will retry
        (S.STOPPING, S.ERRORED),  # STOPPING -> ERRORED: killed for not getting ready, too often
        (S.BACKOFF, S.STARTING),  # BACKOFF -> STARTING: restart delay elapsed
        (S.BACKOFF, S.STOPPED),  # BACKOFF -> STOPPED: stop requested
        (S.ERRORED, S.STARTING),  # ERRORED -> STARTING: cool-down elapsed, or start requested
        (S.ERRORED, S.STOPPED),  # ERRORED -> STOPPED: stop requested
    }
)


class TransitionError(RuntimeError):
    """A change of state that the table does not allow: a bug, never user error."""


def check_transition(current: State, new: State) -> None:
    """Raise TransitionError unless current -> new is an edge of the table."""
    if (current, new) not in TRANSITIONS:
        raise TransitionError(f"no transition {current} -> {new}")
