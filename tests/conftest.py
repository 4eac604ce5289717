"""Shared fixtures: the offline program evaluation, the upstream schema cache and the
Envoy/Istio API descriptor set."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from aimesh_policies import descriptors

from tools import offline, schemas, upstream

GO_ABSENT = (
    "Go is not installed, so the Envoy/Istio API descriptor set cannot be built "
    "(`make descriptors`): EnvoyFilter patches and mesh config cannot be decoded here"
)


@pytest.fixture(scope="session")
def upstream_available() -> None:
    """A check that needs the upstream schemas FAILS without them, naming the command that
    fetches them; it skips only when the developer opted out (AIMESH_ALLOW_MISSING_SCHEMAS=1)."""
    try:
        schemas.require_upstream()
        return
    except schemas.UpstreamMissingError as exc:
        missing = str(exc)
    if upstream.missing_allowed():
        pytest.skip(f"{upstream.ALLOW_MISSING_ENV}=1: {missing}")
    pytest.fail(missing, pytrace=False)


def _schema_status() -> tuple[bool, str]:
    problems = upstream.cache_problems()
    if not problems:
        return True, f"{len(upstream.pinned())} pinned files in {upstream.CACHE}, sha256 verified"
    return False, upstream.missing_message(problems)


def pytest_report_header(config: pytest.Config) -> str:
    complete, status = _schema_status()
    return f"upstream schemas: {status}" if complete else f"upstream schemas: INCOMPLETE: {status}"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say loudly, at the end, when the strict schema checks did not run."""
    complete, status = _schema_status()
    if complete:
        return
    if upstream.missing_allowed():
        terminalreporter.write_sep(
            "!",
            f"schema checks SKIPPED ({upstream.ALLOW_MISSING_ENV}=1): run "
            f"`{upstream.FILL_COMMAND}` to run them",
            yellow=True,
            bold=True,
        )
    else:
        terminalreporter.write_sep("!", "schema checks FAILED: no upstream schemas", red=True)
    terminalreporter.write_line(status)


_EVALUATIONS: dict[str, offline.Evaluation] = {}


def evaluated(stack: str) -> offline.Evaluation:
    """The program evaluated for `stack` under mocks, once per test process."""
    if stack not in _EVALUATIONS:
        _EVALUATIONS[stack] = offline.evaluate_stack(stack)
    return _EVALUATIONS[stack]


@pytest.fixture(params=offline.stacks(), ids=lambda s: f"stack={s}")
def stack_evaluation(request: pytest.FixtureRequest) -> offline.Evaluation:
    return evaluated(request.param)


@pytest.fixture(scope="session")
def descriptor_set_or_none() -> Path | None:
    """The descriptor set, built once if Go is here (`make test` builds it first); None only
    without Go, or when $AIMESH_ENVOY_DESCRIPTORS names a file that is not there. A failing
    build is an error, never a skip."""
    found = descriptors.locate()
    if found is None and descriptors.go_available() and not os.environ.get(descriptors.ENV_SET):
        found = descriptors.build(quiet=True)
    return found


@pytest.fixture(scope="session", autouse=True)
def _descriptor_set_first(descriptor_set_or_none: Path | None) -> None:
    """Build the set (where Go is) before any test runs the pack: tests that judge a whole
    stack see EnvoyFilters and mesh config, which the pack cannot verify without it."""


@pytest.fixture(scope="session")
def descriptor_set(descriptor_set_or_none: Path | None) -> Path:
    """Skip (never pass) a check that decodes Envoy configuration where the set cannot be had."""
    if descriptor_set_or_none is None:
        explicit = os.environ.get(descriptors.ENV_SET)
        pytest.skip(f"{descriptors.ENV_SET}={explicit} names no file" if explicit else GO_ABSENT)
    return descriptor_set_or_none
