"""Try the runtime guardrails against a real API server, as a model manager and a window
controller would, through impersonation; report every verdict.

    python -m tools.guardrail_probe --kubeconfig admin.kubeconfig [--stack dev] [--install]

The kubeconfig's identity must be allowed to impersonate (a cluster admin). `--install` first
applies what the program would (Istio's and KServe's InferenceService CRDs from the upstream
reference data, the guardrails, the guarded namespaces and the stack's model objects), for an
API server the program did not deploy to; without it the stack must already be up.

Every case says who acts, what they do and what must happen: admitted, refused by a named
guardrail (the API server's "ValidatingAdmissionPolicy '<name>' ... denied request"), refused
by Pod Security, or refused by RBAC. Exit status 1 when any verdict differs.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimesh import settings
from aimesh.builders import gateway, guardrails, secure_model
from aimesh.builders.cluster import namespace as platform_namespace
from aimesh.builders.secure_model import windows
from aimesh.namespaces import INGRESS_NAMESPACE
from tools import manager_attacks, offline, schemas

ADMIN = "admin"
ADMITTED = "admitted"
RBAC = "rbac"
POD_SECURITY = "pod-security"


@dataclass(frozen=True)
class Identity:
    """Who acts: the kubeconfig's own identity, or one it impersonates."""

    user: str = ADMIN
    groups: tuple[str, ...] = ()

    def headers(self) -> dict[str, str]:
        if self.user == ADMIN:
            return {}
        headers = {"Impersonate-User": self.user}
        if self.groups:
            # One group is enough for every case here (urllib3 cannot repeat a header).
            headers["Impersonate-Group"] = self.groups[0]
        return headers


@dataclass(frozen=True)
class Case:
    name: str
    who: Identity
    run: Callable[[Any], None]  # raises kubernetes' ApiException when refused
    expect: str  # ADMITTED, RBAC, POD_SECURITY, or a guardrail name


@dataclass(frozen=True)
class Outcome:
    case: Case
    got: str
    detail: str

    @property
    def ok(self) -> bool:
        return self.got == self.case.expect


def stack_settings(stack: str) -> settings.Settings:
    config, _ = offline.stack_config(stack)
    raw = {k.split(":", 1)[1]: settings.decode_value(v) for k, v in config.items()}
    return settings.parse(raw)


def _client(kubeconfig: str, who: Identity) -> Any:
    from kubernetes import config, dynamic

    api = config.new_client_from_config(  # type: ignore[no-untyped-call] # untyped loader
        config_file=kubeconfig, persist_config=False
    )
    for key, value in who.headers().items():
        api.set_default_header(key, value)
    return dynamic.DynamicClient(api)  # type: ignore[no-untyped-call] # untyped client


def _resource(client: Any, api_version: str, kind: str, timeout: float = 60) -> Any:
    """The API resource of a kind; a CRD just created is served once it is Established, so
    discovery is asked again until then."""
    import time

    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            if time.monotonic() > deadline:
                raise
            client.resources.invalidate_cache()
            time.sleep(1)


def _apply(client: Any, manifest: dict[str, Any], dry_run: bool = False) -> None:
    resource = _resource(client, manifest["apiVersion"], manifest["kind"])
    meta = manifest["metadata"]
    extra = {"dry_run": "All"} if dry_run else {}
    client.server_side_apply(
        resource,
        body=manifest,
        name=meta["name"],
        namespace=meta.get("namespace"),
        field_manager="guardrail-probe",
        force_conflicts=True,
        **extra,
    )


def _verdict(error: Exception | None) -> tuple[str, str]:
    if error is None:
        return ADMITTED, ""
    body = str(getattr(error, "body", "") or error)
    status = getattr(error, "status", None)
    try:
        message = str(json.loads(body).get("message", body))
    except (ValueError, AttributeError):
        message = body
    if "ValidatingAdmissionPolicy '" in message:
        return message.split("ValidatingAdmissionPolicy '", 1)[1].split("'", 1)[0], message
    if "violates PodSecurity" in message:
        return POD_SECURITY, message
    if status == 403 and "cannot " in message:
        return RBAC, message
    return f"error {status}", message


def _upstream_crds() -> list[dict[str, Any]]:
    documents = list(schemas.load_yaml_documents(schemas.upstream("istio/crds.yaml")))
    isvc = schemas.upstream("kserve/crds/serving.kserve.io_inferenceservices.yaml")
    documents += list(schemas.load_yaml_documents(isvc))
    return [d for d in documents if isinstance(d, dict) and d.get("kind")]


