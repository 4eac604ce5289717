"""Batch windows: one closed-by-default ALLOW per batch caller, and the CronJobs (with the
narrowest RBAC) that open and close it on schedule."""

from __future__ import annotations

import json
from typing import Any

from aimesh import versions
from aimesh.builders import access
from aimesh.builders.common import ROLE_LABEL, metadata
from aimesh.builders.secure_model.authorization import audited_annotations
from aimesh.builders.secure_model.meta import SECURITY_API, model_labels, workload_selector
from aimesh.settings import ModelSettings

WINDOW_ROLE = "window-controller"


WINDOW_LABEL = "aimesh.io/window"


def closed_spec(model: ModelSettings) -> dict[str, Any]:
    """The window policy's spec while closed: an ALLOW with no rules, which allows nothing."""
    return {"selector": {"matchLabels": workload_selector(model)}, "action": "ALLOW"}


def open_spec(model: ModelSettings, row: access.AccessRow) -> dict[str, Any]:
    """The window policy's spec while open: the closed spec plus exactly the row's rule. These
    two are the only shapes the controller's identity may write (builders/guardrails.py)."""
    return {**closed_spec(model), "rules": [row.rule()]}


def controller_service_account(row: access.AccessRow) -> str:
    """The identity that opens and closes `row`'s window (one per batch caller)."""
    return access.short_name(row.policy, "ctl")


def window_policy(model: ModelSettings, row: access.AccessRow) -> dict[str, Any]:
    """The batch caller's ALLOW, created CLOSED (no rules: allows nothing). Its CronJobs set
    `rules` to `open_patch(row)` when a window opens and remove them when it closes. In dry-run
    while the model is in audit mode, like the model's other ALLOW rules."""
    return {
        "apiVersion": SECURITY_API,
        "kind": "AuthorizationPolicy",
        "metadata": metadata(
            row.policy,
            model.ns,
            {**model_labels(model), WINDOW_LABEL: "batch"},
            audited_annotations(model),
        ),
        "spec": closed_spec(model),
    }


def open_patch(row: access.AccessRow) -> dict[str, Any]:
    """JSON merge patch that opens a window: the row's rule, nothing else."""
    return {"spec": {"rules": [row.rule()]}}


def close_patch() -> dict[str, Any]:
    """JSON merge patch that closes a window: no rules, the ALLOW matches nothing."""
    return {"spec": {"rules": None}}


def window_controller(model: ModelSettings, row: access.AccessRow) -> list[dict[str, Any]]:
    """ServiceAccount + Role (get/patch of exactly the row's policy) + RoleBinding + one
    CronJob per window edge. The pods run kubectl only (no shell), unprivileged, read-only.

    The service account mounts no token by default: only the CronJob's own pods ask for one,
    so a pod that merely names this identity gets no credential from it (and the admission
    guardrails refuse such pods anyway)."""
    sa = controller_service_account(row)
    labels = {**model_labels(model), ROLE_LABEL: WINDOW_ROLE}
    out: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(sa, model.ns, labels),
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata(sa, model.ns, labels),
            "rules": [
                {
                    "apiGroups": ["security.istio.io"],
                    "resources": ["authorizationpolicies"],
                    "resourceNames": [row.policy],
                    "verbs": ["get", "patch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata(sa, model.ns, labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": model.ns}],
        },
    ]
    for i, window in enumerate(row.windows):
        for edge, schedule, patch in (
            ("open", window.open, open_patch(row)),
            ("close", window.close, close_patch()),
        ):
            out.append(_cronjob(model, row, sa, f"{edge}-{i}", schedule, window.time_zone, patch))
    return out


def _cronjob(
    model: ModelSettings,
    row: access.AccessRow,
    sa: str,
    suffix: str,
    schedule: str,
    time_zone: str,
    patch: dict[str, Any],
) -> dict[str, Any]:
    # CronJob names are limited to 52 characters (the Job name gets an 11-character suffix).
    name = access.short_name(row.policy, suffix, limit=52)
    # In the mesh like everything else: with native sidecars (Istio on Kubernetes >= 1.33) the
    # proxy stops when kubectl exits, so the Job completes.
    pod_labels = workload_selector_for_controller(model)
    spec: dict[str, Any] = {
        "schedule": schedule,
        "timeZone": time_zone,
        "concurrencyPolicy": "Forbid",
    }
    if suffix.startswith("open"):
        # A missed opening (controller down) runs within 10 minutes or not at all: access that
        # starts hours late, possibly after the closing already ran, would stay open a day.
        # A closing has NO deadline: a late close is always right (fail closed), so the
        # CronJob controller runs a missed closing as soon as it catches up.
        spec["startingDeadlineSeconds"] = 600
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(name, model.ns, {**model_labels(model), ROLE_LABEL: WINDOW_ROLE}),
        "spec": {
            **spec,
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 4,
                    "activeDeadlineSeconds": 300,
                    "ttlSecondsAfterFinished": 86400,
                    "template": {
                        "metadata": {"labels": pod_labels},
                        "spec": {
                            "serviceAccountName": sa,
                            # kubectl needs the API token; this pod is the one place it is
                            # mounted (the service account itself opts out).
                            "automountServiceAccountToken": True,
                            "restartPolicy": "OnFailure",
                            "securityContext": {
                                "runAsNonRoot": True,
                                "runAsUser": 65532,
                                "runAsGroup": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "containers": [
                                {
                                    "name": "kubectl",
                                    "image": versions.KUBECTL_IMAGE,
                                    "imagePullPolicy": "IfNotPresent",
                                    "command": ["kubectl"],
                                    "args": [
                                        "patch",
                                        "authorizationpolicies.security.istio.io",
                                        row.policy,
                                        f"--namespace={model.ns}",
                                        "--type=merge",
                                        f"--patch={json.dumps(patch, sort_keys=True)}",
                                        "--cache-dir=/tmp/kube-cache",
                                    ],
                                    "securityContext": {
                                        "allowPrivilegeEscalation": False,
                                        "privileged": False,
                                        "readOnlyRootFilesystem": True,
                                        "runAsNonRoot": True,
                                        "capabilities": {"drop": ["ALL"]},
                                    },
                                    "resources": {
                                        "requests": {"cpu": "10m", "memory": "32Mi"},
                                        "limits": {"cpu": "100m", "memory": "64Mi"},
                                    },
                                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
                                }
                            ],
                            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
                        },
                    },
                }
            },
        },
    }


def workload_selector_for_controller(model: ModelSettings) -> dict[str, str]:
    """Labels of the window-controller pods (NOT the model label: no model policy applies)."""
    return {ROLE_LABEL: WINDOW_ROLE, "aimesh.io/controls": model.name}
