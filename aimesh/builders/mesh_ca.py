"""The mesh's certificate authority: who signs workload certificates, and what workloads trust.

Two modes (`aimesh:meshCa`, docs/pki.md):

- `istiod`: istiod's built-in CA signs workload certificates with its own self-signed root. Only
  the lifetime of workload certificates is set here (istiod caps it, agents request it).
- `cert-manager`: cert-manager's istio-csr is the CA. Sidecars and gateways send their CSRs to
  istio-csr (`global.caAddress`), istio-csr turns each into a CertificateRequest for the
  configured issuer in istio-system, and istiod's own CA server is off (`ENABLE_CA_SERVER`),
  serving with a certificate from the same issuer (`istiod-tls`, mounted by the istiod chart).
  The issuer is a self-signed root -> CA Issuer chain made here (dev), or the platform team's
  PKI (`existing`): an issuer they run, or an intermediate CA of it (certificate in config,
  key as a Pulumi secret) that aimesh puts in a Secret behind a CA Issuer. With
  `existing`, the trust bundle is static: the roots in `aimesh:meshTrustRoots`, mounted into
  istio-csr as `--root-ca-file`; istio-csr copies it into every namespace's
  `istio-ca-root-cert` ConfigMap, appends it to every certificate chain it returns, and refuses
  to hand out a certificate that does not chain to it. Rotating the root is therefore three
  config changes (add, switch, remove), each safe on its own (`rotation_problems`).

Everything here is pure: settings in, manifests and Helm values out.
"""

from __future__ import annotations

from typing import Any

from aimesh import versions
from aimesh.builders.cert_manager import API_VERSION, GROUP, WAIT_FOR_READY, private_key
from aimesh.builders.common import metadata
from aimesh.namespaces import CERT_MANAGER_NAMESPACE, ISTIO_NAMESPACE
from aimesh.settings import Settings

# istio-csr's chart (jetstack repository) and the names it gives its objects: the Deployment,
# Service and ServiceAccount are all named after the chart.
CHART = "cert-manager-istio-csr"
RELEASE = CHART
REPO = versions.CERT_MANAGER_REPO
SERVICE_PORT = 443
# istio-csr's gRPC port in its pods (chart default `app.server.serving.port`).
SERVING_PORT = 6443
SERVICE_HOST = f"{CHART}.{CERT_MANAGER_NAMESPACE}.svc"
# What every sidecar and gateway is told to send its CSR to (`global.caAddress`). istio-csr's
# serving certificate carries exactly this DNS name, so agents can verify whom they talk to.
CA_ADDRESS = f"{SERVICE_HOST}:{SERVICE_PORT}"
METRICS_SERVICE_LABELS = {"app": f"{CHART}-metrics"}
METRICS_PORT_NAME = "metrics"

# The dev chain, in istio-system: istio-csr's CertificateRequests and istiod's certificate are
# created there, and a namespaced Issuer can only be used from its own namespace: anyone who may
# create a Certificate elsewhere cannot mint a mesh identity (a ClusterIssuer would let them).
SELF_SIGNED_ISSUER = "aimesh-mesh-selfsigned"
ROOT_CERTIFICATE = "aimesh-mesh-root"
CA_ISSUER = "aimesh-mesh-ca"
# Ten years, like istiod's own self-signed root: a dev root is never renewed under a running
# mesh (a renewed root is a new root, and the dev chain has no trust bundle to overlap them).
ROOT_DURATION = "87600h"

# istiod's serving certificate (istio-csr's chart template, registered by aimesh instead so that
# istiod waits until it is issued: istiod reads it once at startup from the optional
# `istiod-tls` volume its chart always mounts, and without it serves nothing).
ISTIOD_CERTIFICATE = "istiod"
ISTIOD_TLS_SECRET = "istiod-tls"  # noqa: S105 - a Secret name istiod's chart mounts
ISTIOD_SERVICE_ACCOUNT = "istiod"

# existing, from meshCaCertificate/meshCaKey: the CA Issuer's key pair.
KEYPAIR_SECRET = "aimesh-mesh-ca-keypair"  # noqa: S105 - a Secret name

