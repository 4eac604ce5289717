"""Kubernetes RBAC in a model's namespace: managers manage, callers only read."""

from __future__ import annotations

from aimesh.builders import secure_model
from tests.unit.secure_model.support import named, one_model
from tests.unit.test_access import GATEWAY


def test_managers_manage_and_callers_only_read() -> None:
    settings, m = one_model(
        managers=[{"kind": "Group", "name": "ml-admins"}],
        callers=[{"namespace": "apps", "serviceAccount": "web"}],
    )
    objects = secure_model.build(settings, m, GATEWAY)
    manager = named(objects, "Role", "m-manager")
    assert "delete" in manager["rules"][0]["verbs"]
    viewer = named(objects, "Role", "m-viewer")
    assert viewer["rules"][0]["verbs"] == ["get", "list", "watch"]
    assert named(objects, "RoleBinding", "m-manager")["subjects"] == [
        {"kind": "Group", "name": "ml-admins", "apiGroup": "rbac.authorization.k8s.io"}
    ]
    assert named(objects, "RoleBinding", "m-viewer")["subjects"] == [
        {"kind": "ServiceAccount", "name": "web", "namespace": "apps"}
    ]
