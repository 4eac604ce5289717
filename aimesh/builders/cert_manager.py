"""cert-manager: Helm values and the issuer chain that signs the gateway's certificates (pure)."""

from __future__ import annotations

from typing import Any

from aimesh.builders.common import metadata
from aimesh.namespaces import CERT_MANAGER_NAMESPACE
from aimesh.settings import Settings

GROUP = "cert-manager.io"
API_VERSION = f"{GROUP}/v1"

SELF_SIGNED_ISSUER = "aimesh-selfsigned"
ROOT_CA_CERTIFICATE = "aimesh-root-ca"
CA_ISSUER = "aimesh-ca"
ACME_ISSUER = "aimesh-acme"
ACME_ACCOUNT_SECRET = "aimesh-acme-account-key"  # noqa: S105 - a Secret name, not a value
# Istio serves Kubernetes Ingresses of this class through the ingress gateway; cert-manager's
# HTTP-01 solver creates one per challenge. It must arrive as the `kubernetes.io/ingress.class`
# annotation (cert-manager's `class` field), not as `spec.ingressClassName`: with
# ingressControllerMode STRICT, istiod honours a class NAME only through an IngressClass object
# (controller istio.io/ingress-controller), which no Istio chart creates, and silently ignores
# the Ingress otherwise; the annotation is compared with meshConfig.ingressClass directly.
ACME_INGRESS_CLASS = "istio"
# The solver pods run in the Certificate's namespace, istio-ingress, which is injected and
# enforces Pod Security `baseline`: an injected solver would carry istio-init (NET_ADMIN,
# NET_RAW) and be rejected at admission, so no challenge could ever be answered.
ACME_SOLVER_POD_LABELS = {"sidecar.istio.io/inject": "false"}

# pulumi-kubernetes waits until this condition holds before dependents are created, so a
# certificate requested from the issuer never races an issuer that is not Ready yet.
WAIT_FOR_READY = {"pulumi.com/waitFor": "condition=Ready"}


def replicas(settings: Settings) -> int:
    """cert-manager's controller, webhook and cainjector replicas: 2 in production (the webhook
    is on the admission path of every Certificate), 1 elsewhere."""
    return 2 if settings.production else 1


def chart_values(settings: Settings) -> dict[str, Any]:
    """Values of the cert-manager chart: CRDs installed (and kept on uninstall, so deleting the
    release never garbage-collects every Certificate in the cluster), the startup API check on
    (the Helm hook that proves the webhook answers before the release counts as installed),
    leader-election leases in cert-manager's own namespace instead of kube-system."""
    count = replicas(settings)
    pdb = {"enabled": count > 1}
    return {
        "crds": {"enabled": True, "keep": True},
        "replicaCount": count,
        "podDisruptionBudget": pdb,
        "webhook": {"replicaCount": count, "podDisruptionBudget": pdb},
        "cainjector": {"replicaCount": count, "podDisruptionBudget": pdb},
        "startupapicheck": {"enabled": True},
        "prometheus": {"enabled": True},
        "global": {"leaderElection": {"namespace": CERT_MANAGER_NAMESPACE}},
    }


def issuer_ref(settings: Settings) -> dict[str, str]:
    """The issuer that signs gateway certificates: {name, kind, group}."""
    if settings.issuer_type == "acme":
        return {"name": ACME_ISSUER, "kind": "ClusterIssuer", "group": GROUP}
    if settings.issuer_type == "existing":
        # settings guarantees the name is set for issuerType existing.
        return {
            "name": str(settings.existing_issuer_name),
            "kind": settings.existing_issuer_kind,
            "group": GROUP,
        }
    return {"name": CA_ISSUER, "kind": "ClusterIssuer", "group": GROUP}


def private_key(settings: Settings) -> dict[str, Any]:
    """The private key of every Certificate aimesh requests: the configured algorithm and size,
    and rotationPolicy Always, so a renewed certificate never reuses the old key."""
    return {
        "algorithm": settings.cert_key_algorithm,
        "size": settings.cert_key_size,
        "rotationPolicy": "Always",
    }


def issuer_chain(settings: Settings) -> list[dict[str, Any]]:
    """The cert-manager objects behind `issuer_ref`, in dependency order.

    - selfSignedCA: a self-signed ClusterIssuer signs ONE root CA Certificate (its key never
      leaves the cert-manager namespace); a CA ClusterIssuer signs gateway certificates with it.
      Nothing else uses the self-signed issuer.
    - acme: one ACME ClusterIssuer, HTTP-01 answered through the Istio ingress gateway.
    - existing: nothing; the platform team's issuer is referenced as-is.
    """
    if settings.issuer_type == "existing":
        return []
    if settings.issuer_type == "acme":
        return [
            {
                "apiVersion": API_VERSION,
                "kind": "ClusterIssuer",
                "metadata": metadata(ACME_ISSUER, annotations=WAIT_FOR_READY),
                "spec": {
                    "acme": {
                        "server": settings.acme_server,
                        "email": settings.acme_email,
                        "privateKeySecretRef": {"name": ACME_ACCOUNT_SECRET},
                        "solvers": [
                            {
                                "http01": {
                                    "ingress": {
                                        "class": ACME_INGRESS_CLASS,
                                        "podTemplate": {
                                            "metadata": {"labels": dict(ACME_SOLVER_POD_LABELS)}
                                        },
                                    }
                                }
                            }
                        ],
                    }
                },
            }
        ]
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "ClusterIssuer",
            "metadata": metadata(SELF_SIGNED_ISSUER, annotations=WAIT_FOR_READY),
            "spec": {"selfSigned": {}},
        },
        {
            "apiVersion": API_VERSION,
            "kind": "Certificate",
            "metadata": metadata(
                ROOT_CA_CERTIFICATE, CERT_MANAGER_NAMESPACE, annotations=WAIT_FOR_READY
            ),
            "spec": {
                "isCA": True,
                "commonName": f"aimesh {settings.cluster_name} root CA",
                "subject": {"organizations": ["aimesh"]},
                "secretName": ROOT_CA_CERTIFICATE,
                # One year, renewed a month ahead; dev clusters rarely live that long.
                "duration": "8760h",
                "renewBefore": "720h",
                "privateKey": private_key(settings),
                "issuerRef": {"name": SELF_SIGNED_ISSUER, "kind": "ClusterIssuer", "group": GROUP},
            },
        },
        {
            "apiVersion": API_VERSION,
            "kind": "ClusterIssuer",
            "metadata": metadata(CA_ISSUER, annotations=WAIT_FOR_READY),
            # A ClusterIssuer reads its CA secret from cert-manager's cluster resource
            # namespace, which is the namespace the chart runs in.
            "spec": {"ca": {"secretName": ROOT_CA_CERTIFICATE}},
        },
    ]
