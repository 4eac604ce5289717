"""Synthetic, secure Kubernetes stacks of any size for the policy-pack benchmark.

One "model unit" is what aimesh deploys per model, in its own namespace: the injected namespace,
STRICT mTLS, default deny, principal-based allow rules, request authentication and the policy that
requires a token, the InferenceService, an ISTIO_MUTUAL DestinationRule, an egress allowlist
(ServiceEntry + Sidecar REGISTRY_ONLY), NetworkPolicies, RBAC, a hardened helper Deployment and its
Service, telemetry, a rate-limit EnvoyFilter, and the declared intent (the ConfigMap the
effective-access policies judge the rest against). A stack of N resources is the mesh-wide baseline
plus as many units as fit, cut at N: the kinds and proportions the policies inspect.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]


def _meta(name: str, namespace: str | None = None, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    return meta


def mesh_baseline() -> list[Manifest]:
    """Mesh-wide objects every stack has once."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": _meta("istio-system", **{"istio-injection": "disabled"}),
        },
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": _meta("istio-ingress", **{"istio-injection": "enabled"}),
        },
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": _meta("default", "istio-system"),
            "spec": {"mtls": {"mode": "STRICT"}},
        },
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": _meta("deny-all", "istio-system"),
            "spec": {},
        },
        {
            "apiVersion": "telemetry.istio.io/v1",
            "kind": "Telemetry",
            "metadata": _meta("mesh-default", "istio-system"),
            "spec": {"accessLogging": [{"providers": [{"name": "envoy"}]}]},
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": _meta("aimesh-gateway", "istio-ingress"),
            "spec": {
                "selector": {"istio": "ingressgateway"},
                "servers": [
                    {
                        "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                        "hosts": ["*.models.aimesh.local"],
                        "tls": {
                            "mode": "SIMPLE",
                            "credentialName": "aimesh-gateway-tls",
                            "minProtocolVersion": "TLSV1_2",
                        },
                    },
                    {
                        "port": {"number": 80, "name": "http", "protocol": "HTTP"},
                        "hosts": ["*.models.aimesh.local"],
                        "tls": {"httpsRedirect": True},
                    },
                ],
            },
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": _meta("aimesh-gateway", "istio-ingress"),
            "spec": {
                "secretName": "aimesh-gateway-tls",
                "dnsNames": ["*.models.aimesh.local"],
                "issuerRef": {"name": "aimesh-ca", "kind": "ClusterIssuer"},
                "privateKey": {"algorithm": "ECDSA", "size": 256},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": _meta("apps", **{"istio-injection": "enabled"}),
        },
    ]


def intent(i: int, model: str, ns: str, principal: str, pod_labels: dict[str, str]) -> Manifest:
    """The declared intent aimesh publishes with a model (aimesh/builders/intent.py): the
    unit's grants, NetworkPolicies, RBAC and gateway host, as the effective policies read them."""
    read = {"methods": ["GET"], "paths": [f"/v1/models/{model}"]}
    invoke = {"methods": ["POST"], "paths": [f"/v1/models/{model}:predict"]}
    body = {
        "version": 1,
        "model": model,
        "namespace": ns,
        "trustDomain": "cluster.local",
        "selector": pod_labels,
        "ports": [8080],
        "grants": [
            {
                "caller": f"apps/client-{i}",
                "kind": "workload",
                "role": "invoke",
                "principal": principal,
                "operations": [read, invoke],
            }
        ],
        "adminPaths": [],
        "issuers": [
            {
                "issuer": "https://issuer.example.com",
                "jwksUri": "https://issuer.example.com/.well-known/jwks.json",
            }
        ],
        "entries": [
            {"gateway": "istio-ingress/aimesh-gateway", "hosts": [f"{model}.models.aimesh.local"]}
        ],
        "networkPolicies": [
            {
                "name": "default-deny",
                "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
            },
            {
                "name": "from-gateway",
                "spec": {
                    "podSelector": {"matchLabels": pod_labels},
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {
                            "from": [
                                {
                                    "namespaceSelector": {
                                        "matchLabels": {
                                            "kubernetes.io/metadata.name": "istio-ingress"
                                        }
                                    }
                                }
                            ]
                        }
                    ],
                },
            },
        ],
        "rbac": [
            {
                "subjects": [
                    {"kind": "ServiceAccount", "name": f"client-{i}", "namespace": "apps"}
                ],
                "rules": [
                    {
                        "apiGroups": ["serving.kserve.io"],
                        "resources": ["inferenceservices"],
                        "verbs": ["get", "list", "watch"],
                    }
                ],
            }
        ],
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta("aimesh-intent", ns, **{"aimesh.io/intent": "v1"}),
        "data": {"intent.json": json.dumps(body, sort_keys=True, separators=(",", ":"))},
    }


