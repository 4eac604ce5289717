"""The platform components (Cluster, CertManager, Istio, KServe) under Pulumi mocks: what they
register per cluster mode, how each chart is installed, and what waits for what."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from aimesh import versions
from aimesh.components import charts
from aimesh.components import istio as istio_component
from aimesh.components.charts import MIRROR_SUFFIX
from tools import offline

# The platform alone, wired the way __main__.py wires it.
PROGRAM = """
import pulumi

from aimesh import settings
from aimesh.components import (
    CertManager, CertManagerArgs, Cluster, ClusterArgs, Istio, IstioArgs, KServe, KServeArgs
)

config = settings.load()
cluster = Cluster("aimesh", ClusterArgs(config))


def on_cluster(*after):
    return pulumi.ResourceOptions(
        providers={"kubernetes": cluster.provider}, depends_on=[r for g in after for r in g]
    )


cert_manager = CertManager("aimesh", CertManagerArgs(config), opts=on_cluster())
istio = Istio("aimesh", IstioArgs(config), opts=on_cluster(cert_manager.ready))
kserve = KServe("aimesh", KServeArgs(config), opts=on_cluster(cert_manager.ready, istio.ready))
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("gatewayAddress", istio.gateway_address)
pulumi.export("issuer", cert_manager.issuer)
"""

RELEASE = "kubernetes:helm.sh/v3:Release"
CHART = "kubernetes:helm.sh/v4:Chart"
TEMPLATE = "kubernetes:helm.sh/v3:Chart"
EXISTING: dict[str, Any] = {"clusterMode": "existing", "kubeContext": "prod"}
SECRET_SIG = "4dabf18193072939515e22adb298388d"


def _evaluate(
    tmp_path: Path, *, invokes: offline.Invokes = offline.no_rendering, **config: Any
) -> offline.Evaluation:
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    values = offline.project_defaults()
    values.update({f"aimesh:{k}": v for k, v in config.items()})
    encoded, secrets = offline.encode_config(values)
    return offline.evaluate(encoded, secret_keys=secrets, program=program, invokes=invokes)


def _one(evaluation: offline.Evaluation, name: str) -> offline.Registered:
    (found,) = [r for r in evaluation.resources if r.name == name]
    return found


def _charts(evaluation: offline.Evaluation) -> dict[str, offline.Registered]:
    """The charts installed (on the cluster, or rendered in render mode), not the Releases'
    render-only mirrors (Helm v3 Charts on a `-rendered` provider)."""
    installed = {c.urn for c in evaluation.chart_installs()}
    return {r.name: r for r in evaluation.resources if r.urn in installed}


def _depends_on(evaluation: offline.Evaluation, name: str, *others: str) -> bool:
    deps = set(_one(evaluation, name).dependencies)
    return all(_one(evaluation, other).urn in deps for other in others)


@pytest.fixture(scope="module")
def kind(tmp_path_factory: pytest.TempPathFactory) -> offline.Evaluation:
    return _evaluate(tmp_path_factory.mktemp("kind"), kindHttpPort=9080, kindHttpsPort=9443)


@pytest.fixture(scope="module")
def existing(tmp_path_factory: pytest.TempPathFactory) -> offline.Evaluation:
    return _evaluate(tmp_path_factory.mktemp("existing"), **EXISTING, kserveControllerReplicas=2)


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory) -> offline.Evaluation:
    return _evaluate(
        tmp_path_factory.mktemp("render"), clusterMode="render", kserveControllerReplicas=2
    )


# ---- Cluster ------------------------------------------------------------------------------


def test_kind_cluster_is_created_and_deleted_by_a_command(kind: offline.Evaluation) -> None:
    command = _one(kind, "aimesh-kind")
    assert command.type == "command:local:Command"
    assert command.inputs["create"].startswith("kind create cluster --name aimesh")
    assert command.inputs["delete"] == "kind delete cluster --name aimesh"
    config = yaml.safe_load(command.inputs["stdin"])
    assert config["nodes"][0]["image"] == versions.KIND_NODE_IMAGE
    ports = {m["containerPort"]: m["hostPort"] for m in config["nodes"][0]["extraPortMappings"]}
    assert ports == {30080: 9080, 30443: 9443}
    # The kubeconfig on stdout must not end up in the logs.
    assert command.inputs["logging"] == "stderr"


def test_kind_provider_uses_the_kubeconfig_kind_printed(kind: offline.Evaluation) -> None:
    provider = _one(kind, "aimesh-k8s")
    assert provider.type == "pulumi:providers:kubernetes"
    assert _one(kind, "aimesh-kind").urn in provider.dependencies
    # The provider input stays secret too.
    assert SECRET_SIG in provider.inputs["kubeconfig"]
    assert "kind cluster" in provider.inputs["kubeconfig"]["value"]
    assert "renderYamlToDirectory" not in provider.inputs


def test_kubeconfig_output_is_secret(kind: offline.Evaluation) -> None:
    kubeconfig = kind.outputs["kubeconfig"]
    assert isinstance(kubeconfig, dict)
    assert SECRET_SIG in kubeconfig
    assert "kind cluster" in kubeconfig["value"]


def test_kind_gateway_address_is_the_host_port(kind: offline.Evaluation) -> None:
    assert kind.outputs["gatewayAddress"] == "127.0.0.1:9443"


def test_existing_cluster_uses_the_configured_context(existing: offline.Evaluation) -> None:
    assert not [r for r in existing.resources if r.type.startswith("command:")]
    provider = _one(existing, "aimesh-k8s")
    assert provider.inputs["context"] == "prod"
    assert "renderYamlToDirectory" not in provider.inputs


def test_render_mode_needs_no_cluster(render: offline.Evaluation) -> None:
    assert not [r for r in render.resources if r.type.startswith("command:")]
    provider = _one(render, "aimesh-k8s")
    assert provider.inputs["renderYamlToDirectory"] == "rendered"
    assert "kubeconfig" not in provider.inputs
    assert render.outputs["gatewayAddress"] == ""


def test_every_kubernetes_object_goes_through_the_cluster_provider(
    existing: offline.Evaluation,
) -> None:
    provider = _one(existing, "aimesh-k8s")
    kube = [
        r
        for r in existing.resources
        if r.type.startswith("kubernetes:") and r.type != charts.TEMPLATE_TYPE
    ]
    assert kube
    for resource in kube:
        assert resource.provider.startswith(provider.urn), resource.name


def test_every_release_is_mirrored_for_the_pack_on_a_provider_that_only_renders(
    existing: offline.Evaluation,
) -> None:
    releases = [r for r in existing.resources if r.type == RELEASE]
    assert {r.name for r in releases} == {
        "aimesh-cert-manager",
        "aimesh-istio-base",
        "aimesh-istiod",
    }
    for release in releases:
        (provider,) = [
            r
            for r in existing.resources
            if r.type == "pulumi:providers:kubernetes" and r.name == release.name + MIRROR_SUFFIX
        ]
        # It never reaches the cluster: the provider only writes YAML.
        assert provider.inputs == {
            "renderYamlToDirectory": f"rendered/releases/{release.inputs['name']}"
        }
        # A Helm v3 Chart named like the release (Helm renders that name into object names),
        # parented with the Release, waiting for nothing; its objects are on that provider
        # (tests/policy/test_release_visibility.py).
        (mirror,) = [
            r
            for r in existing.resources
            if r.type == charts.TEMPLATE_TYPE and r.name == release.inputs["name"]
        ]
        assert mirror.parent == release.parent
        assert mirror.dependencies == []


def test_the_mirror_renders_the_releases_inputs_for_the_targeted_kubernetes(
    tmp_path: Path,
) -> None:
    # What the program asks Helm to render for each mirror (`kubernetes:helm:template`): the
    # Release's chart, version, repository, namespace, CRD switch and values, for the version
    # the stack targets (cert-manager's chart refuses Helm's default, v1.20.0).
    asked: list[dict[str, Any]] = []

    def helm(token: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if token == offline.HELM_TEMPLATE:
            asked.append(json.loads(args["jsonOpts"]))
        return {"result": []}

    evaluation = _evaluate(tmp_path, invokes=helm, **EXISTING)
    releases = {r.inputs["name"]: r.inputs for r in evaluation.resources if r.type == RELEASE}
    assert {a["release_name"] for a in asked} == set(releases)
    for opts in asked:
        release = releases[opts["release_name"]]
        assert opts["chart"] == release["chart"]
        assert opts["version"] == release["version"]
        assert opts["namespace"] == release["namespace"]
        assert opts["values"] == release["values"]
        assert opts.get("fetch_opts", {}).get("repo") == (release.get("repositoryOpts") or {}).get(
            "repo"
        )
        assert bool(opts.get("skip_crd_rendering")) == bool(release.get("skipCrds"))
        assert opts["kube_version"] == versions.KUBERNETES_SCHEMA_VERSION


def test_render_mode_has_no_release_to_mirror(render: offline.Evaluation) -> None:
    assert not [r for r in render.resources if r.name.endswith(MIRROR_SUFFIX)]


# ---- How each chart is installed ------------------------------------------------------------


def test_chart_methods_on_a_cluster(existing: offline.Evaluation) -> None:
    methods = {name: r.type for name, r in _charts(existing).items()}
    assert methods == {
        # Hooks (startupapicheck) / webhooks istiod rewrites at runtime: Helm releases.
        "aimesh-cert-manager": RELEASE,
        "aimesh-istio-base": RELEASE,
        "aimesh-istiod": RELEASE,
        # Everything else: v4 Charts, every object visible to CrossGuard.
        "aimesh-istio-cni": CHART,
        "aimesh-ingressgateway": CHART,
        "aimesh-kserve-crd": CHART,
        "aimesh-kserve": CHART,
        "aimesh-kserve-runtimes": CHART,
    }


def _templates(evaluation: offline.Evaluation) -> dict[str, dict[str, Any]]:
    """The options of each `helm template` the provider was asked for, by release."""
    found: dict[str, dict[str, Any]] = {}
    for token, args in evaluation.calls:
        if token == "kubernetes:helm:template":
            opts = json.loads(args["jsonOpts"])
            found[opts["release_name"]] = opts
    return found


def test_render_mode_renders_every_chart_for_the_stacks_kubernetes(
    render: offline.Evaluation,
) -> None:
    charts = _charts(render)
    # Helm v3 Charts, named by their release (Helm renders it into object names).
    assert {r.type for r in charts.values()} == {TEMPLATE}
    assert set(charts) == {
        "cert-manager", "istio-base", "istio-cni", "istiod", "aimesh-ingressgateway", "kserve-crd",
        "kserve", "kserve-runtime-configs",
    }  # fmt: skip
    templates = _templates(render)
    assert set(templates) == set(charts)
    for release, opts in templates.items():
        # Not Helm's built-in v1.20.0: charts requiring a newer Kubernetes render.
        assert opts["kube_version"] == "v1.35", release
        assert opts["values"] is not None, release
    assert templates["cert-manager"]["chart"] == "cert-manager"
    assert templates["cert-manager"]["version"] == versions.CERT_MANAGER
    assert templates["cert-manager"]["fetch_opts"]["repo"] == versions.CERT_MANAGER_REPO
    assert templates["cert-manager"]["namespace"] == "cert-manager"
    # OCI charts are pulled by reference, no repository.
    assert templates["kserve"]["chart"].startswith("oci://")
    assert templates["kserve"].get("fetch_opts") is None


def test_render_mode_kubernetes_version_and_chart_directory(tmp_path: Path) -> None:
    (tmp_path / "charts").mkdir()
    archive = tmp_path / "charts" / f"cert-manager-{versions.CERT_MANAGER}.tgz"
    archive.write_bytes(b"")
    evaluation = _evaluate(
        tmp_path,
        clusterMode="render",
        kubernetesVersion="v1.33.4",
        chartSource="directory",
        chartDirectory=str(tmp_path / "charts"),
        bringYourOwn=["istio", "kserve"],
    )
    (opts,) = _templates(evaluation).values()
    assert opts["kube_version"] == "v1.33.4"
    # A local archive is loaded from its path, never fetched.
    assert opts["path"] == str(archive.resolve())
    assert opts.get("fetch_opts") is None


def test_rendered_objects_are_registered_as_typed_children(tmp_path: Path) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "cert-manager", "namespace": "cert-manager"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
    }

    def invokes(token: str, args: Any) -> dict[str, Any]:
        if token == "kubernetes:helm:template":
            opts = json.loads(args["jsonOpts"])
            return {"result": [deployment] if opts["release_name"] == "cert-manager" else []}
        return {}

    evaluation = _evaluate(tmp_path, invokes=invokes, clusterMode="render")
    chart = _charts(evaluation)["cert-manager"]
    (child,) = [r for r in evaluation.resources if r.parent == chart.urn]
    # What the policy pack judges: a typed resource with the rendered object as its inputs.
    assert child.type == "kubernetes:apps/v1:Deployment"
    assert child.inputs["metadata"]["name"] == "cert-manager"
    assert child.inputs["spec"] == deployment["spec"]


def test_releases_wait_for_readiness_and_hook_jobs(existing: offline.Evaluation) -> None:
    for name in ("aimesh-cert-manager", "aimesh-istio-base", "aimesh-istiod"):
        inputs = _one(existing, name).inputs
        assert inputs.get("skipAwait", False) is False
        assert inputs["waitForJobs"] is True
        assert inputs.get("createNamespace", False) is False


@pytest.mark.parametrize(
    ("name", "release", "chart", "version", "repo"),
    [
        (
            "aimesh-cert-manager",
            "cert-manager",
            "cert-manager",
            versions.CERT_MANAGER,
            versions.CERT_MANAGER_REPO,
        ),
        ("aimesh-istio-base", "istio-base", "base", versions.ISTIO, versions.ISTIO_REPO),
        ("aimesh-istiod", "istiod", "istiod", versions.ISTIO, versions.ISTIO_REPO),
        ("aimesh-istio-cni", "istio-cni", "cni", versions.ISTIO, versions.ISTIO_REPO),
        (
            "aimesh-ingressgateway",
            "aimesh-ingressgateway",
            "gateway",
            versions.ISTIO,
            versions.ISTIO_REPO,
        ),
        (
            "aimesh-kserve-crd",
            "kserve-crd",
            f"{versions.KSERVE_OCI}/kserve-crd",
            versions.KSERVE,
            None,
        ),
        (
            "aimesh-kserve",
            "kserve",
            f"{versions.KSERVE_OCI}/kserve-resources",
            versions.KSERVE,
            None,
        ),
    ],
)
def test_charts_are_pinned(
    existing: offline.Evaluation,
    name: str,
    release: str,
    chart: str,
    version: str,
    repo: str | None,
) -> None:
    inputs = _one(existing, name).inputs
    assert (inputs["name"], inputs["chart"], inputs["version"]) == (release, chart, version)
    assert (inputs.get("repositoryOpts") or {}).get("repo") == repo


def test_kserve_resources_leaves_crds_to_kserve_crd(existing: offline.Evaluation) -> None:
    assert _one(existing, "aimesh-kserve").inputs["skipCrds"] is True


def test_runtimes_chart_is_optional(tmp_path: Path) -> None:
    evaluation = _evaluate(tmp_path, kserveRuntimes=False)
    assert "aimesh-kserve-runtimes" not in _charts(evaluation)


def test_controller_replicas_patch(existing: offline.Evaluation, kind: offline.Evaluation) -> None:
    patch = _one(existing, "aimesh-kserve-controller-replicas")
    assert patch.type == "kubernetes:apps/v1:DeploymentPatch"
    assert patch.inputs["spec"] == {"replicas": 2}
    assert _depends_on(existing, "aimesh-kserve-controller-replicas", "aimesh-kserve")
    assert not [r for r in kind.resources if r.name == "aimesh-kserve-controller-replicas"]


# ---- Order: what waits for what ---------------------------------------------------------------


def test_issuer_chain_waits_for_cert_manager_and_each_other(kind: offline.Evaluation) -> None:
    assert _depends_on(kind, "aimesh-aimesh-selfsigned", "aimesh-cert-manager")
    assert _depends_on(
        kind, "aimesh-aimesh-root-ca", "aimesh-cert-manager", "aimesh-aimesh-selfsigned"
    )
    assert _depends_on(kind, "aimesh-aimesh-ca", "aimesh-cert-manager", "aimesh-aimesh-root-ca")


def test_istio_order(kind: offline.Evaluation) -> None:
    assert _depends_on(kind, "aimesh-istio-base", "aimesh-istio-system-ns")
    assert _depends_on(kind, "aimesh-istiod", "aimesh-istio-base")
    # Injected pods need the CNI node agent's redirection before istiod injects any.
    assert _depends_on(kind, "aimesh-istiod", "aimesh-istio-cni")
    # Gateway pods are injected by istiod into the injected namespace.
    assert _depends_on(kind, "aimesh-ingressgateway", "aimesh-istiod", "aimesh-istio-ingress-ns")


def test_istio_waits_for_what_it_is_given(kind: offline.Evaluation) -> None:
    assert _depends_on(kind, "aimesh-istio-base", "aimesh-cert-manager", "aimesh-aimesh-ca")


def test_kserve_order(kind: offline.Evaluation) -> None:
    # The controller chart holds cert-manager objects and webhooks for the CRDs.
    assert _depends_on(kind, "aimesh-kserve", "aimesh-kserve-crd", "aimesh-kserve-ns")
    assert _depends_on(kind, "aimesh-kserve", "aimesh-cert-manager", "aimesh-istiod")
    # ClusterServingRuntimes need the CRDs and the controller's validating webhook.
    assert _depends_on(kind, "aimesh-kserve-runtimes", "aimesh-kserve-crd", "aimesh-kserve")


def test_charts_wait_for_their_namespace(kind: offline.Evaluation) -> None:
    assert _depends_on(kind, "aimesh-cert-manager", "aimesh-cert-manager-ns")
    assert _depends_on(kind, "aimesh-kserve-crd", "aimesh-kserve-ns")


# ---- Structure ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "children"),
    [
        ("aimesh:cluster:Cluster", {"aimesh-kind", "aimesh-k8s"}),
        (
            "aimesh:certManager:CertManager",
            {
                "aimesh-cert-manager-ns",
                "aimesh-cert-manager",
                "aimesh-aimesh-selfsigned",
                "aimesh-aimesh-root-ca",
                "aimesh-aimesh-ca",
            },
        ),
        (
            "aimesh:istio:Istio",
            {
                "aimesh-istio-system-ns",
                "aimesh-istio-ingress-ns",
                "aimesh-istio-base",
                "aimesh-istio-cni",
                "aimesh-istiod",
                "aimesh-ingressgateway",
            },
        ),
        (
            "aimesh:kserve:KServe",
            {"aimesh-kserve-ns", "aimesh-kserve-crd", "aimesh-kserve", "aimesh-kserve-runtimes"},
        ),
    ],
)
def test_components_parent_their_children(
    kind: offline.Evaluation, token: str, children: set[str]
) -> None:
    (component,) = [r for r in kind.resources if r.type == token]
    assert {
        r.name
        for r in kind.resources
        if r.parent == component.urn
        and not r.name.endswith(MIRROR_SUFFIX)
        and r.type != charts.TEMPLATE_TYPE
    } == children


def test_namespaces(kind: offline.Evaluation) -> None:
    labels = {
        m["metadata"]["name"]: m["metadata"]["labels"]["istio-injection"]
        for m in kind.find("Namespace")
    }
    assert labels == {
        "cert-manager": "disabled",
        "istio-system": "disabled",
        "kserve": "disabled",
        "istio-ingress": "enabled",
    }


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, {"name": "aimesh-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}),
        (
            {"issuerType": "existing", "existingIssuerName": "vault"},
            {"name": "vault", "kind": "ClusterIssuer", "group": "cert-manager.io"},
        ),
    ],
)
def test_issuer_output(tmp_path: Path, config: dict[str, Any], expected: dict[str, str]) -> None:
    evaluation = _evaluate(tmp_path, **config)
    assert evaluation.outputs["issuer"] == expected
    if config.get("issuerType") == "existing":
        assert not evaluation.find("ClusterIssuer")
        assert not evaluation.find("Certificate")


def test_render_mode_skips_the_replicas_patch(render: offline.Evaluation) -> None:
    assert not [r for r in render.resources if r.type.endswith("Patch")]


# ---- The LoadBalancer address read back from the gateway chart --------------------------------


def _service(name: str, ip: str | None = None, hostname: str | None = None) -> tuple[Any, Any]:
    ingress = [SimpleNamespace(ip=ip, hostname=hostname)] if (ip or hostname) else []
    return SimpleNamespace(name=name), SimpleNamespace(
        load_balancer=SimpleNamespace(ingress=ingress)
    )


@pytest.mark.parametrize(
    ("services", "expected"),
    [
        ([_service("aimesh-ingressgateway", ip="203.0.113.7")], "203.0.113.7"),
        ([_service("aimesh-ingressgateway", hostname="lb.example.com")], "lb.example.com"),
        # Another Service of the chart never answers for the gateway.
        ([_service("other", ip="198.51.100.1"), _service("aimesh-ingressgateway")], "pending"),
        ([], "pending"),
    ],
)
def test_load_balancer_address(services: list[tuple[Any, Any]], expected: str) -> None:
    assert istio_component._pick_address(services).startswith(expected)


def test_existing_cluster_reads_the_address_from_the_gateway_chart(
    existing: offline.Evaluation,
) -> None:
    # Unknown until the cluster has assigned it (a preview cannot know it).
    assert "gatewayAddress" in existing.outputs
    assert not isinstance(existing.outputs["gatewayAddress"], str)


@pytest.mark.parametrize(
    ("hooks", "mutated", "render", "expected"),
    [
        (False, False, False, "chart"),
        (True, False, False, "release"),
        (False, True, False, "release"),
        # A Release cannot render to a directory, a v4 Chart cannot be told the Kubernetes
        # version: render mode is always a v3 Chart (helm template).
        (True, True, True, "template"),
        (False, False, True, "template"),
    ],
)
def test_chart_method_rule(hooks: bool, mutated: bool, render: bool, expected: str) -> None:
    spec = charts.ChartSpec(
        release="r", chart="c", version="1", namespace="n", hooks=hooks, mutated_at_runtime=mutated
    )
    assert charts.method(spec, render=render) == expected
