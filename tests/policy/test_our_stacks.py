"""Zero MANDATORY violations on every stack of this project.

Every resource the program registers (under mocks, as `pulumi preview` would) goes through the
pack's normalization and every policy, with the project's own policy config
(`policy-pack/policy-config.json`, the file CI passes as `--policy-pack-config`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aimesh_policies import all_policies, to_objects
from aimesh_policies.config_check import unknown_names
from aimesh_policies.framework import Context, Level, evaluate, evaluate_stack

from tools import offline
from tools.check import not_evaluable_offline

CONFIG_FILE = Path(__file__).resolve().parents[2] / "policy-pack" / "policy-config.json"


def policy_config(path: Path = CONFIG_FILE) -> dict[str, Any]:
    """policy name -> {"level": str | None, "properties": dict}, as the CLI reads the file."""
    data = json.loads(path.read_text())
    out: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, str):
            out[name] = {"level": value, "properties": {}}
        else:
            props = dict(value)
            out[name] = {"level": props.pop("enforcementLevel", None), "properties": props}
    return out


def mandatory_violations(evaluation: offline.Evaluation) -> list[str]:
    config = policy_config()
    objs = [
        obj for r in evaluation.resources for obj in to_objects(r.type, r.inputs, r.urn, r.name)
    ]
    found: list[str] = []
    unjudged = not_evaluable_offline(evaluation)
    for policy in all_policies():
        if policy.name in unjudged:
            continue
        entry = config.get(policy.name, {"level": None, "properties": {}})
        level = entry["level"] or policy.level.value
        if level != Level.MANDATORY.value:
            continue
        ctx = Context.from_config(entry["properties"])
        if policy.is_stack_rule:
            findings = evaluate_stack(policy, objs, ctx)
        else:
            findings = [f for o in objs for f in evaluate(policy, o, ctx)]
        found += [f"{policy.name}: {f.message}" for f in findings]
    return found


def test_stack_has_no_mandatory_violation(
    stack_evaluation: offline.Evaluation, descriptor_set_or_none: Path | None
) -> None:
    kubernetes = [r for r in stack_evaluation.resources if r.type.startswith("kubernetes:")]
    assert kubernetes, "the program registered no Kubernetes resources: nothing was judged"
    violations = mandatory_violations(stack_evaluation)
    if descriptor_set_or_none is None:
        # Without Go the decoding policies cannot verify, and say so (never a silent pass);
        # every other policy must still pass.
        decoding = tuple(f"{p.name}: " for p in all_policies() if p.concern == "decoding")
        cannot = [v for v in violations if v.startswith(decoding)]
        assert cannot, "without the descriptor set the decoding policies must report"
        violations = [v for v in violations if v not in cannot]
    assert not violations, "\n".join(violations)


def test_config_file_names_real_policies_and_properties() -> None:
    config = {name: entry["properties"] for name, entry in policy_config().items()}
    assert unknown_names(config, all_policies()) == []