# The static trust bundle (existing issuers): a ConfigMap (roots are public) mounted into
# istio-csr; a change of the ConfigMap reaches the file, and istio-csr watches the file.
TRUST_BUNDLE = "aimesh-mesh-trust-bundle"
TRUST_BUNDLE_KEY = "ca.pem"
TRUST_BUNDLE_DIR = "/var/run/secrets/aimesh-mesh-trust"


def enabled(settings: Settings) -> bool:
    """Whether istio-csr is the mesh CA."""
    return settings.mesh_ca == "cert-manager"


def issuer_ref(settings: Settings) -> dict[str, str]:
    """The issuer that signs workload (and istiod's) certificates: {name, kind, group}."""
    if settings.mesh_ca_issuer == "existing" and settings.mesh_ca_issuer_name:
        return {
            "name": settings.mesh_ca_issuer_name,
            "kind": settings.mesh_ca_issuer_kind,
            "group": settings.mesh_ca_issuer_group,
        }
    return {"name": CA_ISSUER, "kind": "Issuer", "group": GROUP}


def issuer_chain(settings: Settings) -> list[dict[str, Any]]:
    """The cert-manager objects behind `issuer_ref`, in dependency order (none for an issuer the
    platform team runs)."""
    if not enabled(settings):
        return []
    existing = settings.mesh_ca_issuer == "existing"
    ca_issuer = {
        "apiVersion": API_VERSION,
        "kind": "Issuer",
        "metadata": metadata(CA_ISSUER, ISTIO_NAMESPACE, annotations=WAIT_FOR_READY),
        "spec": {"ca": {"secretName": KEYPAIR_SECRET if existing else ROOT_CERTIFICATE}},
    }
    if existing:
        return [] if settings.mesh_ca_issuer_name else [ca_issuer]
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "Issuer",
            "metadata": metadata(SELF_SIGNED_ISSUER, ISTIO_NAMESPACE, annotations=WAIT_FOR_READY),
            "spec": {"selfSigned": {}},
        },
        {
            "apiVersion": API_VERSION,
            "kind": "Certificate",
            "metadata": metadata(ROOT_CERTIFICATE, ISTIO_NAMESPACE, annotations=WAIT_FOR_READY),
            "spec": {
                "isCA": True,
                "commonName": f"aimesh {settings.cluster_name} mesh root CA",
                # istio-csr's docs put the trust domain in the CA's organization; it names the
                # mesh in the Issuer field of every workload certificate.
                "subject": {"organizations": ["aimesh", settings.trust_domain]},
                "secretName": ROOT_CERTIFICATE,
                "duration": ROOT_DURATION,
                "privateKey": private_key(settings),
                "issuerRef": {"name": SELF_SIGNED_ISSUER, "kind": "Issuer", "group": GROUP},
            },
        },
        ca_issuer,
    ]


def keypair_secret(settings: Settings) -> dict[str, Any] | None:
    """The CA Issuer's Secret from meshCaCertificate and meshCaKey (existing, no issuer of your
    own): `tls.crt` the chain, `ca.crt` its root. `stringData` holds the key: the component
    registers it as a Pulumi secret, and nothing else may log or export this manifest."""
    if not enabled(settings) or settings.mesh_ca_key is None or not settings.mesh_ca_certificate:
        return None
    root = settings.issuing_root
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(KEYPAIR_SECRET, ISTIO_NAMESPACE),
        "type": "kubernetes.io/tls",
        "stringData": {
            "tls.crt": "".join(c.pem for c in settings.mesh_ca_chain),
            "tls.key": settings.mesh_ca_key.get_secret_value().strip() + "\n",
            "ca.crt": root.certificate.pem if root is not None else "",
        },
    }


def trust_bundle(settings: Settings) -> str:
    """The PEM bundle every workload trusts: the configured roots, in config order."""
    return "".join(root.certificate.pem for root in settings.mesh_trust_roots)


