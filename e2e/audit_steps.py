"""`make audit` against the real engine: a change behind Pulumi's back is named, and the policy
pack judges what is live (issue 10, part 3).

One AuthorizationPolicy (Istio 1.30.3's CRD from ../shared/upstream) is deployed by the real
CLI and provider; the audit's drift check (`pulumi refresh --preview-only --json`, the pinned
CLI, no program run) must then find nothing. The policy is changed through the API server as
`kubectl edit` would (another field manager, a wildcard principal), and the same check must name
that object and the changed property; the audit's live check (`kubectl get` of the cluster with
the run's kubeconfig, the pack over the analyzer protocol) must flag the wildcard as a mandatory
violation. The stack is destroyed afterwards.

    python -m e2e.audit_steps          # this step alone: toolchain (cached), cluster, step
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from e2e.cluster import Cluster
from e2e.engine import REPO, Engine
from e2e.kube import object_path, wait_for
from e2e.report import ScenarioError
from tools import audit, schemas

NAMESPACE = "audit-drift"
NAME = "drift-allow"
CRD = "authorizationpolicies.security.istio.io"
CALLER = "cluster.local/ns/shop/sa/web"
PACK_CONFIG = REPO / "policy-pack" / "policy-config.json"


def require(condition: object, message: str) -> None:
    if not condition:
        raise ScenarioError(message)


def _authorization_policy_crd(cluster: Cluster) -> None:
    """Istio's AuthorizationPolicy CRD, as the bring-your-own step installs it."""
    api = cluster.api
    path = object_path("apiextensions.k8s.io/v1", "customresourcedefinitions", CRD)
    if api.get(path) is None:
        docs = schemas.load_yaml_documents(schemas.upstream("istio/crds.yaml"))
        [crd] = [d for d in docs if d and d.get("metadata", {}).get("name") == CRD]
        api.apply(path, crd)

    def established() -> bool:
        status = (api.get(path) or {}).get("status") or {}
        conditions = status.get("conditions") or []
        return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

    wait_for(f"CRD {CRD} Established", established, timeout=120)


def audit_drift(engine: Engine, cluster: Cluster, work: Path) -> dict[str, Any]:
    import pulumi
    import pulumi_kubernetes as k8s

    _authorization_policy_crd(cluster)
    project = work / "audit-drift"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: aimesh-audit-drift\nruntime: python\n")
    kubeconfig = cluster.kubeconfig.read_text()
    spec = {
        "selector": {"matchLabels": {"aimesh.io/model": "m"}},
        "action": "ALLOW",
        "rules": [{"from": [{"source": {"principals": [CALLER]}}]}],
    }

    def program() -> None:
        provider = k8s.Provider("cluster", kubeconfig=pulumi.Output.secret(kubeconfig))
        namespace = k8s.core.v1.Namespace(
            "namespace",
            metadata={"name": NAMESPACE},
            opts=pulumi.ResourceOptions(provider=provider),
        )
        k8s.apiextensions.CustomResource(
            "allow",
            api_version="security.istio.io/v1",
            kind="AuthorizationPolicy",
            metadata={"name": NAME, "namespace": NAMESPACE},
            spec=spec,
            opts=pulumi.ResourceOptions(provider=provider, depends_on=[namespace]),
        )

    stack = engine.stack(project, "drift", program, project_name="aimesh-audit-drift")
    env = {**os.environ, **engine.env()}
    pulumi_cli = str(engine.tc.tool("pulumi"))
    try:
        stack.up()
        clean = audit.check_drift("drift", "refresh", pulumi=pulumi_cli, cwd=project, env=env)
        require(
            clean.status == audit.OK,
            f"drift reported right after `pulumi up`: {clean.status}: {clean.lines}",
        )

        # Behind Pulumi's back: another field manager widens the policy to every principal.
        path = object_path("security.istio.io/v1", "authorizationpolicies", NAME, NAMESPACE)
        edited = {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": {**spec, "rules": [{"from": [{"source": {"principals": ["*"]}}]}]},
        }
        cluster.api.apply(path, edited, manager="kubectl-edit")
        drift = audit.check_drift("drift", "refresh", pulumi=pulumi_cli, cwd=project, env=env)
        named = [f for f in drift.items if f["object"] == f"AuthorizationPolicy {NAMESPACE}/{NAME}"]
        require(
            drift.status == audit.ATTENTION and named,
            f"the audit did not name the edited AuthorizationPolicy: {drift.lines}",
        )
        require(
            any(p.startswith("spec") for p in named[0]["properties"]),
            f"the drifted properties do not include the spec: {named[0]}",
        )

        kubectl = shutil.which("kubectl")
        require(kubectl, "kubectl is not on PATH (the live check reads the cluster with it)")
        assert kubectl is not None
        live = audit.check_live([kubectl, "--kubeconfig", str(cluster.kubeconfig)], PACK_CONFIG)
        flagged = [
            i
            for i in live.items
            if i["mandatory"]
            and i["policy"] == "istio-authorizationpolicy-forbid-wildcard-sources"
            and NAME in i["object"]
        ]
        require(
            live.status == audit.ATTENTION and flagged,
            f"the pack on what is live did not flag the wildcard: {live.status}: {live.lines}",
        )
    finally:
        stack.destroy()
        stack.workspace.remove_stack("drift")
    return {
        "drifted_objects": len(drift.items),
        "drifted": f"{named[0]['op']} {named[0]['object']}: {', '.join(named[0]['properties'])}",
        "live_findings": len(live.items),
        "live_mandatory": sum(1 for i in live.items if i["mandatory"]),
        "live_policies": sorted({i["policy"] for i in live.items}),
    }


def main() -> int:
    """This step alone, on a cluster of its own (the toolchain must build or be cached)."""
    from e2e import toolchain

    tc = toolchain.current()
    toolchain.build(tc)
    base = Path(tempfile.mkdtemp(prefix="aimesh-e2e-audit-"))
    try:
        with Cluster.start(tc, base) as cluster:
            engine = Engine(base / "engine", tc, secrets.token_urlsafe(24))
            engine.prepare()
            counts = audit_drift(engine, cluster, base)
    except ScenarioError as exc:
        print(f"audit-drift FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"audit-drift passed: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
