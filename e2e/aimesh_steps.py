"""The aimesh scenario (issue 9, steps a-h) on the `e2e` stack, through the real engine.

Each function is one step: it drives the real CLI (Automation API, see e2e/engine.py) and then
looks at the API server itself; it raises ScenarioError naming what did not hold and returns the
step's figures for the report. `STEPS` at the end is the scenario: the steps in the order they
run (docs/e2e.md, "Adding a step").
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

from aimesh.namespaces import CERT_MANAGER_NAMESPACE
from e2e import runtime_steps
from e2e.checks import (
    ObjectRef,
    Resources,
    managed_objects,
    object_fingerprints,
    plaintext_secrets,
    state_objects,
    verify_objects,
)
from e2e.cluster import Cluster
from e2e.engine import Engine
from e2e.kube import Json, object_path, wait_for
from e2e.report import ScenarioError
from tools import schemas

# What stands in for each bring-your-own component's own install: its upstream CRDs (the
# pinned versions, ../shared/upstream) and the namespaces its install owns. Why each is
# bring-your-own here: docs/e2e.md.
BROUGHT = {
    "istio": (["istio/crds.yaml"], ["istio-system", "istio-ingress"]),
    "kserve": (["kserve/crds"], []),
    "monitoring": (["prometheus-operator/crds"], []),
    "collector": ([], []),
}
WHY_BROUGHT = {
    "istio": "no Go module serves Istio 1.30.3's charts (istio.io/istio: only unapproved "
    "pseudo-versions)",
    "kserve": "github.com/kserve/kserve is not served by the Go module proxy",
    "monitoring": "kube-prometheus-stack 88.5.3 is in no Go module",
    "collector": "the opentelemetry-collector chart 0.170.0 is in no Go module",
}
# The policies each weakening must be stopped by (docs/policies.md).
WEAKENINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "allow-all": (
        "istio-authorizationpolicy-forbid-allow-all",
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": "e2e-allow-all", "namespace": "fraud-detector"},
            "spec": {"action": "ALLOW", "rules": [{}]},
        },
    ),
    "permissive-mtls": (
        "istio-peerauthentication-require-strict-mtls",
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": {"name": "e2e-permissive", "namespace": "fraud-detector"},
            "spec": {"mtls": {"mode": "PERMISSIVE"}},
        },
    ),
}
CANARY_MODEL = "churn-scorer"
# Render mode's chart type (aimesh/components/charts.py): its children are the rendered objects.
RENDERED_CHART = "kubernetes:helm.sh/v3:Chart"


def require(condition: object, message: str) -> None:
    if not condition:
        raise ScenarioError(message)


@dataclass
class Observed:
    """What the engine reported during one command, from its event stream: the policy
    violations (policy, enforcement level) and the resources it planned (URN, type)."""

    violations: list[tuple[str, str]] = field(default_factory=list)
    resources: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, event: auto.EngineEvent) -> None:
        if event.policy_event is not None:
            policy = event.policy_event
            self.violations.append((policy.policy_name, policy.enforcement_level))
        if event.resource_pre_event is not None:
            meta = event.resource_pre_event.metadata
            self.resources.append((meta.urn, meta.type))

    def count(self, level: str) -> int:
        return sum(1 for _, lvl in self.violations if lvl == level)

    def named(self, level: str) -> list[str]:
        return sorted({name for name, lvl in self.violations if lvl == level})


@dataclass
class Scenario:
    """State shared by the steps of one run."""

    engine: Engine
    cluster: Cluster
    project: Path
    launcher: Path
    pack_config: Path
    charts: Path
    stack: auto.Stack | None = None
    resources: Resources | None = None
    secret_values: list[str] = field(default_factory=list)

    @property
    def packs(self) -> dict[str, list[str]]:
        return {
            "policy_packs": [str(self.launcher)],
            "policy_pack_configs": [str(self.pack_config)],
        }

    def the_stack(self) -> auto.Stack:
        if self.stack is None:
            raise ScenarioError("the e2e stack was never created (an earlier step failed)")
        return self.stack

    def api_resources(self) -> Resources:
        if self.resources is None:
            self.resources = Resources(self.cluster.api)
        return self.resources

    def deployment(self) -> Json:
        exported = self.the_stack().export_stack().deployment
        return dict(exported or {})

    def preview(self, observed: Observed | None = None, **extra: Any) -> auto.PreviewResult:
        return self.the_stack().preview(
            policy_packs=self.packs["policy_packs"],
            policy_pack_configs=self.packs["policy_pack_configs"],
            diff=False,
            on_event=observed,
            **extra,
        )

    def up(self, observed: Observed | None = None) -> auto.UpResult:
        return self.the_stack().up(
            policy_packs=self.packs["policy_packs"],
            policy_pack_configs=self.packs["policy_pack_configs"],
            on_event=observed,
        )


def bring_your_own(sc: Scenario) -> dict[str, Any]:
    """The platform team's installs that stand in for components no Go module serves."""
    api = sc.cluster.api
    pending: set[str] = set()
    for crd_paths, namespaces in BROUGHT.values():
        for ns in namespaces:
            api.apply(
                object_path("v1", "namespaces", ns),
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            )
        for rel in crd_paths:
            for path in schemas.upstream_paths(rel):
                for doc in schemas.load_yaml_documents(path):
                    if not doc or doc.get("kind") != "CustomResourceDefinition":
                        continue
                    name = doc["metadata"]["name"]
                    api.apply(
                        object_path("apiextensions.k8s.io/v1", "customresourcedefinitions", name),
                        doc,
                    )
                    pending.add(name)
    applied = len(pending)

    def established() -> bool:
        # One CRD at a time (a list would carry every schema, megabytes, on each poll).
        for name in sorted(pending):
            crd = api.get(object_path("apiextensions.k8s.io/v1", "customresourcedefinitions", name))
            conditions = ((crd or {}).get("status") or {}).get("conditions") or []
            if any(
                c.get("type") == "Established" and c.get("status") == "True" for c in conditions
            ):
                pending.discard(name)
        return not pending

    wait_for("upstream CRDs Established", established, timeout=120, interval=1)
    return {"crds_applied": applied, "components": len(BROUGHT)}


