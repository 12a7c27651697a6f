"""Process supervision: states, spawning, restart policy, readiness, logs."""

from kanri.supervisor.instance import Instance, Transition
from kanri.supervisor.states import State
from kanri.supervisor.supervisor import Supervisor
from kanri.supervisor.watchdog import Watchdog

__all__ = ["Instance", "State", "Supervisor", "Transition", "Watchdog"]
