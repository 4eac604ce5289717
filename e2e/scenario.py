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
from e2e import toolchain
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


def run(report: Report, keep: bool, only: frozenset[str] = frozenset()) -> None:
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
        for step_def in steps.STEPS:
            if only and step_def.name not in only and not step_def.setup:
                continue
            with report.step(step_def.name, step_def.description) as step:
                step.counts = step_def.run(sc)
                # A host process that died during the step (a controller, the API server)
                # fails it here, naming the process, rather than in a later timeout.
                cluster.check_alive()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=REPO / "build" / "e2e" / "report.json")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    parser.add_argument(
        "--only",
        default="",
        metavar="STEP,...",
        help="while debugging: run only these scenario steps (after the cluster, engine and "
        "setup steps); make e2e runs them all",
    )
    args = parser.parse_args(argv)
    only = frozenset(filter(None, args.only.split(",")))
    unknown = only - {s.name for s in steps.STEPS}
    if unknown:
        parser.error(f"unknown steps {sorted(unknown)}; steps: {[s.name for s in steps.STEPS]}")
    keep = args.keep or bool(os.environ.get("AIMESH_E2E_KEEP"))
    # Absolute: the program's steps run with the stack's project copy as working directory.
    report = Report(args.report.resolve(), meta={"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ")})
    if only:
        # A partial run never counts as a pass (its exit code is 1 whatever happens).
        report.meta["only"] = sorted(only)
    # A failure is recorded in its step (and makes the exit code non-zero) and stops the run.
    with contextlib.suppress(Exception):
        run(report, keep, only)
    report.write()
    print(report.summary())
    print(f"report: {args.report}")
    return 1 if report.failed or not report.steps or only else 0


if __name__ == "__main__":
    sys.exit(main())
