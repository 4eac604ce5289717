"""docs/attack-surface.md: every cell names a blocking and a near-miss fixture of its policy, and
they exist with those verdicts (the fixture runner then proves them)."""

from __future__ import annotations

import re
from pathlib import Path

from aimesh_policies import all_policies

from tests.policy.support import FIXTURES

DOC = Path(__file__).resolve().parents[2] / "docs" / "attack-surface.md"
_FIXTURE = re.compile(r"`([a-z0-9-]+)/([a-z0-9-]+-(?:pass|fail))`")


def _cells() -> list[list[str]]:
    rows = []
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 5 and cells[0] not in ("invariant", "---"):
            rows.append(cells)
    return rows


def test_every_cell_has_a_blocking_and_a_near_miss_fixture_of_its_policy() -> None:
    names = {p.name for p in all_policies()}
    rows = _cells()
    assert len(rows) >= 60, "the attack-surface table lost its rows"
    problems = []
    for invariant, field, policy, blocking, near_miss in rows:
        where = f"{invariant} / {field}"
        if policy not in names:
            problems.append(f"{where}: no policy {policy!r}")
        for cell, verdict in ((blocking, "fail"), (near_miss, "pass")):
            found = _FIXTURE.fullmatch(cell)
            if found is None:
                problems.append(f"{where}: {cell!r} is not a `<policy>/<case>-{verdict}` fixture")
                continue
            directory, case = found.groups()
            if directory != policy or not case.endswith(f"-{verdict}"):
                problems.append(f"{where}: {cell} must be a -{verdict} fixture of {policy}")
            elif not (FIXTURES / directory / f"{case}.yaml").is_file():
                problems.append(f"{where}: {cell} does not exist")
    assert problems == []


def test_each_cell_is_proven_by_its_own_blocking_fixture() -> None:
    # One field, one weakening: a fixture that stood for two cells would let either field's
    # check be removed while the other still made the fixture fail.
    blocking = [row[3] for row in _cells()]
    assert sorted({b for b in blocking if blocking.count(b) > 1}) == []


def test_every_effective_policy_has_cells() -> None:
    covered = {row[2] for row in _cells()}
    effective = {p.name for p in all_policies() if p.concern == "effective"}
    assert effective <= covered, sorted(effective - covered)
