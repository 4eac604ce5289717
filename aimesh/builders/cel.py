"""Small helpers that write CEL for the admission guardrails (pure, no Pulumi imports).

The guardrails (builders/guardrails.py) are ValidatingAdmissionPolicies: CEL that the API server
evaluates in-process. Their CEL stays inside the standard CEL language and its macros (`has`,
`all`, `exists`, `map`, `filter`, `in`, `size`, `startsWith`, `matches`), with none of the
Kubernetes extension libraries (`lowerAscii`, `join`, optionals, `quantity`, ...), so that a
reference implementation of standard CEL (cel-python, in the tests) evaluates exactly what the
API server evaluates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def literal(value: Any) -> str:
    """A JSON-like Python value as a CEL literal (maps, lists, strings, ints, booleans).

    The API server type-checks aggregate literals as homogeneous: a map whose values (or a list
    whose elements) differ in type is a compile error. Every value inside a map or list is
    therefore wrapped in `dyn(...)`, which makes any literal homogeneous."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return string(value)
    if isinstance(value, Mapping):
        items = (f"{string(str(k))}: dyn({literal(v)})" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(f"dyn({literal(v)})" for v in value) + "]"
    raise TypeError(f"no CEL literal for {type(value).__name__}")


def record(**fields: str) -> str:
    """A CEL map literal of already-written CEL expressions, each wrapped in `dyn(...)` (see
    `literal`: the API server wants aggregate literals homogeneous)."""
    return "{" + ", ".join(f"{string(k)}: dyn({v})" for k, v in fields.items()) + "}"


def string(value: str) -> str:
    """A single-quoted CEL string literal."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def present(path: str) -> str:
    """`has()` for every step of a dotted field path below its root variable, so that a missing
    parent is `false` instead of a "no such key" error (which the API server would turn into a
    denial under failurePolicy Fail)."""
    root, *fields = path.split(".")
    steps = [f"has({root}.{'.'.join(fields[: i + 1])})" for i in range(len(fields))]
    return " && ".join(steps) if steps else "true"


def or_empty_list(path: str) -> str:
    """The list at `path`, or [] where it (or a parent) is absent."""
    return f"({present(path)} ? {path} : [])"


def key_of(holder: str, key: str) -> str:
    """`holder[key]` guarded: true when `holder` (a labels/annotations map path) has `key`."""
    return f"({present(holder)} && {string(key)} in {holder})"
