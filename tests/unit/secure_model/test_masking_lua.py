"""The response-masking Lua filter, really run (LuaJIT through lupa, as in Envoy) against a fake
Envoy stream handle: what is masked, what is left alone, large bodies, the content types it
skips and the Content-Length it keeps consistent.

The source under test is the one the program embeds in its generated EnvoyFilters (every stack,
under mocks), not the file it is read from: what Envoy would run is what is tested."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import evaluated
from tools import offline

LUA_TYPE = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"

lupa = pytest.importorskip("lupa", reason="lupa runs the Lua filter")

try:  # Envoy embeds LuaJIT: prefer it when lupa ships it.
    from lupa import luajit21 as lua_impl
except ImportError:  # pragma: no cover - depends on the lupa build
    import lupa as lua_impl

# A stand-in for Envoy's stream handle, written in Lua so that the filter calls it exactly as it
# calls Envoy's (`handle:headers():get(...)`, `handle:body():getBytes(...)`).
FAKE_ENVOY = """
function make_handle(headers, body)
  local state = {headers = headers, body = body, warnings = {}, body_calls = 0}
  local header_map = {}
  function header_map:get(name) return state.headers[string.lower(name)] end
  function header_map:remove(name) state.headers[string.lower(name)] = nil end
  function header_map:replace(name, value) state.headers[string.lower(name)] = value end
  local buffer = {}
  function buffer:length() return #state.body end
  function buffer:getBytes(start, length)
    return string.sub(state.body, start + 1, start + length)
  end
  function buffer:setBytes(value) state.body = value end
  local handle = {}
  function handle:headers() return header_map end
  function handle:body()
    state.body_calls = state.body_calls + 1
    if state.body == nil then return nil end
    return buffer
  end
  function handle:logWarn(message) table.insert(state.warnings, message) end
  return handle, state
