"""Response masking (non-production stacks): a Lua filter on the model's inbound sidecar that
masks card numbers and e-mail addresses (builders/lua/mask_response.lua)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aimesh.builders import access
from aimesh.builders.common import ModelPlatform, metadata
from aimesh.builders.secure_model.meta import ENVOY_FILTER_API, model_labels, workload_selector
from aimesh.builders.secure_model.sidecar import inbound_http_filter_before_router
from aimesh.settings import ModelSettings

LUA_FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"

# The script sits with the other builder assets, in builders/lua/.
LUA_SOURCE = Path(__file__).resolve().parent.parent / "lua" / "mask_response.lua"


def lua_source() -> str:
    return LUA_SOURCE.read_text()


def masking_filter(platform: ModelPlatform, model: ModelSettings) -> dict[str, Any] | None:
    """Lua filter masking card numbers and e-mail addresses in the model's responses, on in
    non-production stacks (`platform.masking_enabled`)."""
    if not platform.masking_enabled(model):
        return None
    return {
        "apiVersion": ENVOY_FILTER_API,
        "kind": "EnvoyFilter",
        "metadata": metadata(
            access.short_name(model.name, "masking"), model.ns, model_labels(model)
        ),
        "spec": {
            "workloadSelector": {"labels": workload_selector(model)},
            "configPatches": [
                inbound_http_filter_before_router(
                    "envoy.filters.http.lua",
                    {
                        "@type": LUA_FILTER_TYPE,
                        "default_source_code": {"inline_string": lua_source()},
                    },
                )
            ],
        },
    }