def cert_manager_controller(sc: Scenario) -> dict[str, Any]:
    """cert-manager's real controller (the pinned release, built by the toolchain) on the host,
    against this run's API server: the chart's own controller pod is kwok's and runs nothing.
    It starts before cert-manager's CRDs exist (the program installs them); its informers list
    them once they do, as a controller pod started by the chart would."""
    cluster = sc.cluster
    process = cluster.spawn(
        "cert-manager-controller",
        [
            str(sc.engine.tc.tool("cert-manager-controller")),
            f"--kubeconfig={cluster.kubeconfig}",
            # Where ClusterIssuers' secrets live: the chart passes the namespace it runs in.
            f"--cluster-resource-namespace={CERT_MANAGER_NAMESPACE}",
            "--v=2",
        ],
    )

    def started() -> bool:
        cluster.check_alive()
        return "starting controllers" in process.log.read_text(errors="replace")

    seconds = wait_for("cert-manager controller started", started, timeout=60)
    found = re.search(r'controllers"?=\[([^\]]*)\]', process.log.read_text(errors="replace"))
    controllers = len(found.group(1).split(",")) if found else 0
    require(controllers, "the cert-manager controller started no controllers")
    return {"controllers": controllers, "start_seconds": round(seconds, 2)}


def edit_config(project: Path, stack: str, changes: dict[str, Any]) -> None:
    """Change `Pulumi.<stack>.yaml` as a user edits it (None removes a key); encrypted values
    and the encryption salt stay as the CLI wrote them."""
    path = project / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is None:
            document["config"].pop(key, None)
        else:
            document["config"][key] = value
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def stack_config(project: Path, stack: str) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((project / f"Pulumi.{stack}.yaml").read_text())[
        "config"
    ]
    return config


