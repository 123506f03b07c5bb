"""`zonda up` restarts a crashed component at once, then backs off while it keeps crashing."""

from __future__ import annotations

from zonda.standalone.supervisor import RestartPolicy, restart_delay


def test_restart_delay_backs_off_to_a_minute() -> None:
    assert [restart_delay(n) for n in (1, 2, 3, 4, 5)] == [0.0, 0.5, 1.0, 2.0, 4.0]
    assert restart_delay(20) == 60.0


def test_a_component_that_keeps_crashing_is_restarted_less_and_less_often() -> None:
    restarts = RestartPolicy()
    start = restarts.started
    assert restarts.due(start + 1, 1, "api"), "the first crash restarts at once"
    assert not restarts.due(start + 2, 1, "api"), "a second quick crash waits 0.5 s"
    assert restarts.due(start + 2.5, 1, "api")
    assert not restarts.due(start + 3, 1, "api")
    assert not restarts.due(start + 3.9, 1, "api")
    assert restarts.due(start + 4.0, 1, "api"), "a third waits 1 s"


def test_a_component_that_ran_a_while_is_restarted_at_once_again() -> None:
    restarts = RestartPolicy()
    start = restarts.started
    for t in (1.0, 2.0, 3.5):
        restarts.due(start + t, 1, "scheduler")
    assert restarts.due(start + 500, 1, "scheduler"), "it ran for minutes: a fresh crash"
