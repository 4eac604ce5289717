"""Envoy local rate limits: the model-wide bucket and one per rate-limited caller/integration."""

from __future__ import annotations

import json
import re

import pytest

from aimesh.builders import access
from aimesh.builders.secure_model import (
    rate_limit,
)
from aimesh.settings import ConfigError
from tests.unit.secure_model.support import one_model
from tests.unit.test_access import GATEWAY, stack


def test_model_and_caller_buckets() -> None:
    settings, m = one_model(
        rateLimit={"requests": 10, "unit": "second"},
        callers=[
            {
                "namespace": "a",
                "serviceAccount": "b",
                "rateLimit": {"requests": 60, "unit": "minute"},
            },
            {"namespace": "c", "serviceAccount": "d"},
        ],
    )
    rows = access.rows(settings, m, GATEWAY)
    ef = rate_limit.rate_limit_filter(m, rows)
    assert ef is not None
    assert ef["spec"]["workloadSelector"] == {"labels": {"aimesh.io/model": "m"}}
    insert, route = ef["spec"]["configPatches"]
    assert insert["match"]["context"] == route["match"]["context"] == "SIDECAR_INBOUND"
    # After authn/authz, right before the router.
    assert insert["match"]["listener"]["filterChain"]["filter"]["subFilter"] == {
        "name": "envoy.filters.http.router"
    }
    config = route["patch"]["value"]["typed_per_filter_config"][
        "envoy.filters.http.local_ratelimit"
    ]
    assert config["token_bucket"] == {
        "max_tokens": 10,
        "tokens_per_fill": 10,
        "fill_interval": "1s",
    }
    assert config["descriptors"] == [
        {
            "entries": [{"key": "aimesh-caller", "value": "a/b"}],
            "token_bucket": {"max_tokens": 60, "tokens_per_fill": 60, "fill_interval": "60s"},
        }
    ]
    (action,) = route["patch"]["value"]["route"]["rate_limits"]
    assert action["actions"][0]["header_value_match"]["descriptor_value"] == "a/b"


def test_caller_key_is_the_verified_peer_identity() -> None:
    settings, m = one_model(
        callers=[{"namespace": "a", "serviceAccount": "b", "rateLimit": {"requests": 1}}]
    )
    row = access.rows(settings, m, GATEWAY)[0]
    regex = re.compile(rate_limit._xfcc_regex(row))
    own = 'By=spiffe://cluster.local/ns/m/sa/m-predictor;Hash=ab12;Subject="";URI=spiffe://cluster.local/ns/a/sa/b'
    assert regex.match(own)
    # Another identity, or a spoofed earlier element followed by the real (other) peer.
    other = own.replace("/ns/a/sa/b", "/ns/a/sa/bb")
    assert not regex.match(other)
    spoofed = own + ",By=x;URI=spiffe://cluster.local/ns/evil/sa/x"
    assert not regex.match(spoofed)
    assert not regex.match(own.replace("URI=", "DNS="))


def test_integration_key_is_its_validated_issuer() -> None:
    settings = stack()
    m = settings.models[0]
    raw = [{"name": "partner", "role": "invoke", "rateLimit": {"requests": 5, "unit": "minute"}}]
    settings = stack(
        models=[{"name": "x", "format": "sklearn", "storageUri": "gs://b/x", "integrations": raw}]
    )
    m = settings.models[0]
    ef = rate_limit.rate_limit_filter(m, access.rows(settings, m, GATEWAY))
    assert ef is not None
    route = ef["spec"]["configPatches"][1]["patch"]["value"]
    (action,) = route["route"]["rate_limits"]
    meta = action["actions"][0]["metadata"]
    assert meta["metadata_key"]["key"] == "envoy.filters.http.jwt_authn"
    assert meta["metadata_key"]["path"] == [{"key": "payload"}, {"key": "iss"}]
    assert meta["source"] == "DYNAMIC"
    config = route["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"]
    assert config["descriptors"][0]["entries"] == [
        {"key": "aimesh-integration", "value": "https://idp.partner.example"}
    ]


def test_integrations_sharing_an_issuer_share_one_bucket() -> None:
    # Envoy refuses a local rate limit config with a duplicate descriptor (and two identical
    # actions would take two tokens per request): one descriptor, the strictest limit.
    shared = {"issuer": "https://idp.shared.example", "jwksUri": "https://idp.shared.example/k"}
    settings = stack(
        integrations=[
            {"name": "team-a", **shared, "audiences": ["a"]},
            {"name": "team-b", **shared, "audiences": ["b"]},
        ],
        models=[
            {
                "name": "x",
                "format": "sklearn",
                "storageUri": "gs://b/x",
                "integrations": [
                    {"name": "team-a", "rateLimit": {"requests": 120, "unit": "minute"}},
                    {"name": "team-b", "rateLimit": {"requests": 1, "unit": "second"}},
                ],
            }
        ],
    )
    m = settings.models[0]
    ef = rate_limit.rate_limit_filter(m, access.rows(settings, m, GATEWAY))
    assert ef is not None
    route = ef["spec"]["configPatches"][1]["patch"]["value"]
    config = route["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"]
    (descriptor,) = config["descriptors"]
    assert descriptor["entries"] == [
        {"key": "aimesh-integration", "value": "https://idp.shared.example"}
    ]
    assert descriptor["token_bucket"] == {
        "max_tokens": 1,
        "tokens_per_fill": 1,
        "fill_interval": "1s",
    }
    assert len(route["route"]["rate_limits"]) == 1
    keys = [json.dumps(d["entries"], sort_keys=True) for d in config["descriptors"]]
    assert len(keys) == len(set(keys))


def test_no_limits_no_filter() -> None:
    settings, m = one_model(callers=[{"namespace": "a", "serviceAccount": "b"}])
    assert rate_limit.rate_limit_filter(m, access.rows(settings, m, GATEWAY)) is None


def test_caller_bucket_shorter_than_model_bucket_is_rejected() -> None:
    with pytest.raises(ConfigError, match="rateLimit of 'a/b' is per second"):
        one_model(
            rateLimit={"requests": 100, "unit": "minute"},
            callers=[{"namespace": "a", "serviceAccount": "b", "rateLimit": {"requests": 1}}],
        )


def test_a_caller_listed_twice_is_rejected() -> None:
    caller = {"namespace": "a", "serviceAccount": "b"}
    with pytest.raises(ConfigError, match="listed twice"):
        one_model(callers=[caller, {**caller, "role": "admin"}])