def create_stack(sc: Scenario, name: str = "e2e") -> None:
    """The stack `name` of the project copy, pointed at this run's cluster and charts."""
    stack = sc.engine.stack(sc.project, name)
    kubeconfig = sc.cluster.kubeconfig.read_text()
    grafana = secrets.token_urlsafe(18)
    sc.secret_values += [kubeconfig.split("client-key-data: ")[1].split()[0], grafana]
    stack.set_config("aimesh:kubeconfig", auto.ConfigValue(kubeconfig, secret=True))
    stack.set_config("aimesh:grafanaAdminPassword", auto.ConfigValue(grafana, secret=True))
    edit_config(
        sc.project,
        name,
        {"aimesh:chartSource": "directory", "aimesh:chartDirectory": str(sc.charts)},
    )
    sc.stack = stack


def _counts(summary: Mapping[Any, int] | None) -> dict[str, int]:
    return {str(getattr(k, "value", k)): v for k, v in (summary or {}).items()}


def step_a_preview(sc: Scenario) -> dict[str, Any]:
    """a. preview with the pack: succeeds, no mandatory violation."""
    create_stack(sc)
    observed = Observed()
    result = sc.preview(observed)
    require("aimesh-zero-trust" in result.stdout, "the CLI did not load the policy pack")
    require(
        not observed.count("mandatory"),
        f"mandatory violations in the preview: {observed.named('mandatory')}",
    )
    return {
        **_counts(result.change_summary),
        "mandatory_violations": 0,
        "advisory_violations": observed.count("advisory"),
    }


def _canary_percent(isvc: Json | None) -> int | None:
    """The traffic share of an InferenceService's canary (KServe v0.20: `spec.canary[]`)."""
    canaries = ((isvc or {}).get("spec") or {}).get("canary") or []
    return sum(int(c.get("trafficPercent", 0)) for c in canaries) if canaries else None


def _denies_all(policy: Json) -> bool:
    """An AuthorizationPolicy that allows nothing to every workload it covers: ALLOW (the
    default action) with no rules, no selector and no targetRefs (`spec: {}` is one)."""
    spec = policy.get("spec") or {}
    return spec.get("action", "ALLOW") == "ALLOW" and not (
        spec.get("rules") or spec.get("selector") or spec.get("targetRefs")
    )


