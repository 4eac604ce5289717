"""The namespaces the platform itself owns (pure constants, no imports).

Both settings (which refuses a model in one of them) and the builders (which put objects there)
need these names; keeping them here lets settings validate without importing the builders."""

# Istio's root namespace: mesh-wide PeerAuthentication / AuthorizationPolicy live here.
ISTIO_NAMESPACE = "istio-system"
INGRESS_NAMESPACE = "istio-ingress"
CERT_MANAGER_NAMESPACE = "cert-manager"
KSERVE_NAMESPACE = "kserve"
OBSERVABILITY_NAMESPACE = "aimesh-observability"

# Control planes stay out of the sidecar mesh: the API server cannot speak Istio mTLS to their
# admission webhooks.
CONTROL_PLANE_NAMESPACES = (ISTIO_NAMESPACE, CERT_MANAGER_NAMESPACE, KSERVE_NAMESPACE)
# Every namespace the platform itself owns: no model may be placed in one.
PLATFORM_NAMESPACES = (*CONTROL_PLANE_NAMESPACES, INGRESS_NAMESPACE, OBSERVABILITY_NAMESPACE)
