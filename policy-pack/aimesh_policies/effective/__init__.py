"""Effective access, judged against declared intent (issue 15).

The other concern modules match objects one pattern at a time; these policies compute what the
stack as a whole lets happen and compare it with what the stack declares (`intent.py`):

- `access.py`: every AuthorizationPolicy in force on each model workload, over identity and route
  classes (Istio's own evaluation, `istio.py`), against the declared access rows, plus the
  generated protective layers (deny-all, deny-admin, trusted JWT issuers) in effect;
- `network.py`: NetworkPolicies into and out of model pods against the generated ones;
- `entry.py`: every way into a model from outside the mesh against the declared gateway routes;
- `rbac.py`: the Kubernetes rights of every identity (built-in and aggregated roles included)
  over model and control-plane namespaces and the security objects;
- `audit.py`: anything that records less of model traffic than the generated telemetry.

A stack without intent is judged on invariants only, and `aimesh-model-namespace-require-intent`
says so (advisory by default; this project's policy config makes it mandatory).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from aimesh_policies.effective import access, audit, entry, network, rbac
from aimesh_policies.effective.intent import CONFIGMAP, read_intents, required_missing
from aimesh_policies.effective.workloads import MODEL_KINDS
from aimesh_policies.framework import Context, Finding, Level, Policy, Severity
from aimesh_policies.k8s_object import MESH_CONFIG, K8sObject
from aimesh_policies.meshlib import (
    AUTHORIZATION_POLICY,
    INFERENCE_SERVICE,
    LLM_INFERENCE_SERVICE,
    NAMESPACE,
    REQUEST_AUTHENTICATION,
    model_namespaces,
    namespace_of,
)


def _intent_problems(objs: Sequence[K8sObject], ctx: Context) -> Iterable[Finding]:
    yield from read_intents(objs, ctx).problems


def _missing_intent(objs: Sequence[K8sObject], ctx: Context) -> Iterable[Finding]:
    intents = read_intents(objs, ctx)
    anchors = {namespace_of(o): o for o in objs if o.group_kind in (INFERENCE_SERVICE, NAMESPACE)}
    for namespace in required_missing(model_namespaces(objs, ctx), intents):
        anchor = anchors.get(namespace)
        yield Finding(
            f"stack: model namespace {namespace} publishes no intent (ConfigMap "
            f"{namespace}/aimesh-intent): its access, network, entry paths and RBAC are judged on "
            "invariants only, not against what its callers were granted. Fix: deploy the model "
            "with aimesh (which publishes the intent), or publish the intent yourself.",
            anchor.urn if anchor else "",
        )


POLICIES: Final = (
    Policy(
        name="aimesh-intent-forbid-forged-or-broad",
        description="Intent objects are unique per model namespace, describe only their own "
        "namespace, can be read, and are not themselves too broad.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Keep exactly one ConfigMap aimesh-intent (label aimesh.io/intent) per model "
        "namespace, as the program generates it; declare exact callers, methods and paths.",
        catches="A second intent object in a namespace (a forged copy under any name carrying the "
        "label), an intent naming another namespace or sitting in a control-plane, gateway or "
        "root namespace, intent.json that is missing, unreadable or unknown at preview, and "
        "intent that declares wildcard or namespace-wide principals, `<iss>/*`-style wildcards "
        "beyond `*` subjects, any-method or any-path operations, prefix paths outside the admin "
        "role, an empty workload selector, wildcard hosts, or RBAC for whole groups or with "
        "wildcard verbs/resources. Two mesh intents, or one outside the root namespace.",
        check_stack=_intent_problems,
        kinds=frozenset({CONFIGMAP}),
    ),
    Policy(
        name="aimesh-model-namespace-require-intent",
        description="Every model namespace publishes its declared intent, so that its effective "
        "access can be judged against it.",
        severity=Severity.MEDIUM,
        level=Level.ADVISORY,
        remediation="Deploy models with aimesh (it publishes ConfigMap aimesh-intent in each "
        "model namespace), or publish the intent for hand-written stacks.",
        catches="A namespace holding an InferenceService (or named in modelNamespaces, or "
        "matching modelNamespaceLabels) without an intent object: the effective-access "
        "policies then judge it on invariants only. Advisory by default (hand-written stacks); "
        "set it mandatory where every model is deployed by aimesh.",
        check_stack=_missing_intent,
        kinds=frozenset({CONFIGMAP, NAMESPACE, INFERENCE_SERVICE, LLM_INFERENCE_SERVICE}),
    ),
    Policy(
        name="istio-model-access-within-intent",
        description="The AuthorizationPolicies in force on each model workload admit no identity "
        "on no route beyond the declared intent, and the generated protective layers hold.",
        severity=Severity.CRITICAL,
        level=Level.MANDATORY,
        remediation="Narrow the granting policy to the declared callers, methods and paths; "
        "restore the deny-all, the DENY of operator paths for non-admins and the trusted "
        "issuers' JWKS; declare new access in the stack config instead.",
        catches="Any (identity, route) a model workload admits that intent does not declare, "
        "computed with Istio's evaluation (CUSTOM, DENY, ALLOW; dry-run excluded; mesh root, "
        "namespace and selector scope; principals, namespaces, service accounts, trust domains, "
        "request principals, IP blocks, every `not` form, `when` conditions; exact, prefix, "
        "suffix, presence and template matching; istiod's rules for unknown keys and "
        "unconvertible values) over declared callers, other workloads of their namespaces and "
        "of the model's, unrelated workloads, the gateway without a token, any holder of a "
        "token of each trusted issuer, plaintext peers, foreign trust domains and IP ranges; "
        "and a missing deny-all, operator paths not denied to non-admins, or trusted issuers' "
        "keys or token locations changed. In audit mode, what the enforced mesh-peers ALLOW "
        "lets in counts as intended only while the intent declares the audit and the policy's "
        "reason and last day hold (ended, unexplained or undeclared: reported; never plaintext "
        "peers or other trust domains). Without intent: any access for unrelated workloads, "
        "plaintext peers or addresses.",
        check_stack=lambda objs, ctx: access.check_access(objs, ctx),
        kinds=MODEL_KINDS | {AUTHORIZATION_POLICY, REQUEST_AUTHENTICATION, MESH_CONFIG},
    ),
    *network.POLICIES,
    *entry.POLICIES,
    *rbac.POLICIES,
    *audit.POLICIES,
)

__all__ = ["POLICIES"]