def semantic_checks(sc: Scenario) -> int:
    """What the platform promises, read back from the API server."""
    api = sc.cluster.api
    config = stack_config(sc.project, "e2e")
    models = config["aimesh:models"]
    checks = 0

    def get(api_version: str, plural: str, name: str, ns: str = "") -> Json:
        obj = api.get(object_path(api_version, plural, name, ns))
        require(obj is not None, f"{plural} {ns}/{name} is not in the API server")
        assert obj is not None
        return obj

    def items(api_version: str, plural: str, ns: str) -> list[Json]:
        return api.items(object_path(api_version, plural, namespace=ns))

    peer = [
        p
        for p in items("security.istio.io/v1", "peerauthentications", "istio-system")
        if not p["spec"].get("selector")
    ]
    require(
        len(peer) == 1 and peer[0]["spec"].get("mtls", {}).get("mode") == "STRICT",
        f"mesh-root PeerAuthentication is not STRICT: {peer}",
    )
    checks += 1
    root = items("security.istio.io/v1", "authorizationpolicies", "istio-system")
    require(
        any(_denies_all(p) for p in root), "no root deny-all AuthorizationPolicy in istio-system"
    )
    checks += 1
    ra = items("security.istio.io/v1", "requestauthentications", "istio-ingress")
    issuers = {r.get("issuer") for x in ra for r in x.get("spec", {}).get("jwtRules", [])}
    for integration in config.get("aimesh:integrations", []):
        require(
            integration["issuer"] in issuers,
            f"no JWT rule for {integration['issuer']} at the gateway",
        )
        checks += 1
    for model in models:
        ns = model.get("namespace", model["name"])
        isvc = get("serving.kserve.io/v1beta1", "inferenceservices", model["name"], ns)
        predictor = isvc["spec"]["predictor"]
        require(
            json.dumps(predictor).find(model["storageUri"]) >= 0,
            f"{model['name']}: InferenceService does not serve {model['storageUri']}",
        )
        if model.get("canary"):
            require(
                _canary_percent(isvc) == model["canary"]["trafficPercent"],
                f"{model['name']}: canary traffic not {model['canary']['trafficPercent']}%",
            )
        policies = items("security.istio.io/v1", "authorizationpolicies", ns)
        allow = [
            p
            for p in policies
            if p["spec"].get("action", "ALLOW") == "ALLOW" and p["spec"].get("rules")
        ]
        deny_all = [p for p in policies if _denies_all(p)]
        require(deny_all, f"{model['name']}: no namespace deny-all")
        principals = json.dumps(allow)
        windows = [p for p in policies if p["metadata"].get("labels", {}).get("aimesh.io/window")]
        for caller in model.get("callers", []):
            principal = f"cluster.local/ns/{caller['namespace']}/sa/{caller['serviceAccount']}"
            if caller.get("windows"):
                # A batch caller's ALLOW is created closed (allows nothing); CronJobs open it
                # during its windows (docs/models.md).
                require(
                    any(not p["spec"].get("rules") for p in windows),
                    f"{model['name']}: no closed window ALLOW for {principal}",
                )
            else:
                require(principal in principals, f"{model['name']}: no ALLOW rule for {principal}")
            checks += 1
        netpols = items("networking.k8s.io/v1", "networkpolicies", ns)
        require(netpols, f"{model['name']}: no NetworkPolicy")
        checks += 4
    telemetry = items("telemetry.istio.io/v1", "telemetries", "istio-system")
    require(
        any(t["spec"].get("accessLogging") for t in telemetry),
        "no mesh-wide access-logging Telemetry",
    )
    rules = items("monitoring.coreos.com/v1", "prometheusrules", "aimesh-observability")
    alerts = [
        r
        for x in rules
        for g in x["spec"].get("groups", [])
        for r in g.get("rules", [])
        if r.get("alert")
    ]
    require(len(alerts) >= 5, f"alert rules missing: {len(alerts)} found")
    return checks + 2


def issued_certificates(sc: Scenario, deployment: Json) -> int:
    """Every Certificate of the stack was issued by cert-manager's controller: Ready, its
    Secret holds the key pair, and the certificate verifies against the CA in that Secret,
    which is aimesh's root CA (the self-signed root signs itself)."""
    api = sc.cluster.api
    certificates = [r for _, r in state_objects(deployment) if r.kind == "Certificate"]
    require(certificates, "the stack has no Certificate (issuerType selfSignedCA makes two)")
    roots: set[str] = set()
    leaves: list[tuple[ObjectRef, str, str]] = []
    for ref in certificates:
        live = api.get(sc.api_resources().path(ref)) or {}
        conditions = (live.get("status") or {}).get("conditions") or []
        require(
            any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
            f"{ref} is not Ready: {conditions}",
        )
        secret = api.get(object_path("v1", "secrets", live["spec"]["secretName"], ref.namespace))
        data = (secret or {}).get("data") or {}
        require(
            data.get("tls.crt") and data.get("tls.key") and data.get("ca.crt"),
            f"{ref}: its Secret holds no key pair",
        )
        cert, ca = (base64.b64decode(data[k]).decode() for k in ("tls.crt", "ca.crt"))
        if live["spec"].get("isCA"):
            roots.add(cert)
        leaves.append((ref, cert, ca))
    with tempfile.TemporaryDirectory() as tmp:
        for ref, cert, ca in leaves:
            require(ca in roots, f"{ref} is not signed by aimesh's root CA")
            (Path(tmp) / "ca.pem").write_text(ca)
            (Path(tmp) / "cert.pem").write_text(cert)
            verified = subprocess.run(
                ["openssl", "verify", "-CAfile", "ca.pem", "cert.pem"],
                cwd=tmp,
                capture_output=True,
                text=True,
                check=False,
            )
            require(verified.returncode == 0, f"{ref}: {verified.stdout}{verified.stderr}")
    return len(leaves)


