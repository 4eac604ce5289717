"""Where aimesh puts its own HTTP filters in the model's inbound sidecar (rate limiting,
response masking): after Istio's authentication and authorization, before the router."""

from __future__ import annotations

from typing import Any


def inbound_http_filter_before_router(name: str, typed_config: dict[str, Any]) -> dict[str, Any]:
    """An EnvoyFilter patch adding HTTP filter `name` to the model's inbound sidecar listener,
    right before the router: after Istio's authentication and authorization filters, so
    denied requests never reach it and the validated JWT's metadata is there."""
    return {
        "applyTo": "HTTP_FILTER",
        "match": {
            "context": "SIDECAR_INBOUND",
            "listener": {
                "filterChain": {
                    "filter": {
                        "name": "envoy.filters.network.http_connection_manager",
                        "subFilter": {"name": "envoy.filters.http.router"},
                    }
                }
            },
        },
        "patch": {
            "operation": "INSERT_BEFORE",
            "value": {"name": name, "typed_config": typed_config},
        },
    }
