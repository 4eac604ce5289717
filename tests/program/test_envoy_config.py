"""Every stack's Envoy-level configuration decodes against the Envoy and Istio APIs of Istio 1.30.3.

The CRD schema checks stop at an EnvoyFilter's `patch.value` and istiod's `meshConfig`: both are
free-form there. Here every EnvoyFilter the program registers (rate limits, the masking Lua
filter) is decoded strictly, each `typed_config` by its `@type`, and so is the meshConfig of the
istiod release with its default ProxyConfig (`aimesh_policies.protodecode`, the same decoder the
policy pack runs). Skipped, with the reason, only where Go is absent to build the descriptor set.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aimesh_policies import protodecode

from aimesh.components.charts import MIRROR_SUFFIX
from tests.conftest import evaluated
from tools import offline

LUA = "envoy.extensions.filters.http.lua.v3.Lua"
LOCAL_RATE_LIMIT = "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"


@pytest.fixture(scope="module")
def decoder(descriptor_set: Path) -> protodecode.Decoder:
    return protodecode.decoder_for(descriptor_set)


def envoy_filters(stack: str) -> list[dict[str, Any]]:
    return [r.inputs for r in evaluated(stack).resources if r.inputs.get("kind") == "EnvoyFilter"]


def istiod_mesh_config(stack: str) -> dict[str, Any]:
    evaluation = evaluated(stack)
    releases = [
        r.inputs
        for r in evaluation.resources
        if r.type.startswith("kubernetes:helm.sh/")
        and str(r.inputs.get("chart")) == "istiod"
        and not r.name.endswith(MIRROR_SUFFIX)  # the Release's render-only mirror: same values
    ]
    # Render mode's Helm v3 Chart hands its values to the provider's `helm template` (on a
    # cluster, the Release's mirror does the same with the same values: not counted twice).
    releases = releases or [
        opts
        for token, args in evaluation.calls
        if token == offline.HELM_TEMPLATE
        and (opts := json.loads(args["jsonOpts"])).get("chart") == "istiod"
    ]
    assert len(releases) == 1, f"{stack}: expected one istiod release, found {len(releases)}"
    mesh: dict[str, Any] = releases[0]["values"]["meshConfig"]
    return mesh


def typed_configs(value: Any) -> Iterator[str]:
    """Every @type under a patch value (typed_config and typed_per_filter_config entries)."""
    if isinstance(value, dict):
        if isinstance(value.get("@type"), str):
            yield value["@type"].rsplit("/", 1)[-1]
        for item in value.values():
            yield from typed_configs(item)
    elif isinstance(value, list):
        for item in value:
            yield from typed_configs(item)


@pytest.mark.parametrize("stack", offline.stacks())
def test_every_envoyfilter_decodes_cleanly(stack: str, decoder: protodecode.Decoder) -> None:
    filters = envoy_filters(stack)
    assert filters, f"{stack}: the program generates no EnvoyFilter: nothing was decoded"
    problems = [
        f"{f['metadata']['namespace']}/{f['metadata']['name']}: {p.path}: {p.message}"
        for f in filters
        for p in decoder.envoy_filter(f["spec"])
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("stack", offline.stacks())
def test_the_filters_carry_the_configs_they_are_for(stack: str) -> None:
    # The decode above judged real configs: rate limits everywhere, masking outside production.
    types = {t for f in envoy_filters(stack) for t in typed_configs(f["spec"])}
    assert LOCAL_RATE_LIMIT in types
    assert (LUA in types) == (stack != "prod"), f"{stack}: masking filter presence: {types}"


@pytest.mark.parametrize("stack", offline.stacks())
def test_mesh_config_and_default_proxy_config_decode_cleanly(
    stack: str, decoder: protodecode.Decoder
) -> None:
    config, _ = offline.stack_config(stack)
    if "istio" in str(config.get("aimesh:bringYourOwn", "")):
        pytest.skip(f"{stack} brings its own Istio: no istiod values of aimesh's to decode")
    mesh = istiod_mesh_config(stack)
    assert mesh.get("defaultConfig"), f"{stack}: no default ProxyConfig to decode"
    problems = decoder.mesh_config(mesh, "values.meshConfig")
    assert not problems, "\n".join(f"{p.path}: {p.message}" for p in problems)
    # The default ProxyConfig on its own, as istiod merges it (MergeProxyConfig).
    assert not decoder.decode(mesh["defaultConfig"], protodecode.PROXY_CONFIG)


def test_a_misspelled_mesh_setting_would_be_caught(decoder: protodecode.Decoder) -> None:
    # The same decode on the dev stack's mesh config with one key misspelled: not a vacuous pass.
    mesh = dict(istiod_mesh_config("dev"))
    mesh["defaultConfig"] = {**mesh["defaultConfig"], "holdApplicationUntilProxyStart": True}
    problems = decoder.mesh_config(mesh)
    assert [(p.path, p.kind) for p in problems] == [
        ("defaultConfig.holdApplicationUntilProxyStart", protodecode.UNKNOWN_FIELD)
    ]