def step_b_up(sc: Scenario) -> dict[str, Any]:
    """b. up with the pack converges; every object is in the API and says what was meant."""
    result = sc.up()
    deployment = sc.deployment()
    figures = verify_objects(sc.cluster.api, sc.api_resources(), deployment)
    figures["semantic_checks"] = semantic_checks(sc)
    figures["certificates_issued"] = issued_certificates(sc, deployment)
    return {**_counts(result.summary.resource_changes), **figures}


def step_c_no_changes(sc: Scenario) -> dict[str, Any]:
    """c. a second preview shows no change (no perpetual diff)."""
    try:
        result = sc.preview(expect_no_changes=True)
    except auto.CommandError as err:
        raise ScenarioError(
            f"the second preview has changes (perpetual diff):\n{str(err)[-4000:]}"
        ) from None
    return _counts(result.change_summary)


def step_guardrails(sc: Scenario) -> dict[str, Any]:
    """The runtime guardrails the program installed, tried in the API server as a model manager
    and a window controller would (impersonation): every route refused by the guardrail that
    names it, the program's own objects and an injected model Pod admitted
    (tools/guardrail_probe.py, docs/threat-model.md)."""
    from tools import guardrail_probe

    config = guardrail_probe.stack_settings("e2e")
    guardrail_probe.wait_until_enforced(str(sc.cluster.kubeconfig), config)
    outcomes = guardrail_probe.run(str(sc.cluster.kubeconfig), config)
    failed = [
        f"{o.case.name}: expected {o.case.expect}, got {o.got} ({o.detail[:300]})"
        for o in outcomes
        if not o.ok
    ]
    require(not failed, "guardrails did not hold:\n" + "\n".join(failed))
    refused = [o for o in outcomes if o.got not in (guardrail_probe.ADMITTED,)]
    return {
        "cases": len(outcomes),
        "refused": len(refused),
        "guardrails_seen": len({o.got for o in refused} - {"rbac", "pod-security"}),
    }


def step_d_weakening(sc: Scenario, which: str) -> dict[str, Any]:
    """d. a weakening through the escape hatch fails preview and up naming the policy; the
    cluster is unchanged."""
    policy, manifest = WEAKENINGS[which]
    before = object_fingerprints(sc.cluster.api, sc.api_resources(), sc.deployment())
    edit_config(sc.project, "e2e", {"aimesh:extraObjects": [manifest]})
    try:
        for action in ("preview", "up"):
            observed = Observed()
            try:
                sc.preview(observed) if action == "preview" else sc.up(observed)
            except auto.CommandError as err:
                text = str(err)
                require(
                    policy in observed.named("mandatory") and policy in text,
                    f"{action} failed, but {policy} reported no mandatory violation "
                    f"(violations: {observed.violations}):\n{text[-3000:]}",
                )
            else:
                raise ScenarioError(f"{action} succeeded with the {which} weakening")
    finally:
        edit_config(sc.project, "e2e", {"aimesh:extraObjects": None})
    api = sc.cluster.api
    meta = manifest["metadata"]
    ref = ObjectRef(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])
    require(
        api.get(sc.api_resources().path(ref)) is None, f"the weakening {ref} reached the cluster"
    )
    after = object_fingerprints(api, sc.api_resources(), sc.deployment())
    changed = sorted(k for k in before if before[k] != after.get(k))
    require(not changed, f"objects changed by a failed update: {changed[:10]}")
    return {"policy_named": 1, "objects_unchanged": len(before)}


