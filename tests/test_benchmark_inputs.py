"""What the benchmarks feed the packs is real: schema-valid objects, a secure generated stack the
pack passes, and bad cases the pack catches one by one. (Timings are printed by the benchmarks,
never asserted.)"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from aimesh_policies import CONCERNS

from tools.analyzer import PolicyPackProcess
from tools.check import manifests_target, run

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import stackgen  # type: ignore[import-not-found]  # noqa: E402

PACK = ROOT / "policy-pack"
NOOP = ROOT / "benchmarks" / "noop_pack"
CASES = ROOT / "benchmarks" / "manifests"
BAD = sorted((CASES / "bad").glob("*.yaml"))
BASELINE = sorted((CASES / "baseline").glob("*.yaml"))

needs_pack = pytest.mark.skipif(
    not (PACK / "__main__.py").exists(), reason="policy-pack/__main__.py does not exist yet"
)


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def test_generated_stacks_have_the_requested_size_and_unique_objects() -> None:
    for size in (1, 50, stackgen.UNIT_SIZE * 3 + 5):
        objects = stackgen.generate(size)
        assert len(objects) == size
        keys = [_key(o) for o in objects]
        assert len(set(keys)) == size, [k for k, n in Counter(keys).items() if n > 1]


def test_generated_objects_cover_the_kinds_the_policies_inspect() -> None:
    kinds = {o["kind"] for o in stackgen.generate(200)}
    assert {
        "Namespace",
        "PeerAuthentication",
        "AuthorizationPolicy",
        "RequestAuthentication",
        "DestinationRule",
        "ServiceEntry",
        "Sidecar",
        "Gateway",
        "InferenceService",
        "Deployment",
        "Service",
        "NetworkPolicy",
        "EnvoyFilter",
        "Telemetry",
        "Certificate",
        "RoleBinding",
    } <= kinds


@pytest.mark.usefixtures("upstream_available")
def test_benchmark_objects_match_the_upstream_schemas() -> None:
    from tools.schemas import validate

    objects = stackgen.mesh_baseline() + stackgen.model_unit(0)
    objects += [d for path in [*BASELINE, *BAD] for d in _docs(path)]
    problems = {"/".join(_key(o)): p for o in objects if (p := validate(o))}
    assert problems == {}


def test_every_bad_case_is_one_object_named_by_category() -> None:
    categories = {p.name.split("--")[0] for p in BAD}
    # One bad case per concern module of the pack at least; `visibility` judges Helm v3
    # Release resources, which no manifest can be (tests/policy/test_release_visibility.py).
    assert categories == set(CONCERNS) - {"visibility"}
    for path in BAD:
        assert len(_docs(path)) == 1, path.name


@needs_pack
@pytest.mark.usefixtures("descriptor_set")  # its stacks hold EnvoyFilters the pack decodes
def test_the_pack_passes_the_secure_stacks_and_catches_every_bad_case(tmp_path: Path) -> None:
    generated = tmp_path / "generated"
    stackgen.write(
        stackgen.generate(stackgen.UNIT_SIZE * 4 + len(stackgen.mesh_baseline())), generated
    )
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    for path in BASELINE:
        shutil.copy(path, baseline / path.name)
    cases = tmp_path / "cases"
    shutil.copytree(baseline, cases)
    for path in BAD:
        shutil.copy(path, cases / path.name)

    for secure in (generated, baseline):
        report = run(manifests_target(secure), pack_dir=PACK)
        assert report.result.mandatory == [], [
            (d.policy_name, d.message) for d in report.result.mandatory
        ]

    target = manifests_target(cases)
    report = run(target, pack_dir=PACK)
    flagged = {
        target.sources[urn].split("#")[0]
        for urn, diagnostics in report.result.diagnostics.items()
        if urn in target.sources and any(d.mandatory for d in diagnostics)
    }
    missed = [p.name for p in BAD if p.name not in flagged]
    assert missed == []
    assert not flagged & {p.name for p in BASELINE}


def test_the_noop_floor_can_match_the_policy_count() -> None:
    env = {"NOOP_RESOURCE_POLICIES": "5", "NOOP_STACK_POLICIES": "3"}
    with PolicyPackProcess(NOOP, extra_env=env) as pack:
        info = pack.client.get_analyzer_info()
    types = Counter(p.policy_type for p in info.policies)
    assert types == {"resource": 5, "stack": 3}