end
"""

VISA = "4111111111111111"  # Luhn-valid test numbers
MASTERCARD = "5555 5555 5555 4444"
AMEX = "3782-822463-10005"


def embedded_sources() -> dict[str, set[str]]:
    """stack -> the inline Lua sources of the EnvoyFilters the program generates for it."""
    found: dict[str, set[str]] = {}
    for stack in offline.stacks():
        for resource in evaluated(stack).resources:
            if resource.inputs.get("kind") != "EnvoyFilter":
                continue
            for patch in resource.inputs["spec"]["configPatches"]:
                config = patch["patch"].get("value", {}).get("typed_config", {})
                if config.get("@type") == LUA_TYPE:
                    source = config["default_source_code"]["inline_string"]
                    found.setdefault(stack, set()).add(source)
    return found


@pytest.fixture(scope="module")
def source() -> str:
    sources = embedded_sources()
    assert {"dev", "ci"} <= set(sources), f"masking filters expected in dev and ci: {sources}"
    distinct = set().union(*sources.values())
    assert len(distinct) == 1, "every masking EnvoyFilter must embed the same source"
    return distinct.pop()


@pytest.fixture(scope="module")
def lua(source: str) -> Any:
    runtime = lua_impl.LuaRuntime(unpack_returned_tuples=True)
    runtime.execute(source)
    runtime.execute(FAKE_ENVOY)
    return runtime


def mask(lua: Any, text: str) -> str:
    return str(lua.globals().aimesh_mask(text))


def respond(lua: Any, body: str | None, headers: dict[str, str]) -> tuple[Any, Any]:
    table = lua.table_from({k.lower(): v for k, v in headers.items()})
    handle, state = lua.globals().make_handle(table, body)
    lua.globals().envoy_on_response(handle)
    return handle, state


def test_runs_under_luajit_like_envoy() -> None:
    assert lua_impl.LuaRuntime().eval("jit and jit.version or _VERSION")


@pytest.mark.parametrize("card", [VISA, MASTERCARD, AMEX])
def test_card_numbers_are_masked_keeping_the_last_four(lua: Any, card: str) -> None:
    masked = mask(lua, f'{{"note": "paid with {card} yesterday"}}')
    digits = card.replace(" ", "").replace("-", "")
    assert digits not in masked.replace(" ", "").replace("-", "")
    assert "*" * (len(digits) - 4) + digits[-4:] in masked
    assert masked.startswith('{"note": "paid with ')
    assert masked.endswith(' yesterday"}')
    json.loads(masked)  # still valid JSON


def test_emails_are_masked(lua: Any) -> None:
    masked = mask(lua, '{"to": "jane.doe+ml@example.co.uk", "cc": ["a_b@corp.example.com"]}')
    assert "@" not in masked
    assert json.loads(masked) == {"to": "[email]", "cc": ["[email]"]}


def test_sentence_full_stop_is_kept(lua: Any) -> None:
    assert mask(lua, "write to ops@example.com.") == "write to [email]."


@pytest.mark.parametrize(
    "text",
    [
        '{"predictions": [0.1234567890123456, 0.8765432109876543]}',  # float digits
        '{"predictions": [1, 0, 1], "model_name": "fraud-detector"}',
        '{"id": "order-4111111111111112"}',  # fails the Luhn check
        "4111111111111111.5",  # part of a decimal number
        "v4111111111111111",  # part of a word
        "1234 5678",  # too short
        "user at example dot com, @handle, a@b",  # not e-mail addresses
        "",
    ],
)
def test_other_content_is_left_untouched(lua: Any, text: str) -> None:
    assert mask(lua, text) == text


def test_large_body_masks_every_occurrence(lua: Any) -> None:
    records = [
        {"i": i, "p": 0.5 + i / 1e6, "card": VISA, "mail": f"u{i}@example.org"}
        for i in range(20000)
    ]
    body = json.dumps({"predictions": records})
    assert len(body) > 1_500_000
    masked = json.loads(mask(lua, body))["predictions"]
    assert all(r["card"] == "************1111" for r in masked)
    assert all(r["mail"] == "[email]" for r in masked)
    assert [r["p"] for r in masked] == [r["p"] for r in records]


def test_response_json_is_masked_and_content_length_follows(lua: Any) -> None:
    body = json.dumps({"contact": "jane@example.com", "card": MASTERCARD})
    _, state = respond(
        lua, body, {"content-type": "application/json", "content-length": str(len(body))}
    )
    assert json.loads(state.body) == {"contact": "[email]", "card": "************4444"}
    assert state.headers["content-length"] == str(len(state.body))


def test_response_without_a_match_is_not_rewritten(lua: Any) -> None:
    body = '{"predictions": [0.2, 0.8]}'
    _, state = respond(lua, body, {"content-type": "application/json", "content-length": "27"})
    assert state.body == body
    assert state.headers["content-length"] == "27"


@pytest.mark.parametrize("ctype", ["application/octet-stream", "image/png", ""])
def test_binary_content_types_are_not_buffered(lua: Any, ctype: str) -> None:
    _, state = respond(lua, f"card {VISA}", {"content-type": ctype})
    assert state.body_calls == 0
    assert state.body == f"card {VISA}"


def test_text_content_is_masked(lua: Any) -> None:
    _, state = respond(lua, f"card {VISA}", {"content-type": "text/plain; charset=utf-8"})
    assert state.body == "card ************1111"


def test_compressed_body_is_not_parsed_and_is_reported(lua: Any) -> None:
    _, state = respond(
        lua, "\x1f\x8b...", {"content-type": "application/json", "content-encoding": "gzip"}
    )
    assert state.body_calls == 0
    assert len(state.warnings) == 1


def test_empty_and_missing_bodies(lua: Any) -> None:
    _, state = respond(lua, "", {"content-type": "application/json"})
    assert state.body == ""
    _, state = respond(lua, None, {"content-type": "application/json"})
    assert state.body is None


def test_request_asks_for_an_uncompressed_response(lua: Any) -> None:
    headers = lua.table_from({"accept-encoding": "gzip, br", "x-other": "kept"})
    handle, state = lua.globals().make_handle(headers, "")
    lua.globals().envoy_on_request(handle)
    assert state.headers["accept-encoding"] is None
    assert state.headers["x-other"] == "kept"
