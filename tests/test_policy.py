"""The state table and the restart policy, as pure logic (no processes, no clock)."""

from __future__ import annotations

import pytest

from kanri.config.model import AppConfig
from kanri.supervisor.policy import RestartPolicy
from kanri.supervisor.states import TRANSITIONS, State, TransitionError, check_transition


def app(**fields: object) -> AppConfig:
    return AppConfig.model_validate({"name": "web", "command": "x", **fields})


def test_impossible_edges_are_refused() -> None:
    check_transition(State.STOPPED, State.STARTING)
    for old, new in [
        (State.STOPPED, State.READY),
        (State.READY, State.STARTING),
        (State.ERRORED, State.READY),
        (State.STOPPING, State.READY),
        (State.DRAINING, State.READY),
    ]:
        with pytest.raises(TransitionError):
            check_transition(old, new)


def test_every_state_can_be_left_and_reached() -> None:
    for state in State:
        assert any(old is state for old, _ in TRANSITIONS), f"{state} is a dead end"
        assert any(new is state for _, new in TRANSITIONS) or state is State.STOPPED


def test_backoff_doubles_up_to_the_cap_then_errors() -> None:
    policy = RestartPolicy(
        app(restart_delay="100ms", max_restart_delay="1s", max_restarts=6, errored_retry="1m")
    )
    decisions = [policy.on_exit(1, ready_for=0.0, failed_start=False) for _ in range(7)]
    assert [d.verdict for d in decisions] == ["restart"] * 6 + ["errored"]
    assert [d.delay for d in decisions[:6]] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert decisions[6].delay == 60.0
    # After the cool-down one more fast crash is enough to be errored again.
    assert policy.on_exit(1, ready_for=0.0, failed_start=False).verdict == "errored"


def test_a_stable_run_resets_the_count() -> None:
    policy = RestartPolicy(app(restart_delay="100ms", min_uptime="5s", max_restarts=2))
    policy.on_exit(1, ready_for=0.0, failed_start=False)
    policy.on_exit(1, ready_for=0.0, failed_start=False)
    after_stable = policy.on_exit(1, ready_for=6.0, failed_start=False)
    assert after_stable.verdict == "restart" and after_stable.delay == 0.1


def test_fixed_backoff_and_restart_modes() -> None:
    fixed = RestartPolicy(app(restart_delay="2s", backoff="fixed"))
    assert [fixed.on_exit(1, 0.0, failed_start=False).delay for _ in range(3)] == [2.0] * 3
    on_failure = RestartPolicy(app(restart="on-failure"))
    assert on_failure.on_exit(0, 10.0, failed_start=False).verdict == "stop"
    assert on_failure.on_exit(1, 10.0, failed_start=False).verdict == "restart"
    # A start that never got ready is a failure even if the process was killed cleanly.
    assert on_failure.on_exit(0, 0.0, failed_start=True).verdict == "restart"
    never = RestartPolicy(app(restart="never"))
    assert never.on_exit(1, 0.0, failed_start=False).verdict == "stop"