def install(kubeconfig: str, config: settings.Settings) -> None:
    """What `pulumi up` would create that the cases need, applied by the admin."""
    admin = _client(kubeconfig, Identity())
    for crd in _upstream_crds():
        _apply(admin, crd)
    ref = gateway.reference(config)
    for manifest in guardrails.manifests(config, ref):
        _apply(admin, manifest)
    for ns in guardrails.scope(config).platform:
        _apply(admin, platform_namespace(ns, injected=ns == INGRESS_NAMESPACE))
    for model in config.models:
        objects = secure_model.build(config, model, ref)
        for manifest in objects.all():
            _apply(admin, manifest)
    wait_until_enforced(kubeconfig, config)


def wait_until_enforced(kubeconfig: str, config: settings.Settings, timeout: float = 60) -> None:
    """Policies take effect once the API server's admission plugin has seen them (an informer:
    usually within a second or two of their creation). Wait until a known-bad object is
    refused, so the cases judge the guardrails and not that delay."""
    import time

    from kubernetes.client.exceptions import ApiException

    ref = gateway.reference(config)
    model = config.models[0]
    isvc = next(
        o
        for o in secure_model.build(config, model, ref).workload
        if o["kind"] == "InferenceService"
    )
    bad = copy.deepcopy(isvc)
    bad["spec"]["predictor"]["hostNetwork"] = True
    admin = _client(kubeconfig, Identity())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _apply(admin, bad, dry_run=True)
        except ApiException as exc:
            if _verdict(exc)[0] == "workload-forbid-host-namespaces":
                return
        time.sleep(0.5)
    raise TimeoutError(f"the guardrails were not enforced within {timeout:.0f}s")


def _manager_of(config: settings.Settings, model_ns: str) -> Identity:
    model = next(m for m in config.models if m.ns == model_ns)
    subject = model.managers[0]
    if subject.kind == "Group":
        return Identity("probe-manager@example.com", (subject.name,))
    return Identity(subject.name)


def cases(config: settings.Settings) -> Iterator[Case]:
    """Every case, for the first model of `config` that has managers and a batch window."""
    ref = gateway.reference(config)
    model = next(m for m in config.models if m.managers and any(c.windows for c in m.callers))
    objects = secure_model.build(config, model, ref)
    isvc = next(o for o in objects.workload if o["kind"] == "InferenceService")
    row = next(r for r in objects.rows if r.batch)
    window_sa = windows.controller_service_account(row)
    manager = _manager_of(config, model.ns)
    controller = Identity(f"system:serviceaccount:{model.ns}:{window_sa}")

    def apply(manifest: dict[str, Any], dry_run: bool = False) -> Callable[[Any], None]:
        return lambda client: _apply(client, manifest, dry_run)

    yield Case(
        "the manager applies the model's own InferenceService", manager, apply(isvc), ADMITTED
    )
    for guardrail, name, edit in manager_attacks.attacks(window_sa):
        attacked = copy.deepcopy(isvc)
        edit(attacked)
        yield Case(f"the manager: {name}", manager, apply(attacked), guardrail)

    policy = next(o for o in objects.windows if o["metadata"]["name"] == row.policy)

    def patch(
        body: dict[str, Any] | list[dict[str, Any]],
        content_type: str = "application/merge-patch+json",
    ) -> Callable[[Any], None]:
        def run(client: Any) -> None:
            resource = client.resources.get(
                api_version=policy["apiVersion"], kind="AuthorizationPolicy"
            )
            client.patch(
                resource, body=body, name=row.policy, namespace=model.ns, content_type=content_type
            )

        return run

    def set_spec(spec: dict[str, Any]) -> Callable[[Any], None]:
        """What the window reconciler sends: the whole spec replaced, nothing else touched."""
        return patch([{"op": "add", "path": "/spec", "value": spec}], "application/json-patch+json")

    def delete(client: Any) -> None:
        resource = client.resources.get(
            api_version=policy["apiVersion"], kind="AuthorizationPolicy"
        )
        client.delete(resource, name=row.policy, namespace=model.ns)

    window = "window-controller-only-switches-its-window"
    yield Case(
        "the window controller opens its window",
        controller,
        set_spec(windows.open_spec(model, row)),
        ADMITTED,
    )
    yield Case(
        "the window controller closes its window",
        controller,
        set_spec(windows.closed_spec(model)),
        ADMITTED,
    )
    yield Case(
        "the window controller allows everyone",
        controller,
        patch({"spec": {"rules": [{}]}}),
        window,
    )
    yield Case(
        "the window controller opens it to another caller",
        controller,
        patch({"spec": {"rules": [{"from": [{"source": {"principals": ["*"]}}]}]}}),
        window,
    )
    yield Case(
        "the window controller relabels it",
        controller,
        patch({"metadata": {"labels": {"x": "y"}}}),
        window,
    )
    yield Case("the window controller deletes it", controller, delete, RBAC)

    namespace = objects.namespace
    for key, value in (
        ("istio-injection", "disabled"),
        ("pod-security.kubernetes.io/enforce", "privileged"),
    ):
        relabelled = copy.deepcopy(namespace)
        relabelled["metadata"]["labels"][key] = value
        yield Case(
            f"an admin sets {key}={value} on the model namespace",
            Identity(),
            apply(relabelled),
            "namespace-keep-security-labels",
        )
    yield Case("the manager labels the namespace", manager, apply(namespace), RBAC)

    pod = injected_pod(model.ns, isvc)
    yield Case("an injected model Pod (dry run)", Identity(), apply(pod, dry_run=True), ADMITTED)
    as_proxy = copy.deepcopy(pod)
    as_proxy["spec"]["initContainers"][2]["securityContext"]["runAsUser"] = 1337
    yield Case(
        "a Pod whose storage initializer runs as the proxy (dry run)",
        Identity(),
        apply(as_proxy, dry_run=True),
        "workload-forbid-proxy-uid",
    )
    yield Case("the manager creates a Pod", manager, apply(pod), RBAC)