def trust_bundle_config_map(settings: Settings) -> dict[str, Any] | None:
    """The static trust bundle istio-csr serves (existing issuers only; the dev root is read
    from the issuer itself)."""
    if not enabled(settings) or not settings.mesh_trust_roots:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(
            TRUST_BUNDLE,
            CERT_MANAGER_NAMESPACE,
            annotations={
                # Which roots, by name and SHA-256, for `kubectl describe` and reviews.
                "aimesh.io/trust-roots": ",".join(
                    f"{r.name}={r.certificate.fingerprint[:16]}" for r in settings.mesh_trust_roots
                )
            },
        ),
        "data": {TRUST_BUNDLE_KEY: trust_bundle(settings)},
    }


def istiod_certificate(settings: Settings) -> dict[str, Any] | None:
    """istiod's serving certificate (DNS name the agents dial, istiod's SPIFFE identity),
    issued by the mesh issuer: what istio-csr's chart would create, awaited here."""
    if not enabled(settings):
        return None
    host = f"istiod.{ISTIO_NAMESPACE}.svc"
    return {
        "apiVersion": API_VERSION,
        "kind": "Certificate",
        "metadata": metadata(ISTIOD_CERTIFICATE, ISTIO_NAMESPACE, annotations=WAIT_FOR_READY),
        "spec": {
            "commonName": host,
            "dnsNames": [host],
            "uris": [
                f"spiffe://{settings.trust_domain}/ns/{ISTIO_NAMESPACE}/sa/{ISTIOD_SERVICE_ACCOUNT}"
            ],
            "secretName": ISTIOD_TLS_SECRET,
            # istio-csr's default (NIST SP 800-204A); cert-manager's floor is one hour.
            "duration": "1h",
            "renewBefore": "30m",
            "privateKey": private_key(settings),
            "revisionHistoryLimit": 1,
            "issuerRef": issuer_ref(settings),
        },
    }


def workload_egress_rule(mode: str) -> dict[str, Any] | None:
    """The NetworkPolicy egress rule a namespace with default-deny egress needs so its sidecars
    can ask istio-csr for certificates (its pods' gRPC port; policies match after the Service's
    port translation), for mesh CA `mode` (aimesh:meshCa). None when istiod is the CA (its
    15012 carries certificates too)."""
    if mode != "cert-manager":
        return None
    return {
        "to": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": CERT_MANAGER_NAMESPACE}
                },
                "podSelector": {"matchLabels": {"app": CHART}},
            }
        ],
        "ports": [{"protocol": "TCP", "port": SERVING_PORT}],
    }


def replicas(settings: Settings) -> int:
    """istio-csr replicas: every CSR of the mesh goes through it, so 2 in production."""
    return 2 if settings.production else 1


def chart_values(settings: Settings) -> dict[str, Any]:
    """Values of istio-csr's chart: the issuer, the trust domain, the workload certificate
    lifetime, the static trust bundle (existing issuers), JSON logs and a metrics Service."""
    ref = issuer_ref(settings)
    tls: dict[str, Any] = {
        "trustDomain": settings.trust_domain,
        "certificateDNSNames": [SERVICE_HOST],
        # aimesh registers istiod's Certificate itself (istiod_certificate) and waits for it.
        "istiodCertificateEnable": False,
    }
    values: dict[str, Any] = {
        "replicaCount": replicas(settings),
        "podDisruptionBudget": {"enabled": replicas(settings) > 1},
        "service": {"type": "ClusterIP", "port": SERVICE_PORT},
        "app": {
            "logFormat": "json",
            "certmanager": {
                "namespace": ISTIO_NAMESPACE,
                "preserveCertificateRequests": False,
                "issuer": {"enabled": True, **ref},
            },
            "tls": tls,
            "server": {
                # Requests for longer are cut to this (istio-csr signs min(requested, max)).
                "maxCertificateDuration": settings.mesh_cert_lifetime,
                "serving": {
                    "signatureAlgorithm": settings.cert_key_algorithm,
                    "certificateKeySize": settings.cert_key_size,
                },
            },
            "istio": {"revisions": ["default"], "namespace": ISTIO_NAMESPACE},
            "metrics": {"service": {"enabled": True, "servicemonitor": {"enabled": False}}},
        },
    }
    if settings.mesh_trust_roots:
        tls["rootCAFile"] = f"{TRUST_BUNDLE_DIR}/{TRUST_BUNDLE_KEY}"
        values["volumes"] = [{"name": "trust-bundle", "configMap": {"name": TRUST_BUNDLE}}]
        values["volumeMounts"] = [
            {"name": "trust-bundle", "mountPath": TRUST_BUNDLE_DIR, "readOnly": True}
        ]
    if settings.cluster_mode == "kind":
        values["resources"] = {"requests": {"cpu": "10m", "memory": "32Mi"}}
    return values


