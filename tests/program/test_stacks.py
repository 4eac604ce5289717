"""The whole program for EVERY stack file, config passed the way the engine passes it: it
evaluates, every custom resource waits for the charts behind its CRD and its webhook, control
planes stay out of the mesh, and the outputs a user needs exist."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from aimesh import settings
from aimesh.builders import bring_your_own
from aimesh.components.charts import MIRROR_SUFFIX
from aimesh.namespaces import CONTROL_PLANE_NAMESPACES, INGRESS_NAMESPACE
from tools import offline, schemas

SECRET_SIG = "4dabf18193072939515e22adb298388d"
CHART_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")

# API group -> the charts (by chart name) a custom resource of that group must wait for: the
# one that installs the CRD and the one whose webhook validates it. A group missing here fails
# the test: it means nothing in the program is known to install that CRD.
CRD_CHARTS: dict[str, frozenset[str]] = {
    "cert-manager.io": frozenset({"cert-manager"}),
    "acme.cert-manager.io": frozenset({"cert-manager"}),
    # CRDs from `base`; istiod serves the validating webhook (and base's default validator).
    "networking.istio.io": frozenset({"base", "istiod"}),
    "security.istio.io": frozenset({"base", "istiod"}),
    "telemetry.istio.io": frozenset({"base", "istiod"}),
    "extensions.istio.io": frozenset({"base", "istiod"}),
    "serving.kserve.io": frozenset({"kserve-crd", "kserve-resources"}),
    "monitoring.coreos.com": frozenset({"kube-prometheus-stack"}),
}


# The charts a bring-your-own component (aimesh:bringYourOwn) replaces.
BROUGHT_CHARTS: dict[str, frozenset[str]] = {
    "certManager": frozenset({"cert-manager"}),
    "istio": frozenset({"base", "istiod"}),
    "kserve": frozenset({"kserve-crd", "kserve-resources"}),
    "monitoring": frozenset({"kube-prometheus-stack"}),
}


def charts_by_urn(evaluation: offline.Evaluation) -> dict[str, str]:
    """URN of each chart resource -> its chart's name (`cert-manager`, `istiod`, ...)."""
    return {c.urn: c.name for c in evaluation.chart_installs()}


def custom_resources(evaluation: offline.Evaluation) -> list[offline.Registered]:
    """The program's own custom resources (not what a chart renders)."""
    charts = charts_by_urn(evaluation)
    return [
        r
        for r in evaluation.resources
        if r.type.startswith("kubernetes:")
        and r.type not in CHART_TYPES
        and r.parent not in charts
        and r.custom
        and isinstance(r.inputs.get("kind"), str)
        and schemas.is_custom(r.inputs)
    ]


CRD_TYPE = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"


def waits_for(evaluation: offline.Evaluation, resource: offline.Registered) -> set[str]:
    """Names of the charts `resource` waits for, directly or through what it depends on, and
    of the CRDs of bring-your-own components it checks first (`crd:<name>`)."""
    by_urn = {r.urn: r for r in evaluation.resources}
    seen: set[str] = set()
    todo = list(resource.dependencies)
    while todo:
        urn = todo.pop()
        if urn in seen:
            continue
        seen.add(urn)
        if urn in by_urn:
            todo.extend(by_urn[urn].dependencies)
    names = charts_by_urn(evaluation)
    charts = {names[u] for u in seen if u in names}
    # CRD reads (`.get`) are not registrations, so they appear only as dependency URNs.
    crds = {"crd:" + u.rsplit("-crd-", 1)[-1] for u in seen if f"${CRD_TYPE}::" in u}
    return charts | crds


def stack_settings(stack: str) -> settings.Settings:
    config, _ = offline.stack_config(stack)
    return settings.parse(
        {
            key.split(":", 1)[1]: _decode(value)
            for key, value in config.items()
            if key.startswith("aimesh:")
        }
    )


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _names(resources: Iterable[offline.Registered]) -> list[str]:
    return sorted(f"{r.inputs.get('kind')} {r.name}" for r in resources)


def test_every_stack_file_is_covered() -> None:
    assert {"dev", "prod"} <= set(offline.stacks())


def test_program_evaluates(stack_evaluation: offline.Evaluation) -> None:
    types = {r.type for r in stack_evaluation.resources}
    for token in (
        "aimesh:cluster:Cluster",
        "aimesh:certManager:CertManager",
        "aimesh:istio:Istio",
        "aimesh:kserve:KServe",
    ):
        assert token in types


