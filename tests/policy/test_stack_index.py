"""The namespace-indexed stack rules give the same verdicts as the brute-force pairing.

`istio-requestauthentication-require-principal-policy` and
`kserve-inferenceservice-require-principal-allow` pair every RequestAuthentication /
InferenceService with the AuthorizationPolicies that can reach it. They index the policies by
namespace (plus the root namespace, whose policies reach every namespace); the references below
compare every object with EVERY policy, as the rules did before. Random stacks of a few hundred
objects, deliberately crowded into few namespaces with overlapping labels, must give identical
findings, in the same order.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from aimesh_policies import authn, authz
from aimesh_policies.accessors import maps
from aimesh_policies.framework import Context, Finding
from aimesh_policies.k8s_object import K8sObject
from aimesh_policies.meshlib import (
    AUTHORIZATION_POLICY,
    INFERENCE_SERVICE,
    REQUEST_AUTHENTICATION,
    action,
    applies_to_pods,
    isvc_components,
    isvc_pod_labels,
    namespace_of,
    of_kind,
    rules,
)
from aimesh_policies.objects import object_from_manifest
from aimesh_policies.pods import target_refs

ROOT = "istio-system"
# Enough namespaces that some hold a covering policy and others do not.
NAMESPACES = (*(f"ns-{k}" for k in range(40)), "istio-ingress", None)
LABELS = ({"app": "a"}, {"app": "b"}, {"app": "a", "tier": "x"}, {"tier": "x"})


# --- the brute-force references (every object against every policy) -----------------------------


def reference_token_optional(objs: Sequence[K8sObject], ctx: Context) -> Iterable[Finding]:
    policies = of_kind(objs, AUTHORIZATION_POLICY)
    anonymous = authz.anonymous_paths(ctx)
    for ra in of_kind(objs, REQUEST_AUTHENTICATION):
        if not maps(ra.spec.get("jwtRules")):
            continue
        deny = any(
            action(p) == "DENY"
            and authn._covers(p, ra, ctx)
            and any(authn._denies_anonymous(r, anonymous) for _, r in rules(p))
            for p in policies
        )
        allows = [p for p in policies if action(p) == "ALLOW" and authn._overlaps(p, ra, ctx)]
        allow_rules = [r for p in allows for _, r in rules(p)]
        required = (
            any(authn._covers(p, ra, ctx) for p in allows)
            and bool(allow_rules)
            and all(
                authz.requires_request_principal(r) or authz.only_anonymous_paths(r, anonymous)
                for r in allow_rules
            )
        )
        if not (deny or required):
            yield Finding(ra.ref, ra.urn)


def reference_isvc_uncovered(objs: Sequence[K8sObject], ctx: Context) -> Iterable[Finding]:
    allows = [
        p
        for p in of_kind(objs, AUTHORIZATION_POLICY)
        if action(p) == "ALLOW" and any(authz.names_principals(r) for _, r in rules(p))
    ]
    for isvc in of_kind(objs, INFERENCE_SERVICE):
        namespace = namespace_of(isvc)
        for component in isvc_components(isvc):
            labels = isvc_pod_labels(isvc, component)
            covered = any(
                applies_to_pods(p, ctx, namespace, labels)
                or any(
                    name.startswith(isvc.name)
                    for kind, name in target_refs(p)
                    if kind == "Service" and namespace_of(p) == namespace
                )
                for p in allows
            )
            if not covered:
                yield Finding(f"{isvc.ref} {component}", isvc.urn)


# --- random stacks -------------------------------------------------------------------------------


def _metadata(rng: random.Random, name: str, root: float) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    # A mesh-wide ALLOW naming principals covers every InferenceService: keep the root rare.
    namespace = ROOT if rng.random() < root else rng.choice(NAMESPACES)
    if namespace is not None:
        meta["namespace"] = namespace
    if rng.random() < 0.3:
        meta["labels"] = dict(rng.choice(LABELS))
    return meta


def _targeting(rng: random.Random) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.45:
        return {}  # namespace-wide (mesh-wide in istio-system)
    if roll < 0.85:
        return {"selector": {"matchLabels": dict(rng.choice(LABELS))}}
    name = rng.choice(("gw", "svc-a", "isvc-1-predictor", "isvc-2"))
    return {"targetRefs": [{"kind": rng.choice(("Gateway", "Service")), "name": name}]}


def _rule(rng: random.Random) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    source = rng.choice(
        (
            None,
            {"principals": ["cluster.local/ns/a/sa/b"]},
            {"principals": ["*"]},
            {"requestPrincipals": ["*"]},
            {"notRequestPrincipals": ["*"]},
            {"namespaces": ["ns-1"]},
        )
    )
    if source is not None:
        rule["from"] = [{"source": source}]
    if rng.random() < 0.3:
        operation = rng.choice(
            (
                {"paths": ["/.well-known/acme-challenge/*"]},
                {"paths": ["/v1/*"]},
                {"hosts": ["m.example.com"]},
                {"notPaths": ["/.well-known/acme-challenge/*"]},
            )
        )
        rule["to"] = [{"operation": operation}]
    if rng.random() < 0.1:
        rule["when"] = [{"key": "request.auth.claims[iss]", "values": ["x"]}]
    return rule


def _random_stack(seed: int, size: int, root: float) -> list[K8sObject]:
    rng = random.Random(seed)  # noqa: S311  (reproducible test data, not secrets)
    manifests: list[dict[str, Any]] = []
    for i in range(size):
        roll = rng.random()
        if roll < 0.55:
            spec = _targeting(rng)
            act = rng.choice((None, "ALLOW", "ALLOW", "DENY", "CUSTOM"))
            if act is not None:
                spec["action"] = act
            if rng.random() < 0.85:
                spec["rules"] = [_rule(rng) for _ in range(rng.randint(0, 3))]
            manifests.append(
                {
                    "apiVersion": "security.istio.io/v1",
                    "kind": "AuthorizationPolicy",
                    "metadata": _metadata(rng, f"ap-{i}", root),
                    "spec": spec,
                }
            )
        elif roll < 0.75:
            spec = _targeting(rng)
            if rng.random() < 0.85:
                spec["jwtRules"] = [{"issuer": "https://issuer", "jwksUri": "https://keys"}]
            manifests.append(
                {
                    "apiVersion": "security.istio.io/v1beta1",
                    "kind": "RequestAuthentication",
                    "metadata": _metadata(rng, f"ra-{i}", root),
                    "spec": spec,
                }
            )
        else:
            spec = {"predictor": {"model": {"modelFormat": {"name": "sklearn"}}}}
            if rng.random() < 0.3:
                spec["transformer"] = {"labels": dict(rng.choice(LABELS)), "containers": []}
            manifests.append(
                {
                    "apiVersion": "serving.kserve.io/v1beta1",
                    "kind": "InferenceService",
                    "metadata": _metadata(rng, rng.choice(("isvc-1", "isvc-2", f"isvc-{i}")), root),
                    "spec": spec,
                }
            )
    objs: list[K8sObject] = []
    for i, manifest in enumerate(manifests):
        objs.extend(object_from_manifest(manifest, urn=f"urn:test::{i}"))
    return objs


def _verdicts(objs: list[K8sObject], ctx: Context) -> tuple[list[str], list[str]]:
    """The findings of both rules (as `urn|message head`), after asserting they equal the
    reference's."""
    indexed_ra = [(f.urn, f.message.split(":", 1)[0]) for f in authn._token_optional(objs, ctx)]
    reference_ra = [(f.urn, f.message) for f in reference_token_optional(objs, ctx)]
    assert indexed_ra == reference_ra
    indexed_isvc = [(f.urn, f.message) for f in authz._isvc_uncovered(objs, ctx)]
    reference_isvc = list(reference_isvc_uncovered(objs, ctx))
    assert [u for u, _ in indexed_isvc] == [f.urn for f in reference_isvc]
    for (_, message), ref in zip(indexed_isvc, reference_isvc, strict=True):
        # Same component too (the reference names it last, the rule in its field path).
        assert f": spec.{ref.message.rsplit(' ', 1)[1]}:" in message
    return [f"{u}|{m}" for u, m in reference_ra], [f"{f.urn}|{f.message}" for f in reference_isvc]


