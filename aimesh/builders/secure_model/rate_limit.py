"""Envoy local rate limits on the model's inbound sidecar: one model-wide bucket and one per
rate-limited caller (keyed by mTLS identity) or integration (keyed by JWT issuer)."""

from __future__ import annotations

from typing import Any

from aimesh.builders import access
from aimesh.builders.common import metadata
from aimesh.builders.secure_model.meta import ENVOY_FILTER_API, model_labels, workload_selector
from aimesh.builders.secure_model.sidecar import inbound_http_filter_before_router
from aimesh.settings import ModelSettings, RateLimit

RATE_LIMIT_FILTER_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
)
# Where Istio's jwt_authn filter puts a validated token's claims (`payload_in_metadata`).
JWT_PAYLOAD_KEY = "payload"

_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600}


def _bucket(limit: RateLimit | None) -> dict[str, Any]:
    if limit is None:
        # No model-wide limit: a bucket that never runs dry, so only the callers' apply.
        return {"max_tokens": 1_000_000, "tokens_per_fill": 1_000_000, "fill_interval": "1s"}
    return {
        "max_tokens": limit.requests,
        "tokens_per_fill": limit.requests,
        "fill_interval": f"{_UNIT_SECONDS[limit.unit]}s",
    }


def _xfcc_regex(row: access.AccessRow) -> str:
    # The sidecar APPENDS the verified peer's certificate to x-forwarded-client-cert (Istio's
    # sidecar default, APPEND_FORWARD), and a client's own sidecar sanitizes the header on the
    # way out: the LAST element's URI is the mTLS identity the request arrived with.
    uri = "spiffe://" + row.principal
    escaped = "".join("\\" + c if c in ".+*?()[]{}|^$\\" else c for c in uri)
    return f"^(.*,)?[^,]*URI={escaped}(;[^,]*)?$"


def _descriptor_key(row: access.AccessRow) -> str:
    return "aimesh-caller" if row.kind == "workload" else "aimesh-integration"


def rate_limit_actions(rows: list[access.AccessRow]) -> list[dict[str, Any]]:
    """Route `rate_limits`: one descriptor per rate-limited caller.

    In-mesh callers are recognised by their mTLS identity in the x-forwarded-client-cert
    header the sidecar sets; integrations by the `iss` claim of their validated JWT: Istio
    configures the sidecar's jwt_authn filter (from the RequestAuthentication) to store a valid
    token's payload as dynamic metadata `envoy.filters.http.jwt_authn` / `payload`. No
    metadata (no or invalid token) means no descriptor, so no per-integration bucket applies
    (and the ALLOW rules deny such a request anyway)."""
    actions: list[dict[str, Any]] = []
    for row, _ in _limited(rows):
        if row.kind == "workload":
            action: dict[str, Any] = {
                "header_value_match": {
                    "descriptor_key": _descriptor_key(row),
                    "descriptor_value": row.caller,
                    "expect_match": True,
                    "headers": [
                        {
                            "name": "x-forwarded-client-cert",
                            "string_match": {"safe_regex": {"regex": _xfcc_regex(row)}},
                        }
                    ],
                }
            }
        else:
            action = {
                "metadata": {
                    "descriptor_key": _descriptor_key(row),
                    "metadata_key": {
                        "key": "envoy.filters.http.jwt_authn",
                        "path": [{"key": JWT_PAYLOAD_KEY}, {"key": "iss"}],
                    },
                    "source": "DYNAMIC",
                }
            }
        actions.append({"actions": [action]})
    return actions


def _descriptor_value(row: access.AccessRow) -> str:
    return row.caller if row.kind == "workload" else row.issuer


