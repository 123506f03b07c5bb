"""Trigger rules decide from upstream tallies alone."""

from __future__ import annotations

import pytest

from zonda.core.states import TriggerRule as R
from zonda.core.trigger_rules import UpstreamTally, Verdict, evaluate

RUN, WAIT, SKIP, UF = Verdict.RUN, Verdict.WAIT, Verdict.SKIP, Verdict.UPSTREAM_FAILED


def tally(total: int, s: int = 0, f: int = 0, uf: int = 0, sk: int = 0) -> UpstreamTally:
    return UpstreamTally(total, success=s, failed=f, upstream_failed=uf, skipped=sk)


@pytest.mark.parametrize(
    ("rule", "t", "expected"),
    [
        (R.ALL_SUCCESS, tally(2, s=1), WAIT),
        (R.ALL_SUCCESS, tally(2, s=2), RUN),
        (R.ALL_SUCCESS, tally(2, f=1), UF),
        (R.ALL_SUCCESS, tally(2, uf=1, s=1), UF),
        (R.ALL_SUCCESS, tally(2, sk=1, s=1), SKIP),
        (R.ALL_SUCCESS, tally(0), RUN),
        (R.ALL_DONE, tally(3, s=1, f=1), WAIT),
        (R.ALL_DONE, tally(3, s=1, f=1, sk=1), RUN),
        (R.ONE_FAILED, tally(3, s=1), WAIT),
        (R.ONE_FAILED, tally(3, f=1), RUN),
        (R.ONE_FAILED, tally(2, s=2), SKIP),
        (R.NONE_FAILED, tally(2, s=1, sk=1), RUN),
        (R.NONE_FAILED, tally(2, s=1), WAIT),
        (R.NONE_FAILED, tally(2, f=1), UF),
        (R.ONE_SUCCESS, tally(3, s=1), RUN),
        (R.ONE_SUCCESS, tally(2, f=1, sk=1), UF),
        (R.ONE_SUCCESS, tally(2, sk=2), SKIP),
        (R.ALL_FAILED, tally(2, f=2), RUN),
        (R.ALL_FAILED, tally(2, f=1, s=1), SKIP),
        (R.NONE_SKIPPED, tally(2, s=1, f=1), RUN),
        (R.NONE_SKIPPED, tally(2, sk=1), SKIP),
        (R.ALWAYS, tally(3), RUN),
    ],
)
def test_rule(rule: R, t: UpstreamTally, expected: Verdict) -> None:
    assert evaluate(rule, t) is expected
