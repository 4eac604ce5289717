"""Every upstream version aimesh deploys, in one place.

The upstream CRDs and chart values the schema tests check against are pinned at exactly these
versions in tools/upstream-files.toml (URL and sha256 per file); bumping one here means pinning
the new files there and re-checking the generated objects against the new upstream schemas.
"""

from __future__ import annotations

ISTIO = "1.30.3"
ISTIO_REPO = "https://istio-release.storage.googleapis.com/charts"

CERT_MANAGER = "v1.21.1"
CERT_MANAGER_REPO = "https://charts.jetstack.io"

ISTIO_CSR = "v0.17.0"

KSERVE = "v0.20.0"
# KServe publishes its charts as OCI artifacts; the chart name is appended to this base.
KSERVE_OCI = "oci://ghcr.io/kserve/charts"

GATEWAY_API = "v1.5.1"

KUBE_PROMETHEUS_STACK = "88.5.3"
KUBE_PROMETHEUS_STACK_REPO = "https://prometheus-community.github.io/helm-charts"
PROMETHEUS_OPERATOR = "v0.93.1"

OTEL_COLLECTOR_CHART = "0.170.0"
OTEL_COLLECTOR_REPO = "https://open-telemetry.github.io/opentelemetry-helm-charts"
# The contrib distribution carries the Splunk HEC and syslog exporters.
OTEL_COLLECTOR_IMAGE = "otel/opentelemetry-collector-contrib"

# kind's node image for Kubernetes v1.35.x (the version the core-object schemas are checked at),
# pinned by digest as kind's release notes ask: node images are built for a kind release
# (v0.31+), and a tag alone may resolve to an image built for another one.
KIND_NODE_IMAGE = (
    "kindest/node:v1.35.0@sha256:452d707d4862f52530247495d180205e029056831160e22870e37e3f6c1ac31f"
)
KUBERNETES_SCHEMA_VERSION = "1.35.0"
# The Kubernetes the kind node image runs (what the program checks in kind mode).
KIND_NODE_VERSION = "v1.35.0"
# The oldest Kubernetes aimesh installs onto: native sidecars (GA in 1.33) start Istio's proxy
# before KServe's storage initializer (aimesh/cluster_version.py).
MIN_KUBERNETES = (1, 33)

# The window reconciler's interpreter (aimesh/runtime/, shipped as source in a ConfigMap):
# distroless Python 3.11 on Debian 12 (no shell, no package manager, tzdata included), user
# 65532. Pinned by digest: a tag moves with every rebuild. docs/dependencies.md says how to bump.
WINDOW_RECONCILER_IMAGE = (
    "gcr.io/distroless/python3-debian12:nonroot"
    "@sha256:7d1042ce588ab97019fe95c24ffca7bc5a82ccdac572511d5e09bda4435c89c5"
)

# The collector image matching chart 0.170.0's appVersion (pinned: the chart default follows it).
OTEL_COLLECTOR_IMAGE_TAG = "0.158.0"
