"""Evaluate a ValidatingAdmissionPolicy offline, the way the API server does, with cel-python.

The API server evaluates a policy for a request in this order: resource match
(`matchConstraints.resourceRules`), then `matchConditions` (all must be true, else the policy
does not apply), then `variables` (each may use the earlier ones), then every `validations[]`
expression: true admits, false denies with `messageExpression`, and an evaluation error denies
under `failurePolicy: Fail`.

cel-python implements standard CEL and its macros, not the Kubernetes extension libraries; the
guardrails are written to that subset (aimesh/builders/cel.py), so evaluating them here is
evaluating what the API server evaluates. Variables are evaluated lazily as the API server
does: one that nothing reads cannot fail a request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

# Resource (plural) of every kind the guardrails match, for building requests.
RESOURCES = {
    ("", "Pod"): "pods",
    ("", "PodTemplate"): "podtemplates",
    ("", "ReplicationController"): "replicationcontrollers",
    ("", "Namespace"): "namespaces",
    ("apps", "Deployment"): "deployments",
    ("apps", "ReplicaSet"): "replicasets",
    ("apps", "StatefulSet"): "statefulsets",
    ("apps", "DaemonSet"): "daemonsets",
    ("batch", "Job"): "jobs",
    ("batch", "CronJob"): "cronjobs",
    ("serving.kserve.io", "InferenceService"): "inferenceservices",
    ("security.istio.io", "AuthorizationPolicy"): "authorizationpolicies",
}


@dataclass(frozen=True)
class Verdict:
    """The outcome of one policy for one request."""

    applies: bool  # the request matched the policy's resources and matchConditions
    allowed: bool
    message: str = ""
    error: str = ""  # an evaluation error (denies under failurePolicy Fail)


def request_for(
    manifest: Mapping[str, Any],
    *,
    operation: str = "CREATE",
    username: str = "jane@example.com",
    old: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An AdmissionRequest (the fields CEL sees) for `manifest`."""
    api_version = str(manifest.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    kind = str(manifest.get("kind", ""))
    meta = manifest.get("metadata") or {}
    namespace = "" if kind == "Namespace" else str(meta.get("namespace", ""))
    return {
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": RESOURCES[(group, kind)]},
        "name": str(meta.get("name", "")),
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": username},
        "object": dict(manifest) if operation != "DELETE" else None,
        "oldObject": dict(old) if old is not None else None,
    }


def matches_resources(policy: Mapping[str, Any], request: Mapping[str, Any]) -> bool:
    resource = request["resource"]
    for rule in policy["spec"]["matchConstraints"]["resourceRules"]:
        if (
            resource["group"] in rule["apiGroups"]
            and resource["resource"] in rule["resources"]
            and request["operation"] in rule["operations"]
            and ("*" in rule["apiVersions"] or resource["version"] in rule["apiVersions"])
        ):
            return True
    return False


@cache
def _program(expression: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(expression))


class _LazyVariables(celtypes.MapType):
    """`variables`, each evaluated on first use (in declaration order of definition)."""

    def __init__(self, declared: list[tuple[str, str]], base: dict[str, Any]) -> None:
        super().__init__()
        self._declared = dict(declared)
        self._base = base

    def __getitem__(self, key: Any) -> Any:
        name = str(key)
        if not super().__contains__(celtypes.StringType(name)):
            if name not in self._declared:
                raise KeyError(name)
            value = _evaluate(self._declared[name], {**self._base, "variables": self})
            super().__setitem__(celtypes.StringType(name), value)
        return super().__getitem__(celtypes.StringType(name))

    def __contains__(self, key: Any) -> bool:
        return str(key) in self._declared


def _evaluate(expression: str, activation: Mapping[str, Any]) -> Any:
    result = _program(expression).evaluate(dict(activation))
    if isinstance(result, CELEvalError):
        raise result
    return result


def evaluate(policy: Mapping[str, Any], request: Mapping[str, Any]) -> Verdict:
    """The API server's verdict of `policy` on `request` (see the module docstring)."""
    if not matches_resources(policy, request):
        return Verdict(applies=False, allowed=True)
    base: dict[str, Any] = {
        "request": json_to_cel(
            {k: v for k, v in request.items() if k not in ("object", "oldObject")}
        ),
        "object": json_to_cel(request.get("object")),
        "oldObject": json_to_cel(request.get("oldObject")),
    }
    spec = policy["spec"]
    try:
        for condition in spec.get("matchConditions", []):
            if not bool(_evaluate(condition["expression"], base)):
                return Verdict(applies=False, allowed=True)
        declared = [(v["name"], v["expression"]) for v in spec.get("variables", [])]
        activation = {**base, "variables": _LazyVariables(declared, base)}
        for validation in spec["validations"]:
            if not bool(_evaluate(validation["expression"], activation)):
                message = str(_evaluate(validation["messageExpression"], activation))
                return Verdict(applies=True, allowed=False, message=message)
    except (CELEvalError, KeyError, TypeError) as exc:
        return Verdict(applies=True, allowed=False, error=f"{type(exc).__name__}: {exc}")
    return Verdict(applies=True, allowed=True)