def istiod_values(settings: Settings) -> dict[str, Any]:
    """What istiod's chart values need for the mode (merged into builders/istio.py's):

    - both modes: the workload certificate lifetime (`SECRET_TTL`, what every agent requests);
    - istiod: its CA's default and maximum lifetime (Istio's maximum is 90 days, which any pod
      could ask for through its proxy config);
    - cert-manager: istiod's CA server off and every agent sent to istio-csr.
    """
    lifetime = settings.mesh_cert_lifetime
    mesh = {"defaultConfig": {"proxyMetadata": {"SECRET_TTL": lifetime}}}
    if not enabled(settings):
        env = {"DEFAULT_WORKLOAD_CERT_TTL": lifetime, "MAX_WORKLOAD_CERT_TTL": lifetime}
        return {"env": env, "meshConfig": mesh}
    return {
        # The chart renders env values as quoted strings; istiod parses "false".
        "env": {"ENABLE_CA_SERVER": "false"},
        "global": {"caAddress": CA_ADDRESS},
        "meshConfig": mesh,
    }


def _issuing_fingerprint(settings: Settings) -> str | None:
    root = settings.issuing_root
    return root.certificate.fingerprint if root is not None else None


def rotation_problems(before: Settings, after: Settings) -> list[str]:
    """Why going from stack config `before` to `after` would cut workloads off (empty: safe).

    Workloads learn trust anchors only as they renew their certificate (istio-csr appends the
    bundle to every chain it returns), and keep a certificate for up to one lifetime. So, with
    one lifetime between steps:
    - a root may become the issuing root only once it was already in the bundle (every peer
      must trust the new certificates before the first one is issued);
    - the previous issuing root must stay in the bundle (certificates it signed are still in
      use until they expire).
    An intermediate rotation under the same root needs no bundle change. A change of mode or of
    a self-signed root replaces the root at once: that is a migration, not a rotation.
    """
    if not (enabled(before) and enabled(after)):
        if before.mesh_ca != after.mesh_ca:
            return [
                f"meshCa changes from {before.mesh_ca!r} to {after.mesh_ca!r}: the mesh root "
                "changes at once, so workloads holding certificates of the old root fail mTLS "
                "with renewed ones until they restart; plan a maintenance window"
            ]
        return []
    if before.mesh_ca_issuer != after.mesh_ca_issuer:
        return [
            f"meshCaIssuer changes from {before.mesh_ca_issuer!r} to {after.mesh_ca_issuer!r}: "
            "the root changes at once; to move a running mesh onto another root, use "
            "meshCaIssuer 'existing' and rotate (docs/pki.md)"
        ]
    problems: list[str] = []
    old_bundle = {r.certificate.fingerprint: r.name for r in before.mesh_trust_roots}
    new_bundle = {r.certificate.fingerprint: r.name for r in after.mesh_trust_roots}
    old_issuing, new_issuing = _issuing_fingerprint(before), _issuing_fingerprint(after)
    if new_issuing is not None and new_issuing != old_issuing and new_issuing not in old_bundle:
        problems.append(
            f"issuance switches to root {new_bundle[new_issuing]!r}, which the trust bundle "
            "did not hold before: add the root first, wait one workload certificate lifetime, "
            "then switch the issuer"
        )
    if old_issuing is not None and old_issuing not in new_bundle:
        problems.append(
            f"root {old_bundle[old_issuing]!r} leaves the trust bundle while certificates it "
            "signed are still in use: switch the issuer first, wait one workload certificate "
            "lifetime, then remove the root"
        )
    return problems
