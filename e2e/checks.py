"""What the scenario checks through the API: the stack's objects are there and say what the
program meant; nothing is left that the stack does not own; no secret is in the state in clear.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from e2e.kube import ApiError, Json, Kube, object_path

# How the Pulumi state marks a secret value (the value itself is ciphertext beside it).
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # noqa: S105 - a marker, not a secret
MANAGED_BY = ("app.kubernetes.io/managed-by", "aimesh")
# Types in the state that are not Kubernetes objects of their own.
NOT_OBJECTS = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


class Resources:
    """(apiVersion, kind) -> (plural, namespaced), from the API server's discovery."""

    def __init__(self, api: Kube) -> None:
        self.api = api
        self.kinds: dict[tuple[str, str], tuple[str, bool]] = {}
        # (groupVersion, plural, kind, namespaced) of every kind that can be listed.
        self.lists: set[tuple[str, str, str, bool]] = set()
        self.refresh()

    def refresh(self) -> None:
        versions = ["v1"]
        for group in self.api.request("GET", "/apis").get("groups", []):
            versions += [v["groupVersion"] for v in group.get("versions", [])]
        for gv in versions:
            try:
                listing = self.api.request("GET", "/api/v1" if gv == "v1" else f"/apis/{gv}")
            except ApiError:
                continue
            for res in listing.get("resources", []):
                if "/" in res.get("name", ""):  # subresources (status, scale)
                    continue
                namespaced = bool(res.get("namespaced"))
                self.kinds[(gv, res["kind"])] = (res["name"], namespaced)
                if "list" in res.get("verbs", []):
                    self.lists.add((gv, res["name"], res["kind"], namespaced))

    def path(self, ref: ObjectRef) -> str:
        plural, namespaced = self._lookup(ref)
        return object_path(ref.api_version, plural, ref.name, ref.namespace if namespaced else "")

    def namespaced(self, ref: ObjectRef) -> bool:
        return self._lookup(ref)[1]

    def _lookup(self, ref: ObjectRef) -> tuple[str, bool]:
        key = (ref.api_version, ref.kind)
        if key not in self.kinds:
            self.refresh()
        return self.kinds[key]


def state_objects(deployment: Json) -> list[tuple[Json, ObjectRef]]:
    """Every Kubernetes object the stack manages (not charts, providers or reads), on the
    cluster: objects on a provider that only renders (a Helm Release's mirror, written as YAML
    for the policy pack to judge) never reach the API server."""
    resources = deployment.get("resources", [])
    render_only = {
        f"{res.get('urn')}::{res.get('id')}"
        for res in resources
        if str(res.get("type", "")).startswith("pulumi:providers:kubernetes")
        and (res.get("inputs") or {}).get("renderYamlToDirectory")
    }
    found = []
    for res in resources:
        rtype = str(res.get("type", ""))
        if not rtype.startswith("kubernetes:") or rtype.startswith("pulumi:providers"):
            continue
        if rtype in NOT_OBJECTS or res.get("external") or not res.get("custom"):
            continue
        if res.get("provider") in render_only:
            continue
        outputs = res.get("outputs") or {}
        meta = outputs.get("metadata") or {}
        if not outputs.get("apiVersion") or not meta.get("name"):
            continue
        ref = ObjectRef(
            str(outputs["apiVersion"]),
            str(outputs["kind"]),
            str(meta.get("namespace") or ""),
            str(meta["name"]),
        )
        found.append((res, ref))
    return found


def _scalar_equal(want: Any, have: Any) -> bool:
    if want == have:
        return True
    # int-or-string fields (ports, percentages) may come back in the other form.
    return isinstance(want, int | float | str) and str(want) == str(have)


def differences(want: Any, have: Any, path: str = "") -> list[str]:
    """Where `have` (live) does not say what `want` (the program's inputs) says. Extra live
    fields (defaults, status) are fine; secret inputs are not compared (they are ciphertext)."""
    if isinstance(want, dict) and want.get(SECRET_SIG):
        return []
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [f"{path or '.'}: expected an object, found {json.dumps(have)[:80]}"]
        out: list[str] = []
        for key, value in want.items():
            if key not in have:
                out.append(f"{path}.{key}: missing in the API server (pruned or dropped?)")
            else:
                out += differences(value, have[key], f"{path}.{key}")
        return out
    if isinstance(want, list):
        if not isinstance(have, list) or len(have) != len(want):
            return [f"{path}: expected {len(want)} items, found {json.dumps(have)[:120]}"]
        return [
            d
            for i, (w, h) in enumerate(zip(want, have, strict=True))
            for d in differences(w, h, f"{path}[{i}]")
        ]
    if not _scalar_equal(want, have):
        return [f"{path}: expected {json.dumps(want)[:80]}, found {json.dumps(have)[:80]}"]
    return []


