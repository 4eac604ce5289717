"""Bring-your-own platform components (`aimesh:bringYourOwn`): what aimesh checks instead.

A platform team that already runs cert-manager, Istio, KServe, a Prometheus operator or an
OpenTelemetry collector lists it; aimesh then installs no chart for it and instead reads the
CRDs its own objects need, so a preview fails naming the missing CRD rather than half-applying.
Every aimesh object on top (issuers, mTLS, authorization, telemetry, alert rules, models) is
still registered: bringing your own component never drops a security object.
"""

from __future__ import annotations

from aimesh.namespaces import (
    CERT_MANAGER_NAMESPACE,
    INGRESS_NAMESPACE,
    ISTIO_NAMESPACE,
    KSERVE_NAMESPACE,
)
from aimesh.settings import Settings

# The CRDs of each component that aimesh's own objects are instances of (builders/).
CRDS: dict[str, tuple[str, ...]] = {
    "certManager": (
        "certificates.cert-manager.io",
        "clusterissuers.cert-manager.io",
        "issuers.cert-manager.io",
    ),
    "istio": (
        "authorizationpolicies.security.istio.io",
        "peerauthentications.security.istio.io",
        "requestauthentications.security.istio.io",
        "envoyfilters.networking.istio.io",
        "gateways.networking.istio.io",
        "serviceentries.networking.istio.io",
        "sidecars.networking.istio.io",
        "virtualservices.networking.istio.io",
        "telemetries.telemetry.istio.io",
    ),
    "kserve": (
        "inferenceservices.serving.kserve.io",
        "clusterservingruntimes.serving.kserve.io",
    ),
    "monitoring": (
        "podmonitors.monitoring.coreos.com",
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
    ),
    # A collector has no CRDs. Bringing it means bringing the telemetry pipeline: the collector
    # and the node agents that read the proxies' log files (docs/platform.md).
    "collector": (),
}


# The namespaces a component's own install creates (and aimesh then does not).
NAMESPACES: dict[str, tuple[str, ...]] = {
    "certManager": (CERT_MANAGER_NAMESPACE,),
    "istio": (ISTIO_NAMESPACE, INGRESS_NAMESPACE),
    "kserve": (KSERVE_NAMESPACE,),
}


def brought(settings: Settings, component: str) -> bool:
    """Whether the cluster already runs `component` (aimesh installs no chart for it)."""
    if component not in CRDS:
        raise KeyError(f"unknown bring-your-own component {component!r}")
    return component in settings.bring_your_own


def crds(settings: Settings, component: str) -> tuple[str, ...]:
    """The CRDs to check for `component`; empty when aimesh installs it itself."""
    return CRDS[component] if brought(settings, component) else ()


def foreign_namespaces(settings: Settings) -> set[str]:
    """Platform namespaces that the stack's bring-your-own components own."""
    return {ns for c in settings.bring_your_own for ns in NAMESPACES.get(c, ())}