def test_custom_resources_wait_for_their_crd_and_webhook_charts(
    stack_evaluation: offline.Evaluation,
) -> None:
    resources = custom_resources(stack_evaluation)
    assert resources, "the program registers custom resources; finding none means a broken check"
    config = stack_settings(stack_evaluation.stack)
    if config.cluster_mode == "render":
        # Nothing is applied: the provider writes files (CRDs under 0-crd/, the rest under
        # 1-manifest/) and the GitOps tool orders them. A rendered chart's objects appear only
        # once `helm template` answers, so a dependency on it names none of them.
        pytest.skip(f"{stack_evaluation.stack}: render mode applies nothing, nothing waits")
    brought = config.bring_your_own
    brought_charts = {chart for c in brought for chart in BROUGHT_CHARTS.get(c, ())}
    problems = []
    for resource in resources:
        group = str(resource.inputs["apiVersion"]).rpartition("/")[0]
        required = CRD_CHARTS.get(group)
        if required is None:
            problems.append(f"{resource.name}: no chart of this program installs {group} CRDs")
            continue
        waited = waits_for(stack_evaluation, resource)
        if required & brought_charts:
            # Bring-your-own: the component's chart is not installed; its CRDs are read first.
            if not any(w.startswith("crd:") and w.endswith(f".{group}") for w in waited):
                problems.append(f"{resource.name} does not wait for the check of {group} CRDs")
            continue
        missing = required - waited
        if missing:
            problems.append(
                f"{resource.name} ({resource.inputs['kind']}) does not wait for {sorted(missing)}"
            )
    assert problems == []


def test_the_dependency_check_can_fail(stack_evaluation: offline.Evaluation) -> None:
    """A resource that waits for nothing is reported."""
    (issuer_chart,) = [
        r
        for r in stack_evaluation.resources
        if charts_by_urn(stack_evaluation).get(r.urn) == "cert-manager"
    ]
    assert waits_for(stack_evaluation, issuer_chart) == set()


def test_control_plane_namespaces_are_not_injected(stack_evaluation: offline.Evaluation) -> None:
    labels = {
        m["metadata"]["name"]: (m["metadata"].get("labels") or {}).get("istio-injection")
        for m in stack_evaluation.find("Namespace")
    }
    # Namespaces of bring-your-own components belong to the platform team's own install.
    foreign = bring_your_own.foreign_namespaces(stack_settings(stack_evaluation.stack))
    for name in set(CONTROL_PLANE_NAMESPACES) - foreign:
        assert labels.get(name) == "disabled", name
    if INGRESS_NAMESPACE not in foreign:
        assert labels.get(INGRESS_NAMESPACE) == "enabled"
    assert not foreign & set(labels), "aimesh must not create a bring-your-own namespace"
    opted_out = {n for n, v in labels.items() if v == "disabled"}
    assert opted_out <= set(CONTROL_PLANE_NAMESPACES), "only control planes may leave the mesh"


def test_outputs_a_user_needs(stack_evaluation: offline.Evaluation) -> None:
    outputs = stack_evaluation.outputs
    kubeconfig = outputs["kubeconfig"]
    assert isinstance(kubeconfig, dict)
    assert SECRET_SIG in kubeconfig, "kubeconfig must be a secret output"
    assert "gatewayAddress" in outputs
    assert isinstance(outputs["modelEndpoints"], dict)


@pytest.mark.parametrize("stack", offline.stacks())
def test_every_model_has_an_endpoint(stack: str) -> None:
    from tests.conftest import evaluated

    config = stack_settings(stack)
    endpoints = evaluated(stack).outputs["modelEndpoints"]
    assert set(endpoints) == {m.name for m in config.models}
    for model in config.models:
        assert endpoints[model.name].startswith(f"https://{model.name}.{config.gateway_domain}")


@pytest.mark.parametrize("stack", offline.stacks())
def test_stack_gateway_address(stack: str) -> None:
    from tests.conftest import evaluated

    config = stack_settings(stack)
    address = evaluated(stack).outputs["gatewayAddress"]
    if config.cluster_mode == "kind":
        assert address == f"127.0.0.1:{config.kind_https_port}"
    elif config.cluster_mode == "render":
        assert address == ""


# ---- the real path: `make up` / `make preview` -------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def make_recipe(target: str) -> tuple[list[str], str]:
    """(prerequisites, recipe text with `$(name)` defines expanded) of a Makefile target."""
    text = (ROOT / "Makefile").read_text()
    defines = dict(re.findall(r"^define (\w+)\n(.*?)^endef$", text, flags=re.M | re.S))
    match = re.search(
        rf"^{re.escape(target)}:([^#\n]*)(?:##[^\n]*)?\n((?:\t[^\n]*\n?)*)", text, flags=re.M
    )
    assert match, f"no `{target}` target in the Makefile"
    recipe = match.group(2)
    for name, body in defines.items():
        recipe = recipe.replace(f"$({name})", body)
    return match.group(1).split(), recipe