def injected_pod(namespace: str, isvc: dict[str, Any]) -> dict[str, Any]:
    """A model Pod as Istio 1.30.3's injector (CNI on, native sidecar) and KServe v0.20's pod
    mutator leave it: what admission sees for every model pod."""
    proxy_context = {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 1337,
        "runAsGroup": 1337,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    predictor = isvc["spec"]["predictor"]
    annotations = {
        **predictor.get("annotations", {}),
        "sidecar.istio.io/status": '{"initContainers":["istio-validation","istio-proxy"]}',
        "istio.io/rev": "default",
        "sidecar.istio.io/interceptionMode": "REDIRECT",
        "traffic.sidecar.istio.io/excludeInboundPorts": "15020",
        "traffic.sidecar.istio.io/includeInboundPorts": "*",
        "traffic.sidecar.istio.io/includeOutboundIPRanges": "*",
        "prometheus.io/port": "15020",
        "prometheus.io/path": "/stats/prometheus",
    }
    labels = {
        **predictor["labels"],
        "serving.kserve.io/inferenceservice": isvc["metadata"]["name"],
        "security.istio.io/tlsMode": "istio",
    }
    image = "docker.io/istio/proxyv2:1.30.3"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{isvc['metadata']['name']}-predictor-probe",
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "serviceAccountName": predictor["serviceAccountName"],
            "automountServiceAccountToken": False,
            "securityContext": predictor["securityContext"],
            "initContainers": [
                {"name": "istio-validation", "image": image, "securityContext": proxy_context},
                {
                    "name": "istio-proxy",
                    "image": image,
                    "restartPolicy": "Always",
                    "securityContext": proxy_context,
                },
                {
                    "name": "storage-initializer",
                    "image": "kserve/storage-initializer:v0.20.0",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "privileged": False,
                        "runAsNonRoot": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                },
            ],
            "containers": [
                {
                    "name": "kserve-container",
                    "image": "kserve/sklearnserver:v0.20.0",
                    "securityContext": predictor["model"]["securityContext"],
                }
            ],
        },
    }


def run(kubeconfig: str, config: settings.Settings) -> list[Outcome]:
    from kubernetes.client.exceptions import ApiException

    outcomes = []
    for case in cases(config):
        client = _client(kubeconfig, case.who)
        error: Exception | None = None
        try:
            case.run(client)
        except ApiException as exc:
            error = exc
        got, detail = _verdict(error)
        outcomes.append(Outcome(case, got, detail))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--install", action="store_true")
    args = parser.parse_args(argv)
    config = stack_settings(args.stack)
    if args.install:
        install(str(args.kubeconfig), config)
    outcomes = run(str(args.kubeconfig), config)
    for outcome in outcomes:
        mark = "ok " if outcome.ok else "BAD"
        who = outcome.case.who.user
        print(f"{mark} {outcome.case.name} [{who}] -> {outcome.got}")
        if not outcome.ok:
            print(f"    expected {outcome.case.expect}: {outcome.detail[:300]}")
    bad = sum(not o.ok for o in outcomes)
    print(f"{len(outcomes) - bad} passed, {bad} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
