"""API versions, labels and the pod selector every object of one model carries."""

from __future__ import annotations

from aimesh.builders.common import MODEL_LABEL
from aimesh.settings import ModelSettings

SECURITY_API = "security.istio.io/v1"
NETWORKING_API = "networking.istio.io/v1"
ENVOY_FILTER_API = "networking.istio.io/v1alpha3"
KSERVE_API = "serving.kserve.io/v1beta1"


def model_labels(model: ModelSettings) -> dict[str, str]:
    """The labels on every object of the model."""
    return {MODEL_LABEL: model.name, "app.kubernetes.io/part-of": "aimesh"}


def workload_selector(model: ModelSettings) -> dict[str, str]:
    """Selects every version (stable and canary) of the model's pods."""
    return {MODEL_LABEL: model.name}
