"""Mesh-wide zero trust: the objects in Istio's root namespace that set the default for every
workload in the mesh (pure builders: settings in, Kubernetes manifests out).

- `strict_mtls`: a PeerAuthentication `default` in the root namespace with mode STRICT. Every
  sidecar and gateway then accepts only Istio mTLS; plaintext is refused.
- `root_deny_all`: an ALLOW AuthorizationPolicy with an empty spec in the root namespace. An ALLOW
  policy that matches nothing denies every request to every proxied workload unless another
  ALLOW matches it. Each workload gets its traffic from the narrow ALLOWs written next to it
  (components/gateway.py for the ingress gateway, components/secure_model.py for each model).
- `egress_lockdown`: the root-namespace Sidecar, the default of every namespace without its own:
  outbound traffic only to hosts in Istio's registry (Services, ServiceEntries).

What is deliberately NOT created: a DestinationRule with `ISTIO_MUTUAL`. Auto mTLS (istiod's
default) already sends Istio mTLS to every endpoint that has a sidecar, and a mesh-wide
DestinationRule would override per-host TLS settings (e.g. of a ServiceEntry for an external
storage host) and is one more object that could be edited to downgrade. Nothing here sets
PERMISSIVE/DISABLE, a selector or portLevelMtls: the mesh-wide policy has no holes.
"""

from __future__ import annotations

from typing import Any

from aimesh.builders.common import SETTING_ANNOTATION, metadata
from aimesh.namespaces import ISTIO_NAMESPACE
from aimesh.settings import Settings

SECURITY_API = "security.istio.io/v1"
NETWORKING_API = "networking.istio.io/v1"

# Istio looks for the mesh-wide PeerAuthentication and Sidecar by these names (the Sidecar
# must be the only selector-less one in the root namespace; `default` is the documented name).
MESH_DEFAULT_NAME = "default"
ROOT_DENY_ALL_NAME = "deny-all"

_LABELS = {"app.kubernetes.io/part-of": "aimesh", "app.kubernetes.io/component": "mesh-security"}


def strict_mtls(settings: Settings) -> dict[str, Any]:
    """Mesh-wide PeerAuthentication: STRICT mTLS for every workload, no selector, no port
    exceptions.

    Kubelet probes keep working: the sidecar injector rewrites HTTP/TCP/gRPC probes to the
    agent's port 15020, which is not captured by the sidecar, so they never need mTLS.
    """
    del settings  # the mesh-wide mode is not configurable: STRICT is the only posture
    return {
        "apiVersion": SECURITY_API,
        "kind": "PeerAuthentication",
        "metadata": metadata(MESH_DEFAULT_NAME, ISTIO_NAMESPACE, _LABELS),
        "spec": {"mtls": {"mode": "STRICT"}},
    }


def root_deny_all(settings: Settings) -> dict[str, Any]:
    """Root-namespace default deny: an ALLOW policy with no rules.

    Istio evaluates CUSTOM, then DENY, then ALLOW policies; when any ALLOW policy applies to a
    workload, a request must match one of their rules. This policy applies to every workload
    (root namespace, no selector) and matches nothing, so only explicit ALLOWs let traffic in.
    `action` is spelled out (ALLOW is the default) so that nobody mistakes it for a no-op.
    """
    del settings
    return {
        "apiVersion": SECURITY_API,
        "kind": "AuthorizationPolicy",
        "metadata": metadata(ROOT_DENY_ALL_NAME, ISTIO_NAMESPACE, _LABELS),
        "spec": {"action": "ALLOW"},
    }


def egress_lockdown(settings: Settings) -> dict[str, Any]:
    """Root-namespace Sidecar: the mesh-wide default outbound traffic policy.

    REGISTRY_ONLY (the default) sends traffic to unknown hosts to Envoy's BlackHole cluster:
    a model can reach only Services and the ServiceEntries declared for it (its storage host,
    its allowlist). `egress` is omitted on purpose: Istio then keeps every namespace's services
    visible (`*/*`), so callers in one namespace still reach models in another.
    """
    return {
        "apiVersion": NETWORKING_API,
        "kind": "Sidecar",
        "metadata": metadata(
            MESH_DEFAULT_NAME,
            ISTIO_NAMESPACE,
            _LABELS,
            annotations={SETTING_ANNOTATION: "aimesh:outboundTrafficPolicy"},
        ),
        "spec": {"outboundTrafficPolicy": {"mode": settings.outbound_traffic_policy}},
    }


def manifests(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every mesh-wide object, keyed by the suffix of its Pulumi resource name."""
    return {
        "strict-mtls": strict_mtls(settings),
        "deny-all": root_deny_all(settings),
        "egress": egress_lockdown(settings),
    }