def _group_key(ref: ObjectRef) -> tuple[str, str, str, str]:
    group = ref.api_version.split("/")[0] if "/" in ref.api_version else ""
    return (group, ref.kind, ref.namespace, ref.name)


def _orphans(sc: Scenario) -> list[str]:
    """Objects labelled managed-by aimesh in the cluster that neither the stack nor one of the
    stack's objects (through ownerReferences, in the same namespace) owns."""
    stack = [r for _, r in state_objects(sc.deployment())]
    owned = {_group_key(r) for r in stack}
    extra = [
        "/".join(_group_key(ref))
        for ref, owners in managed_objects(sc.cluster.api, sc.api_resources()).items()
        if _group_key(ref) not in owned
        and not any(
            (r.kind, r.name) in owners and r.namespace in (ref.namespace, "") for r in stack
        )
    ]
    return sorted(extra)


def _changed(summary: Mapping[Any, int] | None) -> int:
    return sum(n for op, n in _counts(summary).items() if op != "same")


def step_e_canary(sc: Scenario) -> dict[str, Any]:
    """e. a canary model version added, up, removed, up: no orphaned object."""
    models = stack_config(sc.project, "e2e")["aimesh:models"]
    index = [m["name"] for m in models].index(CANARY_MODEL)
    model = models[index]
    before = len(state_objects(sc.deployment()))
    models[index] = {
        **model,
        "canary": {"storageUri": model["storageUri"] + "-v2", "trafficPercent": 20},
    }
    edit_config(sc.project, "e2e", {"aimesh:models": models})
    added = sc.up()
    isvc = sc.cluster.api.get(
        object_path(
            "serving.kserve.io/v1beta1",
            "inferenceservices",
            CANARY_MODEL,
            model.get("namespace", CANARY_MODEL),
        )
    )
    require(_canary_percent(isvc) == 20, "the canary is not in the InferenceService")
    with_canary = len(state_objects(sc.deployment()))
    models[index] = model
    edit_config(sc.project, "e2e", {"aimesh:models": models})
    removed = sc.up()
    after = len(state_objects(sc.deployment()))
    orphans = _orphans(sc)
    require(not orphans, f"orphaned objects after removing the canary: {orphans[:10]}")
    require(
        after == before,
        f"the stack has {after} objects after the canary round trip, {before} before",
    )
    return {
        "objects_before": before,
        "objects_with_canary": with_canary,
        "objects_after": after,
        "changed_on_add": _changed(added.summary.resource_changes),
        "changed_on_remove": _changed(removed.summary.resource_changes),
        "orphans": 0,
    }


def step_f_export(sc: Scenario) -> dict[str, Any]:
    """f. `pulumi stack export` holds no secret in plain text."""
    exported = sc.engine.cli("stack", "export", "--stack", "e2e", cwd=sc.project).stdout
    leaks = plaintext_secrets(exported, sc.secret_values)
    require(not leaks, f"plain-text secrets in the stack export: {leaks}")
    return {
        "bytes": len(exported),
        "secret_values_checked": len(sc.secret_values),
        "ciphertexts": exported.count('"ciphertext"'),
    }


def step_g_destroy(sc: Scenario) -> dict[str, Any]:
    """g. destroy leaves no object of the stack."""
    objects = [ref for _, ref in state_objects(sc.deployment())]
    result = sc.the_stack().destroy()
    api, resources = sc.cluster.api, sc.api_resources()

    def gone() -> bool:
        return all(api.get(resources.path(ref)) is None for ref in objects)

    wait_for("every stack object deleted", gone, timeout=180, interval=2)
    leftover: list[str] = []

    def nothing_left() -> bool:
        # Controllers' objects (CertificateRequests) go when the garbage collector sees their
        # owner gone; nothing else may remain.
        leftover[:] = sorted(map(str, managed_objects(api, resources)))
        return not leftover

    try:
        wait_for("no managed-by aimesh object left", nothing_left, timeout=120, interval=2)
    except TimeoutError:
        raise ScenarioError(f"objects left after destroy: {leftover[:10]}") from None
    return {
        "destroyed": _counts(result.summary.resource_changes).get("delete", 0),
        "objects_checked": len(objects),
    }