def _limited(rows: list[access.AccessRow]) -> list[tuple[access.AccessRow, RateLimit]]:
    """The rate-limited rows, one per descriptor (key, value), with that descriptor's limit.

    Integrations are keyed by their issuer, and integrations may share one (settings tell them
    apart by audience or subject). Two grants of one model to such integrations would produce
    the same descriptor twice: Envoy rejects a local rate limit config with a duplicate
    descriptor ("duplicate descriptor in the local rate descriptor"), so the whole inbound
    listener update of the model's sidecar would be refused, and two identical route actions
    would consume the shared bucket twice per request. They share ONE bucket, the strictest of
    their limits (the lowest sustained rate)."""
    chosen: dict[tuple[str, str], tuple[access.AccessRow, RateLimit]] = {}
    for row in rows:
        if row.rate_limit is None:
            continue
        key = (_descriptor_key(row), _descriptor_value(row))
        limit = row.rate_limit
        if key in chosen:
            kept = chosen[key][1]
            if limit.requests / _UNIT_SECONDS[limit.unit] >= (
                kept.requests / _UNIT_SECONDS[kept.unit]
            ):
                continue
            chosen[key] = (chosen[key][0], limit)
        else:
            chosen[key] = (row, limit)
    return list(chosen.values())


def rate_limit_descriptors(rows: list[access.AccessRow]) -> list[dict[str, Any]]:
    return [
        {
            "entries": [{"key": _descriptor_key(row), "value": _descriptor_value(row)}],
            "token_bucket": _bucket(limit),
        }
        for row, limit in _limited(rows)
    ]


def rate_limit_filter(model: ModelSettings, rows: list[access.AccessRow]) -> dict[str, Any] | None:
    """Envoy local rate limit on the model's inbound sidecar: the model-wide bucket (every
    request) and, per rate-limited caller, its own bucket (that caller's requests). Limits are
    per pod (local rate limiting has no shared state): N replicas allow N times the rate.
    None when neither the model nor any caller is rate limited."""
    if model.rate_limit is None and not any(r.rate_limit for r in rows):
        return None
    filter_type = RATE_LIMIT_FILTER_TYPE
    enabled = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
    per_route = {
        "@type": filter_type,
        "stat_prefix": "aimesh_model_rate_limit",
        "token_bucket": _bucket(model.rate_limit),
        "filter_enabled": {**enabled, "runtime_key": "aimesh_rate_limit_enabled"},
        "filter_enforced": {**enabled, "runtime_key": "aimesh_rate_limit_enforced"},
        # Both the model-wide bucket and the caller's own bucket are consumed.
        "always_consume_default_token_bucket": True,
        "response_headers_to_add": [
            {
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                "header": {"key": "x-aimesh-rate-limited", "value": "true"},
            }
        ],
        "descriptors": rate_limit_descriptors(rows),
    }
    route_patch: dict[str, Any] = {
        "typed_per_filter_config": {"envoy.filters.http.local_ratelimit": per_route}
    }
    actions = rate_limit_actions(rows)
    if actions:
        route_patch["route"] = {"rate_limits": actions}
    return {
        "apiVersion": ENVOY_FILTER_API,
        "kind": "EnvoyFilter",
        "metadata": metadata(
            access.short_name(model.name, "rate-limit"), model.ns, model_labels(model)
        ),
        "spec": {
            "workloadSelector": {"labels": workload_selector(model)},
            "configPatches": [
                # The filter itself, after authentication/authorization (so denied requests
                # do not drain a caller's bucket and JWT metadata exists).
                inbound_http_filter_before_router(
                    "envoy.filters.http.local_ratelimit",
                    {"@type": filter_type, "stat_prefix": "aimesh_model_rate_limit"},
                ),
                {
                    # The buckets and descriptors, on every inbound route of the model.
                    "applyTo": "HTTP_ROUTE",
                    "match": {
                        "context": "SIDECAR_INBOUND",
                        "routeConfiguration": {"vhost": {"route": {"action": "ANY"}}},
                    },
                    "patch": {"operation": "MERGE", "value": route_patch},
                },
            ],
        },
    }
