"""Structural unknowns: a container of fields (a whole `spec`, a list, one list element) that is
unknown at preview hides every field under it, so a check that only reads leaves would pass it
silently. `unknown_at` reports exactly those paths (not deep: an unknown image tag under a
container is not a reason to complain about privileges)."""

from __future__ import annotations

from aimesh_policies.accessors import UNKNOWN, as_list, get
from aimesh_policies.framework import Finding, unknown_finding
from aimesh_policies.k8s_object import K8sObject


def _expand(obj: K8sObject, path: str) -> list[str]:
    """Concrete paths for a path that may contain `[]` (every element of a list)."""
    if "[]" not in path:
        return [path]
    head, _, tail = path.partition("[]")
    items = as_list(_value(obj, head))
    out: list[str] = []
    for i in range(len(items)):
        out.extend(_expand(obj, f"{head}[{i}]{tail}"))
    return out


def _value(obj: K8sObject, path: str) -> object:
    current: object = obj.body
    for part in path.split("."):
        name, _, index = part.partition("[")
        if name:
            current = get(current, name)
        while index:
            number, _, index = index.partition("]")
            index = index.removeprefix("[")
            items = as_list(current)
            i = int(number) if number.isdecimal() else -1
            current = items[i] if 0 <= i < len(items) else None
        if current is UNKNOWN or current is None:
            return current
    return current


def unknown_at(obj: K8sObject, *paths: str) -> list[Finding]:
    """An "unknown until apply" finding per path (with `[]` expanded) whose value is unknown."""
    found: list[Finding] = []
    seen: set[str] = set()
    for pattern in paths:
        for path in _expand(obj, pattern):
            # Report the outermost unknown only (patterns go from outer to inner).
            inside = any(path == s or path.startswith((f"{s}.", f"{s}[")) for s in seen)
            if not inside and _value(obj, path) is UNKNOWN:
                seen.add(path)
                found.append(unknown_finding(obj, path))
    return found
