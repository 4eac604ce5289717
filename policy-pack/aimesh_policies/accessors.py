"""Total accessors over plain values, and the UNKNOWN marker.

Values unknown during preview (Pulumi's sentinel strings, or `pulumi.output.Unknown` when a test
feeds engine inputs directly) become the `UNKNOWN` marker, which is not a str/bool/int/Mapping, so
typed accessors treat it as absent while `unknown_paths` finds it for the "cannot verify" findings.

Every function here is total: any input (wrong types, missing fields, unknowns) yields a value,
never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

# The pulumi_policy proxy (pulumi_policy/proxy.py) raises UnknownValueError on access to an unknown
# value; its `["__target"]` item hands out the wrapped container without checking. These are its
# sentinels (the engine marshals every unknown as one of them).
UNKNOWN_SENTINELS: Final = frozenset(
    {
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
        "04da6b54-80e4-46f7-96ec-b56ff0331ba9",  # string
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
        "030794c1-ac77-496b-92df-f27374a8bd58",  # asset
        "e48ece36-62e2-4504-bad9-02848725956a",  # archive
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
    }
)


class Unknown:
    """A value Pulumi does not know until apply. A singleton: compare with `is UNKNOWN`."""

    _instance: Unknown | None = None

    def __new__(cls) -> Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown>"

    def __bool__(self) -> bool:
        return False


UNKNOWN: Final = Unknown()

SENTINEL_UNKNOWN_STRING: Final = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def is_unknown(value: object) -> bool:
    return value is UNKNOWN


def _is_pulumi_unknown(value: object) -> bool:
    # pulumi.output.Unknown, without importing the SDK's internals here.
    cls = type(value)
    return cls.__name__ == "Unknown" and cls.__module__.startswith("pulumi")


def plain(value: object, _depth: int = 0) -> Any:
    """A plain JSON-like copy of `value`: proxies unwrapped (without tripping their unknown
    checks), unknowns as `UNKNOWN`, anything exotic (assets, archives) as its str()."""
    if _depth > 200:  # a self-referencing structure: stop rather than recurse forever
        return UNKNOWN
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return UNKNOWN if value in UNKNOWN_SENTINELS else value
    if value is UNKNOWN or _is_pulumi_unknown(value):
        return UNKNOWN
    target = proxy_target(value)
    if target is not None:
        return plain(target, _depth + 1)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key in list(value.keys()):
            out[str(key)] = plain(raw_item(value, key), _depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [plain(v, _depth + 1) for v in value]
    if hasattr(value, "value") and type(value).__name__ == "Secret":
        # pulumi_policy.secret.Secret (only when secrets are proxied): judge the wrapped value.
        return plain(value.value, _depth + 1)
    return str(value)


def proxy_target(value: object) -> object | None:
    name = type(value).__name__
    if name in ("_DictProxy", "_ListProxy", "_DictSecretsProxy", "_ListSecretsProxy"):
        try:
            target: object = value["__target"]  # type: ignore[index]  # the proxies' escape hatch
            return target
        except Exception:
            return None
    return None


def raw_item(mapping: Mapping[Any, Any], key: Any) -> Any:
    try:
        return mapping[key]
    except Exception:
        return UNKNOWN


def unproxied(value: object) -> object:
    """json's hook for what it cannot encode: the SDK's proxies (their wrapped container, encoded
    in turn); anything else raises TypeError (not cacheable)."""
    target = proxy_target(value)
    if target is None:
        raise TypeError(type(value).__name__)
    return target


def get(value: Any, path: str) -> Any:
    """`value` at a dotted path ("spec.mtls.mode"); None when any step is missing or not a
    mapping; UNKNOWN when a step is unknown (so unknowns propagate)."""
    current = value
    for part in path.split(".") if path else ():
        if current is UNKNOWN:
            return UNKNOWN
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def maps(value: Any) -> list[Mapping[str, Any]]:
    """The mapping elements of a list (anything else is dropped)."""
    return [v for v in as_list(value) if isinstance(v, Mapping)]


def str_list(value: Any) -> list[str]:
    """The string elements of a list; a lone string counts as a one-element list."""
    if isinstance(value, str):
        return [value]
    return [v for v in as_list(value) if isinstance(v, str)]


def as_int(value: Any) -> int | None:
    """An int from an int or a decimal string (ports arrive both ways); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        # ASCII digits only: str.isdigit() also accepts e.g. "²", which int() rejects.
        if text and text.isascii() and text.isdigit():
            return int(text)
    return None


def as_bool(value: Any) -> bool | None:
    """A bool from a bool or a "true"/"false" string (annotations are strings); else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def str_map(value: Any) -> dict[str, str]:
    """A label/annotation map: only string keys with string values (unknowns dropped)."""
    return {k: v for k, v in as_map(value).items() if isinstance(k, str) and isinstance(v, str)}


def unknown_paths(value: Any, path: str = "") -> list[str]:
    """Every path at or under `value` that is unknown ("spec.rules[0].from"). `path` may use
    `[]` to stand for every element of a list, e.g. "spec.rules[].from"; the search is deep."""
    return _unknown_under(value, _split(path), "")


def _split(path: str) -> list[str]:
    parts: list[str] = []
    for raw in path.split(".") if path else ():
        if raw.endswith("[]"):
            if raw[:-2]:
                parts.append(raw[:-2])
            parts.append("[]")
        else:
            parts.append(raw)
    return parts


def _join(prefix: str, part: str) -> str:
    if part.startswith("["):
        return prefix + part
    return f"{prefix}.{part}" if prefix else part


def _unknown_under(value: Any, parts: list[str], at: str) -> list[str]:
    if value is UNKNOWN:
        return [at or "(whole object)"]
    if not parts:
        return _deep_unknowns(value, at, 0)
    head, rest = parts[0], parts[1:]
    if head == "[]":
        found: list[str] = []
        for i, item in enumerate(as_list(value)):
            found.extend(_unknown_under(item, rest, _join(at, f"[{i}]")))
        return found
    if isinstance(value, Mapping):
        return _unknown_under(value.get(head), rest, _join(at, head))
    return []


def _deep_unknowns(value: Any, at: str, depth: int) -> list[str]:
    if value is UNKNOWN:
        return [at or "(whole object)"]
    if depth > 50:
        return []
    found: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            found.extend(_deep_unknowns(item, _join(at, str(key)), depth + 1))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(_deep_unknowns(item, _join(at, f"[{i}]"), depth + 1))
    return found
