"""Shared fixtures: the offline program evaluation and the upstream reference data."""

from __future__ import annotations

import pytest

from tools import offline, schemas


@pytest.fixture(scope="session")
def upstream_available() -> None:
    """Skip (never pass) a check whose reference data is absent."""
    try:
        schemas.upstream()
    except schemas.UpstreamMissingError as exc:
        pytest.skip(str(exc))


_EVALUATIONS: dict[str, offline.Evaluation] = {}


def evaluated(stack: str) -> offline.Evaluation:
    """The program evaluated for `stack` under mocks, once per test process."""
    if stack not in _EVALUATIONS:
        _EVALUATIONS[stack] = offline.evaluate_stack(stack)
    return _EVALUATIONS[stack]


@pytest.fixture(params=offline.stacks(), ids=lambda s: f"stack={s}")
def stack_evaluation(request: pytest.FixtureRequest) -> offline.Evaluation:
    return evaluated(request.param)