def step_h_ci_preview(sc: Scenario) -> dict[str, Any]:
    """h. the pull-request workflow's preview of the ci stack (render mode), charts offline."""
    stack = sc.engine.stack(sc.project, "ci")
    edit_config(
        sc.project,
        "ci",
        {
            "aimesh:chartSource": "directory",
            "aimesh:chartDirectory": str(sc.charts),
            "aimesh:bringYourOwn": sorted(BROUGHT),
        },
    )
    observed = Observed()
    result = stack.preview(
        policy_packs=sc.packs["policy_packs"],
        policy_pack_configs=sc.packs["policy_pack_configs"],
        on_event=observed,
    )
    require("aimesh-zero-trust" in result.stdout, "the CLI did not load the policy pack")
    require(
        not observed.count("mandatory"),
        f"mandatory violations in the ci preview: {observed.named('mandatory')}",
    )
    # What the charts rendered, each judged by the pack as a resource of its own.
    rendered = {(urn, rtype) for urn, rtype in observed.resources if f"{RENDERED_CHART}$" in urn}
    kinds = {rtype for _, rtype in rendered}
    require(
        "kubernetes:apps/v1:Deployment" in kinds,
        f"no rendered chart object reached the engine (rendered types: {sorted(kinds)})",
    )
    return {
        **_counts(result.change_summary),
        "rendered_chart_objects": len(rendered),
        "mandatory_violations": 0,
        "advisory_violations": observed.count("advisory"),
    }


# -- the scenario ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step of the scenario: `run` returns the step's figures, raises to fail it."""

    name: str
    description: str
    run: Callable[[Scenario], dict[str, Any]]
    # What the stack needs from the cluster before any scenario step (CRDs, controllers): run
    # even when `--only` names other steps.
    setup: bool = False


# In the order they run; the first failure stops the run. A step that needs the deployed stack
# goes between b-up and g-destroy, one that needs none may go anywhere (docs/e2e.md).
STEPS: list[Step] = [
    Step(
        "bring-your-own",
        "upstream CRDs of the components no module serves",
        bring_your_own,
        setup=True,
    ),
    Step(
        "cert-manager-controller",
        "cert-manager's real controller on the host, against the API server",
        cert_manager_controller,
        setup=True,
    ),
    Step(
        "w-window-reconciler",
        "the reconciler's shipped code, as its own identity, sets its policy back",
        lambda sc: runtime_steps.window_reconciler(sc.cluster),
    ),
    Step("a-preview", "preview with the pack: 0 mandatory violations", step_a_preview),
    Step("b-up", "up converges; every object checked through the API", step_b_up),
    Step("c-no-changes", "preview --expect-no-changes: no perpetual diff", step_c_no_changes),
    Step(
        "guardrails",
        "a model manager's kubectl routes refused in the API server",
        step_guardrails,
    ),
    *(
        Step(
            f"d-weakening-{which}",
            f"stopped by {policy}, cluster unchanged",
            partial(step_d_weakening, which=which),
        )
        for which, (policy, _) in WEAKENINGS.items()
    ),
    Step("e-canary", "canary added, up, removed, up: no orphan", step_e_canary),
    Step("f-export", "stack export holds no plain-text secret", step_f_export),
    Step("g-destroy", "destroy leaves no object of the stack", step_g_destroy),
    Step("h-ci-preview", "the PR workflow's preview: ci stack, offline charts", step_h_ci_preview),
]