@pytest.mark.parametrize("seed", range(6))
def test_indexed_stack_rules_match_the_brute_force_reference(seed: int) -> None:
    # Odd seeds put a few objects into the root namespace (mesh-wide policies), even ones none.
    objs = _random_stack(seed, 400, root=0.02 if seed % 2 else 0.0)
    ras, isvcs = _verdicts(objs, Context.from_config({}))
    if seed % 2 == 0:
        # Without mesh-wide policies (which tend to cover everything) the stacks exercise both
        # verdicts of both rules.
        assert ras
        assert len(ras) < len(of_kind(objs, REQUEST_AUTHENTICATION))
        components = sum(len(isvc_components(o)) for o in of_kind(objs, INFERENCE_SERVICE))
        assert isvcs
        assert len(isvcs) < components


def test_a_custom_root_namespace_is_indexed_as_mesh_wide() -> None:
    objs = _random_stack(99, 300, root=0.0)
    default_ras, default_isvcs = _verdicts(objs, Context.from_config({}))
    # ns-1 as the root turns its namespace-wide policies mesh-wide: verdicts change, and the
    # index still agrees with the reference.
    ras, isvcs = _verdicts(objs, Context.from_config({"meshRootNamespace": "ns-1"}))
    assert (ras, isvcs) != (default_ras, default_isvcs)
