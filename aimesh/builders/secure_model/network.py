"""NetworkPolicies: default deny under the mesh (defense in depth), then only what a model
needs: DNS, istiod, its callers, telemetry, external HTTPS, the window controllers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aimesh.builders import access, collector
from aimesh.builders.common import metadata
from aimesh.builders.secure_model.egress import egress_hosts
from aimesh.builders.secure_model.meta import model_labels, workload_selector
from aimesh.builders.secure_model.windows import workload_selector_for_controller
from aimesh.namespaces import INGRESS_NAMESPACE, ISTIO_NAMESPACE, OBSERVABILITY_NAMESPACE
from aimesh.settings import ModelSettings

# Private ranges: egress to external storage never needs them (in-cluster traffic has its own
# rules), so the HTTPS egress rule excludes them.
_PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]


def _netpol(model: ModelSettings, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(name, model.ns, model_labels(model)),
        "spec": spec,
    }


def tcp(port: int) -> dict[str, Any]:
    return {"protocol": "TCP", "port": port}


def _ns_selector(name: str) -> dict[str, Any]:
    return {"matchLabels": {"kubernetes.io/metadata.name": name}}


@dataclass(frozen=True)
class Dns:
    """Where model pods may send DNS: pods (one `key=value` label each) in `namespace`, and
    address blocks. NodeLocal DNSCache runs on the host network, where pod selectors do not
    reach, and answers on a link-local address (169.254.20.10 by default): the block covers it."""

    namespace: str = "kube-system"
    pod_labels: Sequence[str] = ("k8s-app=kube-dns", "k8s-app=node-local-dns")
    cidrs: Sequence[str] = ("169.254.20.10/32",)


def dns_peers(dns: Dns) -> list[dict[str, Any]]:
    """NetworkPolicy peers the model's pods may query on port 53."""
    peers: list[dict[str, Any]] = []
    for pair in dns.pod_labels:
        key, _, value = pair.partition("=")
        peers.append(
            {
                "namespaceSelector": _ns_selector(dns.namespace),
                "podSelector": {"matchLabels": {key: value}},
            }
        )
    return peers + [{"ipBlock": {"cidr": cidr}} for cidr in dns.cidrs]


def network_policies(
    model: ModelSettings,
    rows: list[access.AccessRow],
    observability: bool = True,
    mesh_ca_egress: dict[str, Any] | None = None,
    dns: Dns = Dns(),
) -> list[dict[str, Any]]:
    """Default deny (ingress and egress) for the namespace, then only: DNS, istiod (xDS and
    certificates, 15012), the mesh CA when it is not istiod (`mesh_ca_egress`: istio-csr), the
    ingress gateway and the callers' namespaces to the model port,
    telemetry (scraping in, OTLP access logs and traces out to the collector) when
    observability is on, HTTPS egress when the model has external hosts, and the window
    controllers to the API server."""
    model_pods = {"matchLabels": workload_selector(model)}
    out = [
        _netpol(model, "default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        _netpol(
            model,
            "allow-dns",
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {"to": dns_peers(dns), "ports": [{"protocol": "UDP", "port": 53}, tcp(53)]}
                ],
            },
        ),
        _netpol(
            model,
            "allow-istiod",
            {
                # Every pod here has a sidecar (the window controllers too).
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": _ns_selector(ISTIO_NAMESPACE),
                                "podSelector": {"matchLabels": {"app": "istiod"}},
                            }
                        ],
                        "ports": [tcp(15012)],
                    }
                ],
            },
        ),
    ]
    if mesh_ca_egress is not None:
        out.append(
            _netpol(
                model,
                "allow-mesh-ca",
                {"podSelector": {}, "policyTypes": ["Egress"], "egress": [mesh_ca_egress]},
            )
        )
    sources: list[dict[str, Any]] = []
    if any(r.kind == "integration" for r in rows):
        sources.append(
            {
                "namespaceSelector": _ns_selector(INGRESS_NAMESPACE),
                "podSelector": {"matchLabels": {"istio": "ingressgateway"}},
            }
        )
    for caller_ns in sorted({r.caller.split("/")[0] for r in rows if r.kind == "workload"}):
        sources.append({"namespaceSelector": _ns_selector(caller_ns)})
    if sources:
        out.append(
            _netpol(
                model,
                "allow-callers",
                {
                    "podSelector": model_pods,
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": sources, "ports": [tcp(access.MODEL_PORT)]}],
                },
            )
        )
    if observability:
        telemetry_peer = {"namespaceSelector": _ns_selector(OBSERVABILITY_NAMESPACE)}
        out.append(
            _netpol(
                model,
                "allow-telemetry",
                {
                    "podSelector": {},
                    "policyTypes": ["Ingress", "Egress"],
                    # In: Istio's merged Prometheus endpoint (15020) and Envoy's stats (15090).
                    "ingress": [{"from": [telemetry_peer], "ports": [tcp(15020), tcp(15090)]}],
                    # Out: every sidecar's audit log (OTel ALS) and traces to the collector.
                    "egress": [collector.telemetry_egress_rule()],
                },
            )
        )
    hosts = egress_hosts(model)
    if hosts:
        # NetworkPolicy cannot name hosts: the port and "outside the cluster" are enforced here,
        # the exact host list by the mesh (REGISTRY_ONLY + the ServiceEntry above).
        out.append(
            _netpol(
                model,
                "allow-external-https",
                {
                    "podSelector": model_pods,
                    "policyTypes": ["Egress"],
                    "egress": [
                        {
                            "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": _PRIVATE_RANGES}}],
                            "ports": [tcp(p) for p in sorted({h.port for h in hosts})],
                        }
                    ],
                },
            )
        )
    if any(r.batch for r in rows):
        out.append(
            _netpol(
                model,
                "allow-window-controller",
                {
                    "podSelector": {"matchLabels": workload_selector_for_controller(model)},
                    "policyTypes": ["Egress"],
                    # The API server is reached through the `kubernetes` Service (443) and,
                    # after DNAT, on the control-plane node's port (6443 on kind/kubeadm).
                    "egress": [{"ports": [tcp(443), tcp(6443)]}],
                },
            )
        )
    return out
