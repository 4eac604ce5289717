"""Kubernetes RBAC in the model's namespace: managers manage its InferenceServices, callers
may only read them."""

from __future__ import annotations

from typing import Any

from aimesh.builders import access
from aimesh.builders.common import metadata
from aimesh.builders.secure_model.meta import model_labels
from aimesh.settings import ModelSettings


def rbac(model: ModelSettings) -> list[dict[str, Any]]:
    """Managers manage InferenceServices in the namespace; callers' service accounts may only
    read them (to discover the endpoint and its readiness)."""
    out: list[dict[str, Any]] = []
    manager_role = access.short_name(model.name, "manager")
    viewer_role = access.short_name(model.name, "viewer")
    out.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata(manager_role, model.ns, model_labels(model)),
            "rules": [
                {
                    "apiGroups": ["serving.kserve.io"],
                    "resources": ["inferenceservices"],
                    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
                },
                {
                    "apiGroups": ["serving.kserve.io"],
                    "resources": ["inferenceservices/status"],
                    "verbs": ["get"],
                },
            ],
        }
    )
    out.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata(viewer_role, model.ns, model_labels(model)),
            "rules": [
                {
                    "apiGroups": ["serving.kserve.io"],
                    "resources": ["inferenceservices"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        }
    )
    if model.managers:
        out.append(
            _binding(
                model,
                manager_role,
                [
                    {"kind": s.kind, "name": s.name, "apiGroup": "rbac.authorization.k8s.io"}
                    for s in model.managers
                ],
            )
        )
    if model.callers:
        out.append(
            _binding(
                model,
                viewer_role,
                [
                    {"kind": "ServiceAccount", "name": c.service_account, "namespace": c.namespace}
                    for c in model.callers
                ],
            )
        )
    return out


def _binding(model: ModelSettings, role: str, subjects: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(role, model.ns, model_labels(model)),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": subjects,
    }
