"""`make e2e`: the real Pulumi CLI, Kubernetes provider and API server, end to end.

Steps (docs/e2e.md): the toolchain (built or reused), the control plane with simulated nodes
and its smoke test, an engine smoke test (a ConfigMap through the real provider, the pack loaded
by the CLI), then the aimesh scenario on the `e2e` stack. Each step is timed and recorded in
the report (`build/e2e/report.json` unless --report); the first failure stops the run, which
exits non-zero. The control plane and every process are torn down however the run ends.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from e2e import aimesh_steps as steps
from e2e import runtime_steps, toolchain
from e2e.audit_steps import audit_drift
from e2e.cluster import Cluster, smoke
from e2e.engine import REPO, Engine, project_copy
from e2e.kube import object_path
from e2e.report import Report, ScenarioError

PACK_CONFIG = REPO / "policy-pack" / "policy-config.json"


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ScenarioError(message)


def engine_smoke(engine: Engine, cluster: Cluster, work: Path, launcher: Path) -> dict[str, Any]:
    """A one-ConfigMap inline program through the real CLI, provider and API server, previewed
    with the aimesh pack loaded by the CLI, then destroyed."""
    import pulumi
    import pulumi_kubernetes as k8s
    from pulumi import automation as auto

    project = work / "engine-smoke"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: aimesh-engine-smoke\nruntime: python\n")
    kubeconfig = cluster.kubeconfig.read_text()

    def program() -> None:
        provider = k8s.Provider("smoke", kubeconfig=pulumi.Output.secret(kubeconfig))
        k8s.core.v1.ConfigMap(
            "smoke",
            metadata={"name": "aimesh-engine-smoke", "namespace": "default"},
            data={"engine": "real"},
            opts=pulumi.ResourceOptions(provider=provider),
        )

    stack = engine.stack(project, "smoke", program, project_name="aimesh-engine-smoke")
    packs, configs = [str(launcher)], [str(PACK_CONFIG)]
    preview = stack.preview(policy_packs=packs, policy_pack_configs=configs)
    require("aimesh-zero-trust" in preview.stdout, "the policy pack was not loaded by the CLI")
    up = stack.up(policy_packs=packs, policy_pack_configs=configs)
    created = (up.summary.resource_changes or {}).get(auto.OpType.CREATE, 0)
    live = cluster.api.get(object_path("v1", "configmaps", "aimesh-engine-smoke", "default"))
    require(
        live is not None and live.get("data") == {"engine": "real"},
        f"the ConfigMap the provider created is not in the API server as meant: {live}",
    )
    stack.destroy()
    gone = cluster.api.get(object_path("v1", "configmaps", "aimesh-engine-smoke", "default"))
    require(gone is None, "destroy left the ConfigMap behind")
    stack.workspace.remove_stack("smoke")
    return {"created": created, "preview_steps": sum((preview.change_summary or {}).values())}


def run(report: Report, keep: bool) -> None:
    with report.step("toolchain", "build the pinned toolchain or reuse the cached one") as step:
        tc = toolchain.current()
        cached = tc.ready()
        manifest = toolchain.build(tc)
        step.counts = {"cached": cached, "build_seconds": manifest["build_seconds"]}
        report.meta["toolchain"] = {"dir": str(tc.root), "cached": cached, **manifest}

    base = Path(tempfile.mkdtemp(prefix="aimesh-e2e-"))
    with contextlib.ExitStack() as cleanup:
        if keep:
            cleanup.callback(print, f"kept the run directory: {base}", file=sys.stderr)
        else:
            cleanup.callback(shutil.rmtree, base, ignore_errors=True)
        with report.step("cluster", "etcd + control plane + kwok nodes on 127.0.0.1") as step:
            cluster = cleanup.enter_context(Cluster.start(tc, base))
            step.counts = dict(cluster.timings)
        with report.step(
            "cluster-smoke", "a Deployment becomes Available, a Job Completes"
        ) as step:
            step.counts = smoke(cluster)
        engine = Engine(base / "engine", tc, secrets.token_urlsafe(24))
        with report.step("engine-login", "private PULUMI_HOME, file backend, passphrase"):
            engine.prepare()
            launcher = engine.pack_launcher(REPO / "policy-pack")
        with report.step("engine-smoke", "ConfigMap via the real CLI + provider + pack") as step:
            step.counts = engine_smoke(engine, cluster, base, launcher)
        with report.step(
            "audit-drift", "make audit names a change made behind Pulumi's back"
        ) as step:
            step.counts = audit_drift(engine, cluster, base)

        sc = steps.Scenario(
            engine=engine,
            cluster=cluster,
            project=project_copy(base / "project"),
            launcher=launcher,
            pack_config=PACK_CONFIG,
            charts=tc.charts,
        )
        report.meta["bring_your_own"] = steps.WHY_BROUGHT
        with report.step(
            "bring-your-own", "upstream CRDs of the components no module serves"
        ) as step:
            step.counts = steps.bring_your_own(sc)
        with report.step(
            "w-window-reconciler",
            "the reconciler's shipped code, as its own identity, sets its policy back",
        ) as step:
            step.counts = runtime_steps.window_reconciler(cluster)
        with report.step("a-preview", "preview with the pack: 0 mandatory violations") as step:
            step.counts = steps.step_a_preview(sc)
        with report.step("b-up", "up converges; every object checked through the API") as step:
            step.counts = steps.step_b_up(sc)
        with report.step("c-no-changes", "preview --expect-no-changes: no perpetual diff") as step:
            step.counts = steps.step_c_no_changes(sc)
        with report.step(
            "guardrails", "a model manager's kubectl routes refused in the API server"
        ) as step:
            step.counts = steps.step_guardrails(sc)
        for which, (policy, _) in steps.WEAKENINGS.items():
            with report.step(
                f"d-weakening-{which}", f"stopped by {policy}, cluster unchanged"
            ) as step:
                step.counts = steps.step_d_weakening(sc, which)
        with report.step("e-canary", "canary added, up, removed, up: no orphan") as step:
            step.counts = steps.step_e_canary(sc)
        with report.step("f-export", "stack export holds no plain-text secret") as step:
            step.counts = steps.step_f_export(sc)
        with report.step("g-destroy", "destroy leaves no object of the stack") as step:
            step.counts = steps.step_g_destroy(sc)
        with report.step(
            "h-ci-preview", "the PR workflow's preview: ci stack, offline charts"
        ) as step:
            step.counts = steps.step_h_ci_preview(sc, tc.charts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=REPO / "build" / "e2e" / "report.json")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    args = parser.parse_args(argv)
    keep = args.keep or bool(os.environ.get("AIMESH_E2E_KEEP"))
    report = Report(args.report, meta={"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ")})
    # A failure is recorded in its step (and makes the exit code non-zero) and stops the run.
    with contextlib.suppress(Exception):
        run(report, keep)
    report.write()
    print(report.summary())
    print(f"report: {args.report}")
    return 1 if report.failed or not report.steps else 0


if __name__ == "__main__":
    sys.exit(main())
