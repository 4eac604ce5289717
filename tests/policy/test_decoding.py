"""The strict decoder (`aimesh_policies.protodecode`) against the real descriptor set, the set's
location and cache key (`aimesh_policies.descriptors`), and what the decoding policies do when
the set is not there (never a silent pass).

The fixtures (tests/policy/fixtures/istio-*-require-decodable-*) show what the policies catch;
this file pins the decoding rules istiod's JSON decoding has (Istio's protomarshal: the legacy
jsonpb), case by case.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from aimesh_policies import descriptors, protodecode
from aimesh_policies.decoding import ENVOY_FILTER
from aimesh_policies.framework import Context, Level, evaluate

from tests.policy.support import objects_of_documents, policy_named

LOCAL_RATE_LIMIT = "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
LRL_URL = f"type.googleapis.com/{LOCAL_RATE_LIMIT}"
ROUTE = "envoy.config.route.v3.Route"
DECODING_POLICIES = (
    "istio-envoyfilter-require-decodable-patch",
    "istio-meshconfig-require-decodable-fields",
)


@pytest.fixture(scope="module")
def decoder(descriptor_set: Path) -> protodecode.Decoder:
    return protodecode.decoder_for(descriptor_set)


def kinds(problems: list[protodecode.Problem]) -> list[tuple[str, str]]:
    return [(p.path, p.kind) for p in problems]


# --- the set -------------------------------------------------------------------------------------


def test_every_apply_to_of_istio_names_a_message_of_the_set(decoder: protodecode.Decoder) -> None:
    # The applyTo table follows Istio's own enum: a new applyTo would show up here.
    enum = decoder._pool.FindEnumTypeByName("istio.networking.v1alpha3.EnvoyFilter.ApplyTo")
    assert set(enum.values_by_name) - {"INVALID"} == set(protodecode.APPLY_TO_MESSAGE)
    for message in protodecode.APPLY_TO_MESSAGE.values():
        assert decoder.has_message(message), message


@pytest.mark.parametrize(
    "message",
    [
        LOCAL_RATE_LIMIT,
        "envoy.extensions.filters.http.lua.v3.Lua",
        "envoy.extensions.filters.http.rbac.v3.RBAC",
        "udpa.type.v1.TypedStruct",
        "xds.type.v3.TypedStruct",
        "stats.PluginConfig",
        protodecode.MESH_CONFIG,
        protodecode.PROXY_CONFIG,
        protodecode.ENVOY_FILTER,
    ],
)
def test_the_set_holds_what_istiod_registers(decoder: protodecode.Decoder, message: str) -> None:
    assert decoder.has_message(message)


def test_the_set_leaves_out_the_v2_api_as_istiod_does(decoder: protodecode.Decoder) -> None:
    assert not decoder.has_message("envoy.config.filter.http.lua.v2.Lua")
    assert not decoder.has_message("envoy.api.v2.Listener")


# --- jsonpb's rules ------------------------------------------------------------------------------


def lrl(**fields: Any) -> dict[str, Any]:
    return {"@type": LRL_URL, "stat_prefix": "p", **fields}


def decode_filter(decoder: protodecode.Decoder, config: Any) -> list[protodecode.Problem]:
    value = {"name": "envoy.filters.http.local_ratelimit", "typed_config": config}
    return decoder.decode(value, protodecode.APPLY_TO_MESSAGE["HTTP_FILTER"], "value")


@pytest.mark.parametrize(
    "bucket",
    [
        {"max_tokens": 10, "fill_interval": "1s"},
        {"max_tokens": "10", "fill_interval": "1m30s"},  # quoted numbers, Go durations
        {"max_tokens": 10.0, "fill_interval": "0.5s"},  # Pulumi's doubles, fractions
        {"maxTokens": 10, "tokensPerFill": None, "fillInterval": "250ms"},  # camelCase, null
        {"max_tokens": 10, "fill_interval": "0"},
    ],
)
def test_what_istiod_accepts_decodes(decoder: protodecode.Decoder, bucket: Any) -> None:
    assert decode_filter(decoder, lrl(token_bucket=bucket)) == []


@pytest.mark.parametrize(
    ("bucket", "path"),
    [
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"max_tokens": -1}, "max_tokens"),  # uint32
        ({"max_tokens": 2**32}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"max_tokens": "ten"}, "max_tokens"),
        ({"fill_interval": 60}, "fill_interval"),  # a Duration is a string
        ({"fill_interval": "1 s"}, "fill_interval"),
        ({"fill_interval": "1d"}, "fill_interval"),  # no days in Go durations
        ({"tokens_per_fill": {"value": 1}}, "tokens_per_fill"),  # a wrapper is the plain value
    ],
)
def test_wrong_json_types_are_invalid(decoder: protodecode.Decoder, bucket: Any, path: str) -> None:
    problems = decode_filter(decoder, lrl(token_bucket=bucket))
    assert kinds(problems) == [(f"value.typed_config.token_bucket.{path}", protodecode.INVALID)]


def test_enums_take_names_or_numbers(decoder: protodecode.Decoder) -> None:
    for denominator in ("MILLION", 2, 2.0):
        enabled = {"default_value": {"numerator": 1, "denominator": denominator}}
        assert decode_filter(decoder, lrl(filter_enabled=enabled)) == []
    enabled = {"default_value": {"numerator": 1, "denominator": "million"}}
    problems = decode_filter(decoder, lrl(filter_enabled=enabled))
    assert kinds(problems) == [
        ("value.typed_config.filter_enabled.default_value.denominator", protodecode.INVALID)
    ]
    assert "MILLION" in problems[0].message  # the case-insensitive near miss is suggested


def test_an_any_needs_a_known_type(decoder: protodecode.Decoder) -> None:
    assert kinds(decode_filter(decoder, {"stat_prefix": "p"})) == [
        ("value.typed_config", protodecode.INVALID)
    ]
    assert kinds(decode_filter(decoder, {"@type": "type.googleapis.com/no.such.Message"})) == [
        ("value.typed_config.@type", protodecode.UNKNOWN_TYPE)
    ]
    # A bare message name resolves as well as a type URL (Go's FindMessageByURL).
    assert decode_filter(decoder, {"@type": LOCAL_RATE_LIMIT, "stat_prefix": "p"}) == []


def test_a_well_known_type_inside_an_any_is_spelled_with_value(
    decoder: protodecode.Decoder,
) -> None:
    route = {
        "match": {"prefix": "/"},
        "typed_per_filter_config": {
            "a": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1s"},
            "b": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"x": 1}},
            "c": {"@type": "type.googleapis.com/google.protobuf.Duration", "seconds": 1},
        },
    }
    assert kinds(decoder.decode(route, ROUTE)) == [
        ('typed_per_filter_config["c"].seconds', protodecode.UNKNOWN_FIELD),
        ('typed_per_filter_config["c"]', protodecode.INVALID),
    ]


def test_two_spellings_and_two_oneof_members_conflict(decoder: protodecode.Decoder) -> None:
    problems = decode_filter(decoder, lrl(statPrefix="q"))
    assert kinds(problems) == [("value.typed_config.statPrefix", protodecode.CONFLICT)]
    route = {"match": {"prefix": "/", "path": "/x"}, "route": {"cluster": "c"}}
    assert kinds(decoder.decode(route, ROUTE)) == [("match.path", protodecode.CONFLICT)]


def test_a_typed_struct_is_decoded_as_its_type_url(decoder: protodecode.Decoder) -> None:
    typed_struct = {
        "@type": "type.googleapis.com/udpa.type.v1.TypedStruct",
        "type_url": LRL_URL,
        "value": {"stat_prefix": "p", "token_buket": {}},
    }
    assert kinds(decode_filter(decoder, typed_struct)) == [
        ("value.typed_config.value.token_buket", protodecode.UNKNOWN_FIELD)
    ]
    typed_struct["type_url"] = "type.googleapis.com/no.such.Filter"
    assert kinds(decode_filter(decoder, typed_struct)) == [
        ("value.typed_config.type_url", protodecode.ENVOY_REJECTS)
    ]


def test_free_form_and_unknown_values(decoder: protodecode.Decoder) -> None:
    from aimesh_policies.accessors import UNKNOWN

    # Struct fields (metadata) take anything; an unknown-until-apply value is never a pass.
    route = {"match": {"prefix": "/"}, "metadata": {"filter_metadata": {"x": {"a": [1, {}]}}}}
    assert decoder.decode(route, ROUTE) == []
    route["match"] = {"prefix": UNKNOWN}
    assert kinds(decoder.decode(route, ROUTE)) == [("match.prefix", protodecode.UNKNOWN_VALUE)]


def test_the_envoyfilter_spec_takes_camelcase_only(decoder: protodecode.Decoder) -> None:
    # The API server's CRD schema knows camelCase names only and prunes the rest.
    spec = {"workload_selector": {"labels": {"app": "a"}}, "configPatches": []}
    assert kinds(decoder.envoy_filter(spec)) == [
        ("spec.workload_selector", protodecode.PRUNED_FIELD)
    ]


def test_odd_input_never_raises(decoder: protodecode.Decoder) -> None:
    odd: list[Any] = [None, [], "x", 1, {"@type": 5}, {1: 2}, {"name": {"a": 1}}, {"a": [[[]]]}]
    for value in odd:
        decoder.decode(value, protodecode.APPLY_TO_MESSAGE["LISTENER"])
        decoder.envoy_filter(value)
        decoder.mesh_config(value)


def test_too_deep_a_config_is_reported_not_passed(decoder: protodecode.Decoder) -> None:
    # RBAC permissions nest without bound; past the limit the decoder says so.
    permission: dict[str, Any] = {"any": True}
    for _ in range(200):
        permission = {"and_rules": {"rules": [permission]}}
    problems = decoder.decode(permission, "envoy.config.rbac.v3.Permission")
    assert [p.kind for p in problems] == [protodecode.INVALID]
    assert "nested deeper" in problems[0].message


def test_a_proxy_version_must_be_a_regular_expression(decoder: protodecode.Decoder) -> None:
    match = {"proxy": {"proxyVersion": "(unclosed"}}
    spec = {
        "configPatches": [{"applyTo": "CLUSTER", "match": match, "patch": {"operation": "REMOVE"}}]
    }
    assert kinds(decoder.envoy_filter(spec)) == [
        ("spec.configPatches[0].match.proxy.proxyVersion", protodecode.INVALID)
    ]


# --- where the set is, and without it ------------------------------------------------------------


def test_the_cache_key_follows_the_pins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "descriptors"
    shutil.copytree(descriptors.MODULE_DIR, module)
    monkeypatch.setattr(descriptors, "MODULE_DIR", module)
    monkeypatch.setenv(descriptors.ENV_CACHE, str(tmp_path / "cache"))
    before = descriptors.default_path()
    assert before is not None
    assert before.parent.parent == tmp_path / "cache"
    go_mod = module / "go.mod"
    go_mod.write_text(go_mod.read_text().replace("v1.38.0", "v1.39.0"))
    after = descriptors.default_path()
    assert after is not None
    assert after != before
    (module / "go.sum").unlink()
    assert descriptors.default_path() is None  # no module: nothing to build or find


def test_an_explicit_set_takes_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = tmp_path / "set.binpb"
    monkeypatch.setenv(descriptors.ENV_SET, str(explicit))
    assert descriptors.locate() is None
    explicit.write_bytes(b"")
    assert descriptors.locate() == explicit


ENVOY_FILTER_DOC = {
    "apiVersion": "networking.istio.io/v1alpha3",
    "kind": "EnvoyFilter",
    "metadata": {"name": "f", "namespace": "team-a"},
    "spec": {"configPatches": []},
}
MESH_DOC = {
    "__pulumi__": {"type": "kubernetes:helm.sh/v3:Release", "name": "istiod"},
    "chart": "istiod",
    "values": {"meshConfig": {"enableAutoMtls": True}},
}


@pytest.mark.parametrize("content", [None, b"not a descriptor set"])
def test_without_a_readable_set_nothing_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes | None
) -> None:
    explicit = tmp_path / "set.binpb"
    if content is not None:
        explicit.write_bytes(content)
    monkeypatch.setenv(descriptors.ENV_SET, str(explicit))
    for name, doc in zip(DECODING_POLICIES, (ENVOY_FILTER_DOC, MESH_DOC), strict=True):
        policy = policy_named(name)
        assert policy is not None
        assert policy.level is Level.MANDATORY
        objs = objects_of_documents([doc], typed=True)
        found = [f for o in objs for f in evaluate(policy, o, Context())]
        assert len(found) == 1, found
        assert "cannot verify" in found[0].message
        assert "make descriptors" in found[0].message


def test_the_policy_judges_envoyfilters_only() -> None:
    policy = policy_named(DECODING_POLICIES[0])
    assert policy is not None
    assert policy.kinds == frozenset({ENVOY_FILTER})
