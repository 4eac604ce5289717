"""Catch rate of the policy pack on a held-out set of weakenings of a real stack.

    .venv/bin/python benchmarks/weakenings.py [--stack dev] [--cases benchmarks/weakenings]
                                              [--policy-pack-config policy-pack/policy-config.json]

Each case (`benchmarks/weakenings/<class>--<case>.yaml`) is a small edit an attacker (or a
careless change) could make to a stack this program deploys: add an object, delete one, set or
merge fields of one. The cases were written BEFORE the pack's effective-access policies (issue 15)
and are kept out of the policy fixtures on purpose: they measure what the pack stops that nobody
wrote a fixture for.

The stack is evaluated offline (tools.check.stack_target, the program under Pulumi mocks); each
case's edits are applied to the resources the engine would send, and the result goes through the
pack over the analyzer protocol exactly as `pulumi preview --policy-pack` sends it (one pack
process for all cases, configured with the project's policy config). A case counts as caught when
the preview fails: some MANDATORY violation that the unedited stack does not have.

Case format (YAML):

    class: authorization | protection | rbac | audit
    why: one sentence on what the edit opens
    ops:
      - add: {<a Kubernetes manifest>}
      - delete: <Kind> <namespace>/<name>          (cluster-scoped: <Kind> <name>)
      - set: <target>                              (target as for delete, or helm:<chart>)
        path: spec.rules[0].from[0].source.principals
        value: [...]                               (null removes; index = length appends)
      - merge: <target>
        with: {<JSON merge patch: maps merge, lists replace, null deletes>}

Benchmarks print figures; nothing here asserts them.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import re
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.analyzer import (  # noqa: E402
    Diagnostic,
    PolicyPackProcess,
    ProviderResource,
    Resource,
    load_policy_config,
    preview,
    reconcile_policy_config,
    urn,
)
from tools.check import K8S_PROVIDER_TYPE, STACK_TYPE, k8s_type, stack_target  # noqa: E402

CASES = ROOT / "benchmarks" / "weakenings"
PACK = ROOT / "policy-pack"
CONFIG = ROOT / "policy-pack" / "policy-config.json"
CLASSES = ("authorization", "protection", "rbac", "audit")


class CaseError(ValueError):
    """A case that cannot be applied to the stack (its target is missing, a bad op)."""


def _identity(props: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = props.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    return str(props.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name"))


def _chart(props: Mapping[str, Any]) -> str:
    chart = str(props.get("chart") or "").rstrip("/").rsplit("/", 1)[-1]
    return chart.split(":", 1)[0]


def _matches(resource: Resource, target: str) -> bool:
    props = resource.properties
    if target.startswith("helm:"):
        return "helm.sh" in resource.type and _chart(props) == target[len("helm:") :]
    kind, _, where = target.partition(" ")
    namespace, _, name = where.rpartition("/")
    return _identity(props) == (kind, namespace, name)


def _find(resources: list[Resource], target: str) -> int:
    hits = [i for i, r in enumerate(resources) if _matches(r, target)]
    if len(hits) != 1:
        raise CaseError(f"target {target!r} matches {len(hits)} resources, not 1")
    return hits[0]


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _steps(path: str) -> list[str | int]:
    return [name if name else int(index) for name, index in _STEP.findall(path)]


def _set(document: Any, path: str, value: Any) -> None:
    steps = _steps(path)
    holder = document
    for step, following in itertools.pairwise(steps):
        if isinstance(step, int):
            holder = holder[step]
        else:
            if not isinstance(holder.get(step), dict | list):
                holder[step] = [] if isinstance(following, int) else {}
            holder = holder[step]
    last = steps[-1]
    if value is None:
        del holder[last]  # `value: null` removes the field (or list element)
    elif isinstance(last, int) and last == len(holder):
        holder.append(value)  # one past the end appends
    else:
        holder[last] = value


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def apply(case: Mapping[str, Any], resources: Sequence[Resource], stack: str) -> list[Resource]:
    """The stack's resources with the case's ops applied (the input is left untouched)."""
    out = list(resources)
    provider_urn = urn(stack, "aimesh", K8S_PROVIDER_TYPE, "default")
    provider = ProviderResource(type=K8S_PROVIDER_TYPE, urn=provider_urn, name="default")
    root = next(r.urn for r in resources if r.type == STACK_TYPE)
    for n, op in enumerate(case.get("ops") or []):
        if "add" in op:
            manifest = op["add"]
            kind, namespace, name = _identity(manifest)
            type_ = k8s_type(str(manifest.get("apiVersion")), kind)
            res_name = f"weakening-{n}-{namespace}-{name}".strip("-")
            out.append(
                Resource(
                    type=type_,
                    urn=urn(stack, "aimesh", type_, res_name),
                    name=res_name,
                    properties=copy.deepcopy(manifest),
                    parent=root,
                    provider=provider,
                )
            )
        elif "delete" in op:
            del out[_find(out, str(op["delete"]))]
        elif "set" in op:
            i = _find(out, str(op["set"]))
            props = copy.deepcopy(dict(out[i].properties))
            try:
                _set(props, str(op["path"]), copy.deepcopy(op.get("value")))
            except (IndexError, KeyError, TypeError) as exc:
                raise CaseError(f"set {op['set']} {op['path']}: {exc}") from exc
            out[i] = replace(out[i], properties=props)
        elif "merge" in op:
            i = _find(out, str(op["merge"]))
            out[i] = replace(out[i], properties=merge_patch(out[i].properties, op.get("with")))
        else:
            raise CaseError(f"op {n}: expected add, delete, set or merge: {op}")
    return out


def _key(d: Diagnostic) -> tuple[str, str, str]:
    return (d.policy_name, d.urn, d.message)


def run(stack: str, cases_dir: Path, config: Path | None) -> int:
    target = stack_target(stack)
    cases = sorted(cases_dir.glob("*.yaml"))
    loaded = [(path, yaml.safe_load(path.read_text())) for path in cases]
    policy_config = load_policy_config(config) if config else None
    caught_by_class: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    with PolicyPackProcess(PACK, stack=stack, config=target.config) as pack:
        client = pack.client
        client.configure(reconcile_policy_config(client.get_analyzer_info(), policy_config))
        base = preview(client, target.resources, stack_properties=target.stack_properties)
        baseline = {_key(d) for d in base.mandatory}
        print(
            f"stack {stack}: {len(target.resources)} resources, {len(baseline)} mandatory "
            f"violation(s) before any edit; {len(loaded)} cases from {cases_dir}"
        )
        print(f"{'case':<58} {'caught':<7} policies")
        for path, case in loaded:
            klass = str(case.get("class"))
            if klass not in CLASSES:
                raise CaseError(f"{path.name}: class must be one of {CLASSES}")
            edited = apply(case, target.resources, stack)
            result = preview(client, edited, stack_properties=target.stack_properties)
            new = [d for d in result.mandatory if _key(d) not in baseline]
            policies = sorted({d.policy_name for d in new})
            caught_by_class[klass][0] += 1
            caught_by_class[klass][1] += bool(new)
            print(f"{path.stem:<58} {'yes' if new else 'NO':<7} {', '.join(policies)}")
    print(f"\n{'class':<14} {'cases':>5} {'caught':>7}")
    total = [0, 0]
    for klass in CLASSES:
        cases_n, caught = caught_by_class.get(klass, [0, 0])
        total[0] += cases_n
        total[1] += caught
        print(f"{klass:<14} {cases_n:>5} {caught:>7}")
    rate = 100 * total[1] / total[0] if total[0] else 0.0
    print(f"{'total':<14} {total[0]:>5} {total[1]:>7}  ({rate:.0f}%)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--cases", type=Path, default=CASES)
    parser.add_argument("--policy-pack-config", type=Path, default=CONFIG)
    args = parser.parse_args(argv)
    return run(args.stack, args.cases, args.policy_pack_config)


if __name__ == "__main__":
    sys.exit(main())
