"""Batch windows: one closed-by-default ALLOW per batch caller, and the reconciler (a CronJob with
the narrowest RBAC) that keeps it in exactly the state its schedule says.

Level-triggered, fail closed: every `RECONCILE_EVERY_MINUTES` a run computes from the windows'
schedules whether the policy should be open NOW and sets exactly that (aimesh/runtime/
window_reconciler.py); inside its slot it also wakes on each edge of the schedule and once a
minute. A failed or missed run is corrected by the next one, a late run can never open the window
after its close, and a hand edit is undone within a minute. The two shapes the policy may take
are defined here once (`closed_spec`, `open_spec`): the reconciler writes only those, and the
admission guardrails let its identity write nothing else.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from aimesh import versions
from aimesh.builders import access
from aimesh.builders.common import ROLE_LABEL, metadata
from aimesh.builders.secure_model.authorization import audited_annotations
from aimesh.builders.secure_model.meta import SECURITY_API, model_labels, workload_selector
from aimesh.settings import ModelSettings

WINDOW_ROLE = "window-controller"
WINDOW_LABEL = "aimesh.io/window"

# A run every 5 minutes; each lives for most of its slot (RUN_SECONDS), re-reading the policy
# every RECHECK_SECONDS and at each edge of the schedule. The minimum window length
# (settings.MIN_WINDOW_MINUTES) spans three slots.
RECONCILE_EVERY_MINUTES = 5
RUN_SECONDS = 240
RECHECK_SECONDS = 60
# A run that cannot start within this long after its slot is skipped: the next slot comes soon.
STARTING_DEADLINE_SECONDS = 120
# The Job is killed before the next slot if it hangs (the run itself ends after RUN_SECONDS).
ACTIVE_DEADLINE_SECONDS = RECONCILE_EVERY_MINUTES * 60 - 15
# Seconds after a scheduled close during which an open policy is not yet "open outside its
# schedule": the gap between one run's end and the next run's first pass.
GRACE_SECONDS = RECONCILE_EVERY_MINUTES * 60 + 60
# Where the reconciler serves its gauges (loopback; pilot-agent merges them into :15020).
METRICS_PORT = 9464
CODE_DIR = "/opt/aimesh"
CONFIG_FILE = "window.json"
# The runtime modules shipped in the ConfigMap, as `aimesh/runtime/<file>` under CODE_DIR.
RUNTIME_FILES = ("schedule.py", "window_reconciler.py")


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
    """The batch caller's ALLOW, created CLOSED (no rules: allows nothing). Its reconciler sets
    the spec to `open_spec` while a window is open and back to `closed_spec` after. In dry-run
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


def reconciler_config(model: ModelSettings, row: access.AccessRow) -> dict[str, Any]:
    """The reconciler's `window.json`: which policy, its schedule and its two shapes."""
    return {
        "namespace": model.ns,
        "policy": row.policy,
        "apiVersion": SECURITY_API,
        "windows": [
            {"open": w.open, "close": w.close, "timeZone": w.time_zone} for w in row.windows
        ],
        "openSpec": open_spec(model, row),
        "closedSpec": closed_spec(model),
        "runSeconds": RUN_SECONDS,
        "recheckSeconds": RECHECK_SECONDS,
        "graceSeconds": GRACE_SECONDS,
        "metricsPort": METRICS_PORT,
    }


def runtime_source(file: str) -> str:
    """The source of one runtime module, as shipped to the pod."""
    return resources.files("aimesh.runtime").joinpath(file).read_text(encoding="utf-8")


def window_controller(model: ModelSettings, row: access.AccessRow) -> list[dict[str, Any]]:
    """ServiceAccount + Role (get/patch of exactly the row's policy) + RoleBinding + the
    ConfigMap with the reconciler (code and config) + its CronJob.

    The service account mounts no token by default: only the CronJob's own pods ask for one,
    so a pod that merely names this identity gets no credential from it (and the admission
    guardrails refuse such pods anyway)."""
    sa = controller_service_account(row)
    labels = {**model_labels(model), ROLE_LABEL: WINDOW_ROLE}
    config = {
        **{file: runtime_source(file) for file in RUNTIME_FILES},
        CONFIG_FILE: json.dumps(reconciler_config(model, row), indent=2, sort_keys=True) + "\n",
    }
    return [
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
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(sa, model.ns, labels),
            "data": config,
        },
        _cronjob(model, row, sa, labels),
    ]


def _cronjob(
    model: ModelSettings, row: access.AccessRow, sa: str, labels: dict[str, str]
) -> dict[str, Any]:
    # CronJob names are limited to 52 characters (the Job name gets an 11-character suffix).
    name = access.short_name(row.policy, "reconcile", limit=52)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(name, model.ns, labels),
        "spec": {
            "schedule": f"*/{RECONCILE_EVERY_MINUTES} * * * *",
            "timeZone": "Etc/UTC",
            # One run at a time; a run that could not start in time is skipped, not queued.
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": STARTING_DEADLINE_SECONDS,
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 3,
                    "activeDeadlineSeconds": ACTIVE_DEADLINE_SECONDS,
                    "ttlSecondsAfterFinished": 3600,
                    "template": _pod_template(model, sa),
                }
            },
        },
    }


def _pod_template(model: ModelSettings, sa: str) -> dict[str, Any]:
    runtime = f"{CODE_DIR}/aimesh/runtime"
    return {
        "metadata": {
            # In the mesh like everything else (with native sidecars, Istio on Kubernetes
            # >= 1.33, the proxy stops when the reconciler exits, so the Job completes), and NOT
            # labelled as the model: no model policy applies to it.
            "labels": workload_selector_for_controller(model),
            # pilot-agent scrapes the reconciler's gauges and merges them into :15020.
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(METRICS_PORT),
                "prometheus.io/path": "/metrics",
            },
        },
        "spec": {
            "serviceAccountName": sa,
            # The reconciler needs the API token; this pod is the one place it is mounted (the
            # service account itself opts out).
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
                    "name": "reconciler",
                    "image": versions.WINDOW_RECONCILER_IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    # -B: no bytecode (read-only filesystem); -E -s: no environment or user
                    # site packages; -m from CODE_DIR: the modules import as in the repository.
                    "command": ["python3", "-B", "-E", "-s", "-m"],
                    "args": [
                        "aimesh.runtime.window_reconciler",
                        f"--config={runtime}/{CONFIG_FILE}",
                    ],
                    "workingDir": CODE_DIR,
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "privileged": False,
                        "readOnlyRootFilesystem": True,
                        "runAsNonRoot": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "32Mi"},
                        "limits": {"cpu": "200m", "memory": "96Mi"},
                    },
                    "volumeMounts": [{"name": "code", "mountPath": runtime, "readOnly": True}],
                }
            ],
            "volumes": [
                {
                    "name": "code",
                    "configMap": {"name": sa, "defaultMode": 0o444},
                }
            ],
        },
    }


def workload_selector_for_controller(model: ModelSettings) -> dict[str, str]:
    """Labels of the window-controller pods (NOT the model label: no model policy applies)."""
    return {ROLE_LABEL: WINDOW_ROLE, "aimesh.io/controls": model.name}
