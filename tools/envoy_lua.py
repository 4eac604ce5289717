"""The Lua sources a stack's EnvoyFilters embed, compiled with LuaJIT (what Envoy runs them on).

The policy pack decodes an EnvoyFilter's Lua filter config against Envoy's API, but a Lua
source is just a string to it: a syntax error there passes every decode and fails only in the
proxy (Envoy refuses the listener update, so the filter, e.g. response masking, is absent).
`make check` compiles every inline source it finds (`inline_code`, `default_source_code`,
`source_codes`, a per-route `source_code`; snake_case or camelCase) without running it;
`tests/unit/test_masking_lua.py` runs aimesh's own source and checks what it does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

LUA_TYPES = (
    "envoy.extensions.filters.http.lua.v3.Lua",
    "envoy.extensions.filters.http.lua.v3.LuaPerRoute",
)


@dataclass(frozen=True)
class LuaSource:
    urn: str
    path: str  # JSON path in the resource's properties
    source: str


def _inline(data_source: Any) -> str | None:
    if not isinstance(data_source, Mapping):
        return None
    text = data_source.get("inline_string", data_source.get("inlineString"))
    return text if isinstance(text, str) else None


def _sources_in(config: Mapping[str, Any], path: str) -> Iterator[tuple[str, str]]:
    code = config.get("inline_code", config.get("inlineCode"))
    if isinstance(code, str):
        yield f"{path}.inline_code", code
    for key in ("default_source_code", "defaultSourceCode", "source_code", "sourceCode"):
        text = _inline(config.get(key))
        if text is not None:
            yield f"{path}.{key}", text
    codes = config.get("source_codes", config.get("sourceCodes"))
    if isinstance(codes, Mapping):
        for name, data_source in codes.items():
            text = _inline(data_source)
            if text is not None:
                yield f'{path}.source_codes["{name}"]', text


def _walk(value: Any, path: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    if depth > 64:
        return
    if isinstance(value, Mapping):
        type_url = value.get("@type")
        if isinstance(type_url, str) and type_url.rsplit("/", 1)[-1] in LUA_TYPES:
            yield from _sources_in(value, path)
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]", depth + 1)


def lua_sources(resources: Iterable[Any]) -> list[LuaSource]:
    """Every inline Lua source in the EnvoyFilters among `resources` (anything with `urn` and
    `properties`, as tools.analyzer.Resource)."""
    found: list[LuaSource] = []
    for resource in resources:
        props = getattr(resource, "properties", None)
        if not isinstance(props, Mapping) or props.get("kind") != "EnvoyFilter":
            continue
        for path, source in _walk(props.get("spec"), "spec"):
            found.append(LuaSource(str(getattr(resource, "urn", "")), path, source))
    return found


def compile_errors(sources: Iterable[LuaSource]) -> list[str]:
    """`<urn>: <path>: <error>` for every source LuaJIT does not compile; raises ImportError
    when lupa (with LuaJIT) is not installed."""
    from lupa import luajit21  # Envoy embeds LuaJIT: compile with the same dialect

    runtime = luajit21.LuaRuntime(unpack_returned_tuples=True)
    load = runtime.eval("load")
    errors: list[str] = []
    for item in sources:
        compiled = load(item.source, "=" + item.path)
        if isinstance(compiled, tuple) and compiled[0] is None:
            errors.append(f"{item.urn}: {item.path}: Lua does not compile: {compiled[1]}")
    return errors
