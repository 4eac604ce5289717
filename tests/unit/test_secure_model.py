"""SecureModel's builders: every object of one model, what it allows and what it denies."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from aimesh import versions
from aimesh.builders import access, collector, secure_model
from aimesh.settings import ConfigError, ModelSettings, Settings, parse
from tests.unit.test_access import GATEWAY, stack
from tools import schemas


def one_model(environment: str = "dev", **fields: Any) -> tuple[Settings, ModelSettings]:
    base: dict[str, Any] = {"name": "m", "format": "sklearn", "storageUri": "gs://bucket/m"}
    base.update(fields)
    settings = parse({"environment": environment, "models": [base]})
    return settings, settings.models[0]


def by_kind(objects: secure_model.ModelObjects, kind: str) -> list[dict[str, Any]]:
    return [m for m in objects.all() if m["kind"] == kind]


def named(objects: secure_model.ModelObjects, kind: str, name: str) -> dict[str, Any]:
    return next(m for m in by_kind(objects, kind) if m["metadata"]["name"] == name)


@pytest.fixture
def alpha() -> secure_model.ModelObjects:
    settings = stack()
    return secure_model.build(settings, settings.models[0], GATEWAY)


@pytest.fixture
def beta() -> secure_model.ModelObjects:
    settings = stack()
    return secure_model.build(settings, settings.models[1], GATEWAY)


# ---- namespace, identity, InferenceService ----------------------------------------------------


def test_namespace_is_injected(alpha: secure_model.ModelObjects) -> None:
    labels = alpha.namespace["metadata"]["labels"]
    assert alpha.namespace["metadata"]["name"] == "alpha"
    assert labels["istio-injection"] == "enabled"


def test_dedicated_service_account_without_api_token(alpha: secure_model.ModelObjects) -> None:
    sa = named(alpha, "ServiceAccount", "alpha-predictor")
    assert sa["automountServiceAccountToken"] is False
    predictor = named(alpha, "InferenceService", "alpha")["spec"]["predictor"]
    assert predictor["serviceAccountName"] == "alpha-predictor"
    assert predictor["automountServiceAccountToken"] is False


def test_inference_service_standard_mode_and_hardened() -> None:
    _, m = one_model(protocol="v2", runtime="kserve-sklearnserver", minReplicas=2, maxReplicas=4)
    isvc = secure_model.inference_service(m)
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    predictor = isvc["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 4)
    assert predictor["labels"] == {"aimesh.io/model": "m", "aimesh.io/version": "stable"}
    assert predictor["securityContext"]["runAsNonRoot"] is True
    model = predictor["model"]
    assert model["modelFormat"] == {"name": "sklearn"}
    assert model["runtime"] == "kserve-sklearnserver"
    assert model["protocolVersion"] == "v2"
    assert model["storageUri"] == "gs://bucket/m"
    ctx = model["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["privileged"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["readOnlyRootFilesystem"] is True
    assert "canary" not in isvc["spec"]


def test_gpus_node_selector_and_tolerations() -> None:
    _, m = one_model(
        resources={"cpu": "4", "memory": "16Gi", "gpu": 2},
        nodeSelector={"accelerator": "nvidia-l4"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    )
    predictor = secure_model.inference_service(m)["spec"]["predictor"]
    res = predictor["model"]["resources"]
    assert res["limits"]["nvidia.com/gpu"] == "2"
    assert res["requests"]["nvidia.com/gpu"] == "2"
    assert predictor["nodeSelector"] == {"accelerator": "nvidia-l4"}
    assert predictor["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    _, cpu_only = one_model()
    assert "nvidia.com/gpu" not in json.dumps(secure_model.inference_service(cpu_only))


# ---- versions: canary, promotion, rollback ---------------------------------------------------


def routes(m: ModelSettings) -> list[tuple[str, int]]:
    vs = secure_model.virtual_service(stack(), m, GATEWAY)
    return [(r["destination"]["host"], r["weight"]) for r in vs["spec"]["http"][0]["route"]]


def test_canary_gets_its_traffic_percent() -> None:
    _, m = one_model(canary={"storageUri": "gs://bucket/m-v2", "trafficPercent": 20})
    assert routes(m) == [
        ("m-predictor.m.svc.cluster.local", 80),
        ("m-canary-predictor.m.svc.cluster.local", 20),
    ]
    canary = secure_model.inference_service(m)["spec"]["canary"][0]
    assert canary["trafficPercent"] == 20
    assert canary["predictor"]["name"] == "canary"
    assert canary["predictor"]["model"]["storageUri"] == "gs://bucket/m-v2"
    assert canary["predictor"]["labels"]["aimesh.io/version"] == "canary"
    # KServe derives a canary's replicas from its traffic: no autoscaling fields on it.
    assert "minReplicas" not in canary["predictor"]


def test_rollback_is_traffic_zero_and_keeps_the_canary_deployed() -> None:
    _, m = one_model(canary={"storageUri": "gs://bucket/m-v2", "trafficPercent": 0})
    assert routes(m)[0][1] == 100
    assert routes(m)[1][1] == 0
    assert secure_model.inference_service(m)["spec"]["canary"][0]["trafficPercent"] == 0


def test_promotion_is_a_config_change() -> None:
    # Promote: the canary's storage URI becomes the model's, the canary entry goes away.
    _, promoted = one_model(storageUri="gs://bucket/m-v2")
    assert routes(promoted) == [("m-predictor.m.svc.cluster.local", 100)]
    isvc = secure_model.inference_service(promoted)
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == "gs://bucket/m-v2"


def test_virtual_service_serves_gateway_and_mesh() -> None:
    _, m = one_model()
    vs = secure_model.virtual_service(stack(), m, GATEWAY)
    assert vs["spec"]["gateways"] == ["istio-ingress/aimesh-gateway", "mesh"]
    assert vs["spec"]["hosts"] == ["m.models.example.com", "m-predictor.m.svc.cluster.local"]


def test_every_version_is_under_the_same_policies() -> None:
    settings, m = one_model(
        canary={"storageUri": "gs://bucket/m-v2", "trafficPercent": 50},
        callers=[{"namespace": "a", "serviceAccount": "b"}],
    )
    objects = secure_model.build(settings, m, GATEWAY)
    isvc = named(objects, "InferenceService", "m")
    stable_labels = isvc["spec"]["predictor"]["labels"]
    canary_labels = isvc["spec"]["canary"][0]["predictor"]["labels"]
    for kind in ("AuthorizationPolicy", "RequestAuthentication", "EnvoyFilter"):
        for obj in by_kind(objects, kind):
            selector = obj["spec"].get("selector", {}).get("matchLabels") or obj["spec"].get(
                "workloadSelector", {}
            ).get("labels")
            if selector is None:  # namespace-wide (deny-all)
                continue
            assert selector.items() <= stable_labels.items()
            assert selector.items() <= canary_labels.items()


# ---- authorization -------------------------------------------------------------------------


def test_deny_all_and_allow_rules_come_from_the_rows(alpha: secure_model.ModelObjects) -> None:
    assert alpha.deny_all["metadata"]["name"] == "deny-all"
    assert alpha.deny_all["spec"] == {}
    allow = named(alpha, "AuthorizationPolicy", "alpha-allow")
    assert allow["spec"]["action"] == "ALLOW"
    assert allow["spec"]["rules"] == [r.rule() for r in alpha.rows if not r.batch]
    principals = [
        p for rule in allow["spec"]["rules"] for p in rule["from"][0]["source"]["principals"]
    ]
    # The batch caller is NOT in the always-on policy.
    assert "cluster.local/ns/batch/sa/nightly" not in principals
    assert "cluster.local/ns/apps/sa/web" in principals


def test_admin_paths_denied_to_everyone_but_admins(alpha: secure_model.ModelObjects) -> None:
    deny = named(alpha, "AuthorizationPolicy", "alpha-deny-admin")
    assert deny["spec"]["action"] == "DENY"
    rule = deny["spec"]["rules"][0]
    assert rule["from"] == [{"source": {"notPrincipals": ["cluster.local/ns/ml/sa/operator"]}}]
    assert "/v2/repository*" in rule["to"][0]["operation"]["paths"]


def test_without_admins_operator_paths_are_denied_to_all() -> None:
    settings, m = one_model(callers=[{"namespace": "a", "serviceAccount": "b"}])
    deny = secure_model.deny_admin(m, access.rows(settings, m, GATEWAY))
    assert "from" not in deny["spec"]["rules"][0]


def test_admin_integration_is_exempted_by_its_token_only() -> None:
    settings = stack()
    raw_models = [
        {
            "name": "alpha",
            "format": "sklearn",
            "storageUri": "gs://b/a",
            "integrations": [{"name": "partner", "role": "admin"}],
        }
    ]
    settings = stack(models=raw_models)
    m = settings.models[0]
    source = secure_model.deny_admin(m, access.rows(settings, m, GATEWAY))["spec"]["rules"][0][
        "from"
    ][0]["source"]
    # The gateway principal itself is NOT exempted (every integration shares it).
    assert "notPrincipals" not in source
    assert source["notRequestPrincipals"] == ["https://idp.partner.example/client-a"]


def test_model_validates_integration_tokens_again(alpha: secure_model.ModelObjects) -> None:
    jwt = named(alpha, "RequestAuthentication", "alpha-jwt")
    rules = jwt["spec"]["jwtRules"]
    assert [r["issuer"] for r in rules] == ["https://idp.partner.example"]  # only granted ones
    assert rules[0]["jwksUri"].startswith("https://")
    assert "forwardOriginalToken" not in rules[0]  # the model container never sees it


def test_no_integrations_no_request_authentication() -> None:
    settings, m = one_model()
    assert secure_model.request_authentication(settings, m) is None
    assert secure_model.allow_policy(m, []) is None


# ---- batch windows ---------------------------------------------------------------------------


def test_batch_policy_is_closed_outside_its_window(alpha: secure_model.ModelObjects) -> None:
    row = next(r for r in alpha.rows if r.batch)
    (policy,) = alpha.windows
    assert policy["metadata"]["name"] == row.policy
    # Created closed: an ALLOW without rules matches nothing.
    assert policy["spec"] == {
        "selector": {"matchLabels": {"aimesh.io/model": "alpha"}},
        "action": "ALLOW",
    }
    assert secure_model.open_patch(row) == {"spec": {"rules": [row.rule()]}}
    assert secure_model.close_patch() == {"spec": {"rules": None}}


def test_window_cronjobs_patch_exactly_that_policy(alpha: secure_model.ModelObjects) -> None:
    row = next(r for r in alpha.rows if r.batch)
    jobs = by_kind(alpha, "CronJob")
    assert [j["spec"]["schedule"] for j in jobs] == ["0 1 * * *", "0 3 * * *"]
    assert all(j["spec"]["timeZone"] == "Etc/UTC" for j in jobs)
    opened, closed = (j["spec"]["jobTemplate"]["spec"]["template"]["spec"] for j in jobs)
    for pod in (opened, closed):
        container = pod["containers"][0]
        assert container["image"] == versions.KUBECTL_IMAGE
        assert re.search(r":v\d+\.\d+\.\d+$", container["image"])  # pinned, never :latest
        assert row.policy in container["args"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert pod["securityContext"]["runAsNonRoot"] is True

    def patch(pod: dict[str, Any]) -> Any:
        args = pod["containers"][0]["args"]
        return json.loads(next(a for a in args if a.startswith("--patch="))[len("--patch=") :])

    assert patch(opened) == secure_model.open_patch(row)
    assert patch(closed) == secure_model.close_patch()
    template = jobs[0]["spec"]["jobTemplate"]["spec"]["template"]
    # In the mesh, and not selected by the model's own policies.
    assert "sidecar.istio.io/inject" not in template["metadata"]["labels"]
    assert "aimesh.io/model" not in template["metadata"]["labels"]


def test_a_missed_closing_still_runs_a_missed_opening_does_not(
    alpha: secure_model.ModelObjects,
) -> None:
    # Fail closed: after a controller outage the CronJob controller runs a missed closing
    # whenever it catches up; a missed opening only within 10 minutes of its schedule.
    opened, closed = by_kind(alpha, "CronJob")
    assert opened["metadata"]["name"].endswith("-open-0")
    assert opened["spec"]["startingDeadlineSeconds"] == 600
    assert closed["metadata"]["name"].endswith("-close-0")
    assert "startingDeadlineSeconds" not in closed["spec"]


def test_window_role_can_only_get_and_patch_that_object(alpha: secure_model.ModelObjects) -> None:
    row = next(r for r in alpha.rows if r.batch)
    sa = access.short_name(row.policy, "ctl")
    role = named(alpha, "Role", sa)
    assert role["rules"] == [
        {
            "apiGroups": ["security.istio.io"],
            "resources": ["authorizationpolicies"],
            "resourceNames": [row.policy],
            "verbs": ["get", "patch"],
        }
    ]
    binding = named(alpha, "RoleBinding", sa)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": "alpha"}]
    pod = by_kind(alpha, "CronJob")[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == sa


# ---- Kubernetes RBAC -------------------------------------------------------------------------


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


# ---- rate limiting ---------------------------------------------------------------------------


def test_model_and_caller_buckets() -> None:
    settings, m = one_model(
        rateLimit={"requests": 10, "unit": "second"},
        callers=[
            {
                "namespace": "a",
                "serviceAccount": "b",
                "rateLimit": {"requests": 60, "unit": "minute"},
            },
            {"namespace": "c", "serviceAccount": "d"},
        ],
    )
    rows = access.rows(settings, m, GATEWAY)
    ef = secure_model.rate_limit_filter(m, rows)
    assert ef is not None
    assert ef["spec"]["workloadSelector"] == {"labels": {"aimesh.io/model": "m"}}
    insert, route = ef["spec"]["configPatches"]
    assert insert["match"]["context"] == route["match"]["context"] == "SIDECAR_INBOUND"
    # After authn/authz, right before the router.
    assert insert["match"]["listener"]["filterChain"]["filter"]["subFilter"] == {
        "name": "envoy.filters.http.router"
    }
    config = route["patch"]["value"]["typed_per_filter_config"][
        "envoy.filters.http.local_ratelimit"
    ]
    assert config["token_bucket"] == {
        "max_tokens": 10,
        "tokens_per_fill": 10,
        "fill_interval": "1s",
    }
    assert config["descriptors"] == [
        {
            "entries": [{"key": "aimesh-caller", "value": "a/b"}],
            "token_bucket": {"max_tokens": 60, "tokens_per_fill": 60, "fill_interval": "60s"},
        }
    ]
    (action,) = route["patch"]["value"]["route"]["rate_limits"]
    assert action["actions"][0]["header_value_match"]["descriptor_value"] == "a/b"


def test_caller_key_is_the_verified_peer_identity() -> None:
    settings, m = one_model(
        callers=[{"namespace": "a", "serviceAccount": "b", "rateLimit": {"requests": 1}}]
    )
    row = access.rows(settings, m, GATEWAY)[0]
    regex = re.compile(secure_model._xfcc_regex(row))
    own = 'By=spiffe://cluster.local/ns/m/sa/m-predictor;Hash=ab12;Subject="";URI=spiffe://cluster.local/ns/a/sa/b'
    assert regex.match(own)
    # Another identity, or a spoofed earlier element followed by the real (other) peer.
    other = own.replace("/ns/a/sa/b", "/ns/a/sa/bb")
    assert not regex.match(other)
    spoofed = own + ",By=x;URI=spiffe://cluster.local/ns/evil/sa/x"
    assert not regex.match(spoofed)
    assert not regex.match(own.replace("URI=", "DNS="))


def test_integration_key_is_its_validated_issuer() -> None:
    settings = stack()
    m = settings.models[0]
    raw = [{"name": "partner", "role": "invoke", "rateLimit": {"requests": 5, "unit": "minute"}}]
    settings = stack(
        models=[{"name": "x", "format": "sklearn", "storageUri": "gs://b/x", "integrations": raw}]
    )
    m = settings.models[0]
    ef = secure_model.rate_limit_filter(m, access.rows(settings, m, GATEWAY))
    assert ef is not None
    route = ef["spec"]["configPatches"][1]["patch"]["value"]
    (action,) = route["route"]["rate_limits"]
    meta = action["actions"][0]["metadata"]
    assert meta["metadata_key"]["key"] == "envoy.filters.http.jwt_authn"
    assert meta["metadata_key"]["path"] == [{"key": "payload"}, {"key": "iss"}]
    assert meta["source"] == "DYNAMIC"
    config = route["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"]
    assert config["descriptors"][0]["entries"] == [
        {"key": "aimesh-integration", "value": "https://idp.partner.example"}
    ]


def test_integrations_sharing_an_issuer_share_one_bucket() -> None:
    # Envoy refuses a local rate limit config with a duplicate descriptor (and two identical
    # actions would take two tokens per request): one descriptor, the strictest limit.
    shared = {"issuer": "https://idp.shared.example", "jwksUri": "https://idp.shared.example/k"}
    settings = stack(
        integrations=[
            {"name": "team-a", **shared, "audiences": ["a"]},
            {"name": "team-b", **shared, "audiences": ["b"]},
        ],
        models=[
            {
                "name": "x",
                "format": "sklearn",
                "storageUri": "gs://b/x",
                "integrations": [
                    {"name": "team-a", "rateLimit": {"requests": 120, "unit": "minute"}},
                    {"name": "team-b", "rateLimit": {"requests": 1, "unit": "second"}},
                ],
            }
        ],
    )
    m = settings.models[0]
    ef = secure_model.rate_limit_filter(m, access.rows(settings, m, GATEWAY))
    assert ef is not None
    route = ef["spec"]["configPatches"][1]["patch"]["value"]
    config = route["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"]
    (descriptor,) = config["descriptors"]
    assert descriptor["entries"] == [
        {"key": "aimesh-integration", "value": "https://idp.shared.example"}
    ]
    assert descriptor["token_bucket"] == {
        "max_tokens": 1,
        "tokens_per_fill": 1,
        "fill_interval": "1s",
    }
    assert len(route["route"]["rate_limits"]) == 1
    keys = [json.dumps(d["entries"], sort_keys=True) for d in config["descriptors"]]
    assert len(keys) == len(set(keys))


def test_no_limits_no_filter() -> None:
    settings, m = one_model(callers=[{"namespace": "a", "serviceAccount": "b"}])
    assert secure_model.rate_limit_filter(m, access.rows(settings, m, GATEWAY)) is None


def test_caller_bucket_shorter_than_model_bucket_is_rejected() -> None:
    with pytest.raises(ConfigError, match="rateLimit of 'a/b' is per second"):
        one_model(
            rateLimit={"requests": 100, "unit": "minute"},
            callers=[{"namespace": "a", "serviceAccount": "b", "rateLimit": {"requests": 1}}],
        )


def test_a_caller_listed_twice_is_rejected() -> None:
    caller = {"namespace": "a", "serviceAccount": "b"}
    with pytest.raises(ConfigError, match="listed twice"):
        one_model(callers=[caller, {**caller, "role": "admin"}])


# ---- data loss prevention ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "hosts"),
    [
        ("gs://bucket/m", [("storage.googleapis.com", 443)]),
        ("s3://my-bucket/m", [("my-bucket.s3.amazonaws.com", 443)]),
        ("https://models.example.com:8443/m.joblib", [("models.example.com", 8443)]),
        (
            "hf://org/model",
            [
                (h, 443)
                for h in (
                    "huggingface.co",
                    "cdn-lfs.hf.co",
                    "cdn-lfs-us-1.hf.co",
                    "cdn-lfs.huggingface.co",
                    "cdn-lfs-us-1.huggingface.co",
                    "cas-bridge.xethub.hf.co",
                    "cas-server.xethub.hf.co",
                    "transfer.xethub.hf.co",
                )
            ],
        ),
        ("pvc://models-pvc/m", []),
        ("oci://registry.example.com/models/m:1", []),
    ],
)
def test_storage_host_derived_from_uri(uri: str, hosts: list[tuple[str, int]]) -> None:
    _, m = one_model(storageUri=uri)
    assert [(h.host, h.port) for h in secure_model.storage_hosts(m)] == hosts


def test_hf_models_reach_the_hub_cdns() -> None:
    # The Hub redirects weight downloads to its LFS and Xet CDNs; without them in the
    # ServiceEntry, REGISTRY_ONLY stops the storage initializer at the first large file.
    _, m = one_model(storageUri="hf://org/model")
    se = secure_model.service_entry(m)
    assert se is not None
    hosts = se["spec"]["hosts"]
    assert "huggingface.co" in hosts
    assert {"cdn-lfs.hf.co", "cas-bridge.xethub.hf.co"} <= set(hosts)
    assert not any("*" in h for h in hosts)  # DNS resolution: exact names only


def test_storage_host_override() -> None:
    _, m = one_model(storageUri="s3://b/m", storageHost="minio.example.com")
    assert [h.host for h in secure_model.storage_hosts(m)] == ["minio.example.com"]


def test_service_entry_only_for_storage_and_allowlist() -> None:
    _, m = one_model(egressAllowlist=["telemetry.example.com"])
    se = secure_model.service_entry(m)
    assert se is not None
    assert se["spec"]["hosts"] == ["storage.googleapis.com", "telemetry.example.com"]
    assert se["spec"]["exportTo"] == ["."]
    assert se["spec"]["location"] == "MESH_EXTERNAL"
    _, local = one_model(storageUri="pvc://claim/m")
    assert secure_model.service_entry(local) is None


def test_network_policies_default_deny_and_nothing_all_open(
    alpha: secure_model.ModelObjects,
) -> None:
    policies = by_kind(alpha, "NetworkPolicy")
    default = named(alpha, "NetworkPolicy", "default-deny")
    assert default["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), f"{policy['metadata']['name']}: ingress from anywhere"
            assert rule.get("ports")
        for rule in policy["spec"].get("egress", []):
            assert rule.get("ports"), f"{policy['metadata']['name']}: egress on every port"
            for peer in rule.get("to", []):
                if "ipBlock" in peer:
                    assert peer["ipBlock"]["except"]
    names = {p["metadata"]["name"] for p in policies}
    assert {"allow-dns", "allow-istiod", "allow-callers", "allow-external-https"} <= names


def test_callers_namespaces_and_gateway_may_reach_the_model_port(
    alpha: secure_model.ModelObjects,
) -> None:
    rule = named(alpha, "NetworkPolicy", "allow-callers")["spec"]["ingress"][0]
    namespaces = [
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in rule["from"]
    ]
    assert namespaces == ["istio-ingress", "apps", "batch", "ml", "ops"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_sidecars_may_export_telemetry_only_when_observability_is_on(
    alpha: secure_model.ModelObjects,
) -> None:
    policy = named(alpha, "NetworkPolicy", "allow-telemetry")
    (egress,) = policy["spec"]["egress"]
    assert egress == collector.telemetry_egress_rule()  # the collector's own contract
    assert egress["ports"] == [{"protocol": "TCP", "port": 4317}]
    _, m = one_model()
    names = {p["metadata"]["name"] for p in secure_model.network_policies(m, [], False)}
    assert "allow-telemetry" not in names


def test_pvc_model_without_callers_has_no_external_egress_or_caller_ingress() -> None:
    _, m = one_model(storageUri="pvc://claim/m")
    names = {p["metadata"]["name"] for p in secure_model.network_policies(m, [])}
    assert "allow-external-https" not in names
    assert "allow-callers" not in names
    assert "allow-window-controller" not in names


def test_masking_on_outside_production_only() -> None:
    settings, m = one_model("dev")
    assert secure_model.masking_filter(settings, m) is not None
    settings, m = one_model("production")
    assert secure_model.masking_filter(settings, m) is None
    settings, m = one_model("production", responseMasking=True)
    assert secure_model.masking_filter(settings, m) is not None


# ---- upstream schemas ------------------------------------------------------------------------


@pytest.mark.usefixtures("upstream_available")
@pytest.mark.parametrize("which", ["alpha", "beta"])
def test_every_object_validates_against_upstream_schemas(which: str) -> None:
    settings = stack()
    m = settings.models[0 if which == "alpha" else 1]
    problems = [
        p for obj in secure_model.build(settings, m, GATEWAY).all() for p in schemas.validate(obj)
    ]
    assert problems == []


@pytest.mark.usefixtures("upstream_available")
def test_full_featured_model_validates() -> None:
    settings, m = one_model(
        resources={"cpu": "4", "memory": "16Gi", "gpu": 1},
        nodeSelector={"gpu": "true"},
        tolerations=[{"key": "gpu", "value": "true", "effect": "NoSchedule"}],
        canary={"storageUri": "gs://bucket/v2", "trafficPercent": 5, "runtimeVersion": "1.2.0"},
        rateLimit={"requests": 5},
        callers=[
            {
                "namespace": "batch",
                "serviceAccount": "job",
                "rateLimit": {"requests": 5},
                "windows": [
                    {"open": "0 22 * * 1-5", "close": "0 6 * * 2-6", "timeZone": "America/New_York"}
                ],
            }
        ],
        managers=[{"kind": "User", "name": "a@example.com"}],
        egressAllowlist=["api.example.com"],
    )
    problems = [
        p for obj in secure_model.build(settings, m, GATEWAY).all() for p in schemas.validate(obj)
    ]
    assert problems == []


def test_window_time_zone_must_be_iana() -> None:
    window = {"open": "0 1 * * *", "close": "0 2 * * *", "timeZone": "Europe/Frankfurt"}
    with pytest.raises(ConfigError, match="not an IANA time zone"):
        one_model(callers=[{"namespace": "a", "serviceAccount": "b", "windows": [window]}])
    same = {"open": "0 1 * * *", "close": "0 1 * * *"}
    with pytest.raises(ConfigError, match="never opens"):
        one_model(callers=[{"namespace": "a", "serviceAccount": "b", "windows": [same]}])