@pytest.mark.parametrize("stack", offline.stacks())
def test_make_up_does_not_preview_charts_on_a_cluster_it_has_not_created(stack: str) -> None:
    """On kind the provider's kubeconfig is the kind command's stdout, unknown in a preview
    before the cluster exists, and the engine refuses to construct a Helm v4 Chart on such a
    provider. `make up` must therefore go straight to the update."""
    from tests.conftest import evaluated

    evaluation = evaluated(stack)
    charts = [r for r in evaluation.resources if r.type == "kubernetes:helm.sh/v4:Chart"]
    if stack_settings(stack).cluster_mode != "kind" or not charts:
        pytest.skip(f"{stack}: no v4 Chart on a cluster the program creates")
    (kind,) = [r for r in evaluation.resources if r.type == "command:local:Command"]
    (provider,) = [
        r
        for r in evaluation.resources
        if r.type == "pulumi:providers:kubernetes" and not r.name.endswith(MIRROR_SUFFIX)
    ]
    assert kind.urn in provider.dependencies  # the kubeconfig comes from the kind command
    _, recipe = make_recipe("up")
    (up,) = [line for line in recipe.splitlines() if "pulumi up" in line]
    assert "--skip-preview" in up


@pytest.mark.parametrize("target", ["up", "preview"])
def test_make_prepares_state_dir_and_policy_pack_venv(target: str) -> None:
    prerequisites, recipe = make_recipe(target)
    # prerequisites are checked (and missing tools named) before anything is installed
    assert prerequisites[0] == "prereqs"
    # the file backend opens an existing directory only
    backend = re.search(r"PULUMI_BACKEND_URL \?= file://(\S+)", (ROOT / "Makefile").read_text())
    assert backend
    assert f"mkdir -p {backend.group(1)}" in recipe
    # the CLI runs a local policy pack from the virtualenv PulumiPolicy.yaml names, never
    # creating it: `ensure` (a prerequisite) builds it from the pack's lock
    pack = yaml.safe_load((ROOT / "policy-pack" / "PulumiPolicy.yaml").read_text())
    venv = f"policy-pack/{pack['runtime']['options']['virtualenv']}"
    assert "ensure" in prerequisites
    ensure_prerequisites, _ = make_recipe("ensure")
    assert f"{venv}/.installed" in ensure_prerequisites
    stamp_prerequisites, stamp = make_recipe(f"{venv}/.installed")
    assert stamp_prerequisites == ["policy-pack/requirements.txt"]
    assert f"venv_from_lock,{venv},policy-pack/requirements.txt" in stamp


def test_make_up_runs_the_offline_policy_check_before_touching_a_cluster() -> None:
    """`make up` skips the preview (see above), so the pack's verdict comes from `make check`
    first: a mandatory violation stops it before kind or any resource is created."""
    prerequisites, _ = make_recipe("up")
    assert "check" in prerequisites
    assert prerequisites.index("prereqs") < prerequisites.index("check")


# ---- the production stack as shipped -----------------------------------------------------------


@pytest.mark.parametrize("stack", offline.stacks())
def test_no_stack_file_ships_a_secret(stack: str) -> None:
    """Secrets are set per deployment with `pulumi config set --secret` (encrypted with that
    stack's own key); a `secure:` value in a shipped file could only be a placeholder the CLI
    fails to decrypt, with an error that does not say what to do."""
    text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
    assert "secure:" not in text
    assert "encryptionsalt" not in text


def test_prod_as_shipped_stops_before_any_resource_with_one_fix_per_missing_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorded: list[offline.Evaluation] = []

    class Recording(offline.Evaluation):
        def __init__(self) -> None:
            super().__init__()
            recorded.append(self)

    monkeypatch.setattr(offline, "Evaluation", Recording)
    config, secret_keys = offline.stack_config("prod", stand_ins=False)
    with pytest.raises(pulumi.RunError) as raised:
        offline.evaluate(config, secret_keys=secret_keys, stack="prod")
    message = str(raised.value)
    assert recorded
    assert recorded[-1].resources == [], "a resource was registered"
    secrets = ["siemSinks[0].token", "alertReceivers[0].credential", "alertReceivers[1].credential"]
    for key in secrets:
        assert f"  - aimesh:{key}: required secret is not set" in message
        assert f"pulumi config set --stack prod --secret --path 'aimesh:{key}'\n" in (
            message + "\n"
        )
    assert "  - aimesh:meshCaCertificate: required value is not set" in message
    assert "pulumi config set --stack prod 'aimesh:meshCaCertificate' < " in message
    assert "  - aimesh:meshCaKey: required secret is not set" in message
    assert "pulumi config set --stack prod --secret 'aimesh:meshCaKey' < " in message
    assert "  - aimesh:meshTrustRoots[0]: required value is not set" in message
    assert "pulumi config set --stack prod --path 'aimesh:meshTrustRoots[0].pem' < " in message
    assert message.count("\n  - aimesh:") == 6, "one error per missing key"
    assert "Pulumi.prod.yaml lacks 6 required value(s)" in message
    # With the values set (here: stand-ins), the same stack evaluates.
    _, _, missing = offline.stack_inputs("prod")
    assert [m.key for m in missing] == [
        *secrets,
        "meshCaCertificate",
        "meshCaKey",
        "meshTrustRoots[0]",
    ]