# Inputs the provider consumes itself rather than sending to the API server.
_PROVIDER_ONLY = (
    "metadata.annotations.pulumi.com/skipAwait",
    "metadata.annotations.pulumi.com/patchForce",
)


def verify_objects(api: Kube, resources: Resources, deployment: Json) -> dict[str, Any]:
    """Every object of the stack is in the API server and says what the program meant."""
    problems: list[str] = []
    objects = state_objects(deployment)
    for res, ref in objects:
        live = api.get(resources.path(ref))
        if live is None:
            problems.append(f"{ref}: in the stack, not in the API server")
            continue
        want = {
            k: v for k, v in (res.get("inputs") or {}).items() if k not in ("apiVersion", "kind")
        }
        if not resources.namespaced(ref) and "namespace" in (want.get("metadata") or {}):
            # The provider's Check defaults the namespace of a custom resource whose CRD it
            # cannot see yet (installed by a Helm Release in the same update) to "default";
            # its Create and Diff drop it again for a cluster-scoped kind, and the API server
            # has no namespace to keep: nothing to compare.
            want["metadata"] = {k: v for k, v in want["metadata"].items() if k != "namespace"}
        for diff in differences(want, live):
            if not any(diff.startswith("." + p) for p in _PROVIDER_ONLY):
                problems.append(f"{ref}: {diff}")
    if problems:
        raise AssertionError("objects differ from the program:\n  " + "\n  ".join(problems[:40]))
    return {
        "stack_resources": len(deployment.get("resources", [])),
        "kubernetes_objects": len(objects),
        "verified_in_api": len(objects),
    }


def managed_objects(api: Kube, resources: Resources) -> dict[ObjectRef, set[tuple[str, str]]]:
    """Every object in the cluster carrying aimesh's managed-by label, with the (kind, name) of
    its owners: a controller's object (cert-manager's CertificateRequest of a Certificate,
    whose labels it copies) is owned and goes with its owner through the garbage collector."""
    found: dict[ObjectRef, set[tuple[str, str]]] = {}
    selector = {"labelSelector": f"{MANAGED_BY[0]}={MANAGED_BY[1]}"}
    for gv, plural, kind, _ in sorted(resources.lists):
        if plural in ("events", "bindings", "componentstatuses"):
            continue
        base = "/api/v1" if gv == "v1" else f"/apis/{gv}"
        try:
            items = api.request("GET", f"{base}/{plural}", query=selector).get("items", [])
        except ApiError:
            continue
        for item in items:
            meta = item.get("metadata", {})
            owners = {(o["kind"], o["name"]) for o in meta.get("ownerReferences") or []}
            found[ObjectRef(gv, kind, meta.get("namespace", ""), meta["name"])] = owners
    return found


# Written by the API server or by controllers as they observe an object (a CronJob's
# lastScheduleTime, a Deployment's replicas), never by a client's change of the object itself.
_SERVER_WRITTEN_METADATA = ("resourceVersion", "managedFields", "generation")


def object_fingerprints(api: Kube, resources: Resources, deployment: Json) -> dict[str, str]:
    """A digest of each stack object as a client wrote it: everything but `status` and the
    metadata the server maintains. Comparing resourceVersions instead would count a controller's
    status write (the window reconciler's CronJob firing) as a change by Pulumi."""
    out: dict[str, str] = {}
    for _, ref in state_objects(deployment):
        live = api.get(resources.path(ref))
        if live is None:
            out[str(ref)] = "absent"
            continue
        written = {k: v for k, v in live.items() if k != "status"}
        written["metadata"] = {
            k: v for k, v in live.get("metadata", {}).items() if k not in _SERVER_WRITTEN_METADATA
        }
        text = json.dumps(written, sort_keys=True, separators=(",", ":"))
        out[str(ref)] = hashlib.sha256(text.encode()).hexdigest()
    return out


def plaintext_secrets(exported: str, secrets: list[str]) -> list[str]:
    """Which of `secrets` (or private-key material) appear in clear in a stack export."""
    leaks = [f"secret value #{i}" for i, value in enumerate(secrets) if value and value in exported]
    if "PRIVATE KEY-----" in exported or "client-key-data" in exported:
        leaks.append("private key material")
    return leaks