def model_unit(i: int) -> list[Manifest]:
    """The objects of model number `i`, in namespace `model-<i>`."""
    model = f"model-{i}"
    ns = model
    principal = f"cluster.local/ns/apps/sa/client-{i}"
    pod_labels = {"serving.kserve.io/inferenceservice": model}
    storage_host = f"bucket-{i}.storage.example.com"
    hardened_container = {
        "name": "helper",
        "image": "registry.example.com/helper@sha256:" + "0" * 64,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "200m", "memory": "128Mi"},
        },
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": _meta(ns, **{"istio-injection": "enabled", "aimesh.io/model": model}),
        },
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": _meta("strict", ns),
            "spec": {"mtls": {"mode": "STRICT"}},
        },
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": _meta("deny-all", ns),
            "spec": {},
        },
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": _meta(f"{model}-invoke", ns),
            "spec": {
                "action": "ALLOW",
                "selector": {"matchLabels": pod_labels},
                "rules": [
                    {
                        "from": [{"source": {"principals": [principal]}}],
                        "to": [
                            {
                                "operation": {
                                    "methods": ["POST"],
                                    "paths": [f"/v1/models/{model}:predict"],
                                }
                            }
                        ],
                    }
                ],
            },
        },
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": _meta(f"{model}-read", ns),
            "spec": {
                "action": "ALLOW",
                "selector": {"matchLabels": pod_labels},
                "rules": [
                    {
                        "from": [{"source": {"principals": [principal]}}],
                        "to": [
                            {"operation": {"methods": ["GET"], "paths": [f"/v1/models/{model}"]}}
                        ],
                    }
                ],
            },
        },
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "RequestAuthentication",
            "metadata": _meta(f"{model}-jwt", ns),
            "spec": {
                "selector": {"matchLabels": pod_labels},
                "jwtRules": [
                    {
                        "issuer": "https://issuer.example.com",
                        "jwksUri": "https://issuer.example.com/.well-known/jwks.json",
                    }
                ],
            },
        },
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": _meta(f"{model}-require-jwt", ns),
            "spec": {
                "action": "DENY",
                "selector": {"matchLabels": pod_labels},
                "rules": [{"from": [{"source": {"notRequestPrincipals": ["*"]}}]}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(model, ns),
        },
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": _meta(
                model, ns, **{"aimesh.io/model": model, "aimesh.io/version": "stable"}
            ),
            "spec": {
                "predictor": {
                    "serviceAccountName": model,
                    "model": {
                        "modelFormat": {"name": "sklearn"},
                        "storageUri": f"s3://{storage_host}/models/{model}",
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "256Mi"},
                            "limits": {"cpu": "1", "memory": "1Gi"},
                        },
                    },
                }
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": _meta(model, ns),
            "spec": {
                "host": f"{model}-predictor.{ns}.svc.cluster.local",
                "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": _meta(f"{model}-storage", ns),
            "spec": {
                "hosts": [storage_host],
                "location": "MESH_EXTERNAL",
                "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}],
                "resolution": "DNS",
                "exportTo": ["."],
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Sidecar",
            "metadata": _meta("default", ns),
            "spec": {
                "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
                "egress": [{"hosts": ["./*", "istio-system/*"]}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("default-deny", ns),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("from-gateway", ns),
            "spec": {
                "podSelector": {"matchLabels": pod_labels},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "istio-ingress"}
                                }
                            }
                        ]
                    }
                ],
            },
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(f"{model}-reader", ns),
            "rules": [
                {
                    "apiGroups": ["serving.kserve.io"],
                    "resources": ["inferenceservices"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(f"{model}-reader", ns),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": f"{model}-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": f"client-{i}", "namespace": "apps"}],
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(f"{model}-helper", ns),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": f"{model}-helper"}},
                "template": {
                    "metadata": {"labels": {"app": f"{model}-helper"}},
                    "spec": {
                        "serviceAccountName": model,
                        "automountServiceAccountToken": False,
                        "containers": [hardened_container],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(f"{model}-helper", ns),
            "spec": {
                "type": "ClusterIP",
                "selector": {"app": f"{model}-helper"},
                "ports": [{"port": 80, "targetPort": 8080}],
            },
        },
        intent(i, model, ns, principal, pod_labels),
        {
            "apiVersion": "telemetry.istio.io/v1",
            "kind": "Telemetry",
            "metadata": _meta("access-logs", ns),
            "spec": {"accessLogging": [{"providers": [{"name": "envoy"}]}]},
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": _meta(model, ns),
            "spec": {
                "hosts": [f"{model}.models.aimesh.local"],
                "gateways": ["istio-ingress/aimesh-gateway"],
                "http": [
                    {
                        "route": [
                            {"destination": {"host": f"{model}-predictor.{ns}.svc.cluster.local"}}
                        ]
                    }
                ],
            },
        },
        {
            "apiVersion": "networking.istio.io/v1alpha3",
            "kind": "EnvoyFilter",
            "metadata": _meta(f"{model}-ratelimit", ns),
            "spec": {
                "workloadSelector": {"labels": pod_labels},
                "configPatches": [
                    {
                        "applyTo": "HTTP_FILTER",
                        "match": {
                            "context": "SIDECAR_INBOUND",
                            "listener": {
                                "filterChain": {
                                    "filter": {
                                        "name": "envoy.filters.network.http_connection_manager"
                                    }
                                }
                            },
                        },
                        "patch": {
                            "operation": "INSERT_BEFORE",
                            "value": {
                                "name": "envoy.filters.http.local_ratelimit",
                                "typed_config": {
                                    "@type": "type.googleapis.com/udpa.type.v1.TypedStruct",
                                    "type_url": (
                                        "type.googleapis.com/envoy.extensions.filters.http."
                                        "local_ratelimit.v3.LocalRateLimit"
                                    ),
                                    "value": {
                                        "stat_prefix": "http_local_rate_limiter",
                                        "token_bucket": {
                                            "max_tokens": 100,
                                            "tokens_per_fill": 100,
                                            "fill_interval": "1s",
                                        },
                                    },
                                },
                            },
                        },
                    }
                ],
            },
        },
    ]


UNIT_SIZE = len(model_unit(0))


def generate(size: int) -> list[Manifest]:
    """A secure stack of exactly `size` objects (the last model unit may be cut short)."""
    objects = mesh_baseline()
    i = 0
    while len(objects) < size:
        objects.extend(model_unit(i))
        i += 1
    return objects[:size]


def write(objects: list[Manifest], directory: Path, per_file: int = 100) -> None:
    """Write `objects` as multi-document YAML files of `per_file` documents each."""
    directory.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(objects), per_file):
        chunk = objects[start : start + per_file]
        path = directory / f"objects-{start // per_file:04d}.yaml"
        path.write_text(yaml.safe_dump_all(chunk, sort_keys=False))
