"""The policy framework: `Policy`, `Finding`, `Context` and the two evaluation entry points.

A policy is data plus pure functions over `K8sObject`s:

- `check(obj, ctx)` for a resource rule (what one object does wrong), or
- `check_stack(objs, ctx)` for a stack rule (what is missing across the stack),
- optionally `fix(obj)` returning a corrected manifest when a safe automatic fix exists.

The pulumi_policy wrappers (`aimesh_policies.build_pulumi_policies`) are thin and catch nothing by
design: checks are total (they use the safe accessors of `accessors.py`), which the property-based
tests prove over malformed manifests and unknown values.

Unknown values: a policy lists its `critical` fields; when any of them is unknown during preview,
`evaluate` reports "cannot verify <field>: value unknown until apply" instead of letting the
object pass (the check still runs on what is known).

Exemptions (`exemptNamespaces`, `exemptWorkloads`, `exemptPorts` in a policy's config) each carry
a `reason` and an `expires` date. An exemption exempts through its `expires` day (UTC); after it
it exempts nothing, and every finding it would have hidden says that it lapsed and when. Entries
without a reason or a valid date never exempt (the CLI refuses them against the schema first).
"""

from __future__ import annotations

import datetime
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Final

from aimesh_policies.accessors import (
    UNKNOWN,
    as_int,
    as_list,
    as_map,
    as_str,
    str_list,
    str_map,
    unproxied,
)
from aimesh_policies.k8s_object import GroupKind, K8sObject
from aimesh_policies.provenance import in_user_terms, setting_of


class Level(Enum):
    """Default enforcement: MANDATORY for zero-trust weakening, ADVISORY for hygiene."""

    MANDATORY = "mandatory"
    ADVISORY = "advisory"


class Severity(Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Finding:
    """One violation. `message` names the resource, the field and the fix, never a secret value."""

    message: str
    urn: str = ""


def show(value: Any) -> str:
    """A value as a message shows it. Numbers cross the analyzer protocol as doubles (protobuf
    Struct), so a port written `80` arrives as `80.0`: integral numbers are shown as integers.
    Lists are shown element by element, unknowns as `<unknown>`, booleans as YAML spells them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if value is None:
        return "<unset>"
    if value is UNKNOWN:
        return "<unknown>"
    return str(value)


def finding(obj: K8sObject, path: str, problem: str, fix: str) -> Finding:
    """The house format: `<Kind ns/name>: <field>: <problem>. Fix: <fix>`."""
    where = obj.field(path)
    head = f"{obj.ref}: {where}: " if where else f"{obj.ref}: "
    return Finding(f"{head}{problem.rstrip('.')}. Fix: {fix}", obj.urn)


def unknown_finding(obj: K8sObject, path: str) -> Finding:
    return Finding(
        f"{obj.ref}: {path}: cannot verify: value unknown until apply. Fix: make the value "
        "known at preview (a literal or config), or re-run the check after apply.",
        obj.urn,
    )


# --- configuration -------------------------------------------------------------------------------

DEFAULT_MESH_ROOT: Final = "istio-system"
# Control planes stay out of the sidecar mesh (the API server cannot speak Istio mTLS to their
# webhooks), plus the namespaces Kubernetes and kind own.
DEFAULT_CONTROL_PLANE_NAMESPACES: Final = (
    "istio-system",
    "cert-manager",
    "kserve",
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
)
DEFAULT_MODEL_WORKLOAD_LABELS: Final = ("aimesh.io/model", "serving.kserve.io/inferenceservice")
DEFAULT_GATEWAY_NAMESPACES: Final = ("istio-ingress",)

_DATE = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _exemptions(key: str, what: dict[str, Any], description: str) -> dict[str, Any]:
    """The schema of one exemption list: each entry names what it exempts, why, and until when."""
    return {
        "type": "array",
        "default": [],
        "description": description
        + " Each entry needs a `reason` and an `expires` date (YYYY-MM-DD, UTC): it exempts "
        "through that day and nothing after it.",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": [key, "reason", "expires"],
            "properties": {
                key: what,
                "reason": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Why this is exempt (a ticket, the risk accepted, by whom).",
                },
                "expires": {
                    "type": "string",
                    "pattern": _DATE,
                    "description": "The last day the exemption applies (YYYY-MM-DD, UTC).",
                },
            },
        },
    }


# JSON schema of the configuration every policy accepts (the CLI validates
# `--policy-pack-config` against it and fills in the defaults). Config is per policy in Pulumi, so
# every policy declares the shared keys.
COMMON_CONFIG_SCHEMA: Final[dict[str, dict[str, Any]]] = {
    "exemptNamespaces": _exemptions(
        "name",
        {"type": "string", "minLength": 1},
        "Namespaces this policy does not judge at all: [{name, reason, expires}].",
    ),
    "exemptWorkloads": _exemptions(
        "name",
        {"type": "string", "minLength": 1},
        "Objects this policy does not judge: [{name, reason, expires}], name as "
        "`namespace/name` (`namespace/*` for all of a namespace; `name` alone for "
        "cluster-scoped objects).",
    ),
    "exemptPorts": _exemptions(
        "port",
        {"type": "integer", "minimum": 1, "maximum": 65535},
        "Ports that may be excluded from traffic capture or have a port-level mTLS exception "
        "(e.g. a metrics port scraped from outside the mesh): [{port, reason, expires}].",
    ),
    "controlPlaneNamespaces": {
        "type": "array",
        "items": {"type": "string"},
        "default": list(DEFAULT_CONTROL_PLANE_NAMESPACES),
        "description": "Namespaces that stay out of the sidecar mesh (injection rules skip them).",
    },
    "modelNamespaces": {
        "type": "array",
        "items": {"type": "string"},
        "default": [],
        "description": (
            "Namespaces that serve models, by name (in addition to every namespace holding an "
            "InferenceService and every namespace matching modelNamespaceLabels)."
        ),
    },
    "modelNamespaceLabels": {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "default": {},
        "description": (
            "Label selector (matchLabels; value `*` = any value) that marks a Namespace as a "
            "model namespace."
        ),
    },
    "modelWorkloadLabels": {
        "type": "array",
        "items": {"type": "string"},
        "default": list(DEFAULT_MODEL_WORKLOAD_LABELS),
        "description": "Pod label keys that mark a model workload.",
    },
    "meshRootNamespace": {
        "type": "string",
        "default": DEFAULT_MESH_ROOT,
        "description": "Istio's root namespace (meshConfig.rootNamespace).",
    },
    "gatewayNamespaces": {
        "type": "array",
        "items": {"type": "string"},
        "default": list(DEFAULT_GATEWAY_NAMESPACES),
        "description": "Namespaces of ingress gateways (requests from outside the mesh land here).",
    },
}


def today() -> datetime.date:
    """The current day in UTC: exemptions and audit declarations end at the end of a UTC day."""
    return datetime.datetime.now(datetime.UTC).date()


def parse_day(value: Any) -> datetime.date | None:
    """A `YYYY-MM-DD` string as a date (None for anything else)."""
    text = as_str(value)
    if text is None or not re.fullmatch(_DATE, text):
        return None
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Exemption:
    """One entry of an exemption list."""

    key: str  # exemptNamespaces | exemptWorkloads | exemptPorts
    value: str  # the namespace, `namespace/name` or port
    reason: str
    expires: datetime.date

    def note(self) -> str:
        return (
            f"Not exempt: {self.key} entry {self.value!r} ({self.reason}) ended on "
            f"{self.expires.isoformat()}; renew it with a new `expires` or fix the finding."
        )


def _exemption_entries(key: str, value: Any) -> list[Exemption]:
    """Well-formed entries of one exemption list (others are dropped: they never exempt)."""
    field_name = "port" if key == "exemptPorts" else "name"
    out: list[Exemption] = []
    for entry in as_list(value):
        if not isinstance(entry, Mapping):
            continue
        reason = (as_str(entry.get("reason")) or "").strip()
        expires = parse_day(entry.get("expires"))
        if key == "exemptPorts":
            port = as_int(entry.get(field_name))
            what = str(port) if port is not None and 1 <= port <= 65535 else ""
        else:
            what = as_str(entry.get(field_name)) or ""
        if what and reason and expires is not None:
            out.append(Exemption(key, what, reason, expires))
    return out


@dataclass(frozen=True)
class Context:
    """The policy config of one policy (from `--policy-pack-config`), parsed leniently: a value of
    the wrong type falls back to its default (the CLI has validated the schema already)."""

    exempt_namespaces: frozenset[str] = frozenset()
    exempt_workloads: frozenset[str] = frozenset()
    exempt_ports: frozenset[int] = frozenset()
    control_plane_namespaces: frozenset[str] = frozenset(DEFAULT_CONTROL_PLANE_NAMESPACES)
    model_namespaces: frozenset[str] = frozenset()
    model_namespace_labels: Mapping[str, str] = field(default_factory=dict)
    model_workload_labels: tuple[str, ...] = DEFAULT_MODEL_WORKLOAD_LABELS
    mesh_root_namespace: str = DEFAULT_MESH_ROOT
    gateway_namespaces: frozenset[str] = frozenset(DEFAULT_GATEWAY_NAMESPACES)
    # The whole raw config, for policy-specific keys (declared in `Policy.config`).
    raw: Mapping[str, Any] = field(default_factory=dict)
    # Exemptions past their `expires` day: they exempt nothing; findings they would have
    # hidden say so.
    lapsed: tuple[Exemption, ...] = ()

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | object, *, on: datetime.date | None = None
    ) -> Context:
        """Parse a policy's config; exemptions are judged as of `on` (default: today, UTC)."""
        from aimesh_policies.accessors import plain

        raw = plain(config)
        raw = raw if isinstance(raw, Mapping) else {}
        defaults = cls()
        day = on or today()

        def strings(key: str, default: Iterable[str]) -> frozenset[str]:
            value = raw.get(key)
            return frozenset(str_list(value)) if isinstance(value, list) else frozenset(default)

        entries = [
            e
            for key in ("exemptNamespaces", "exemptWorkloads", "exemptPorts")
            for e in _exemption_entries(key, raw.get(key))
        ]
        active = [e for e in entries if e.expires >= day]

        def exempt(key: str) -> frozenset[str]:
            return frozenset(e.value for e in active if e.key == key)

        labels = raw.get("modelNamespaceLabels")
        workload_labels = raw.get("modelWorkloadLabels")
        return cls(
            exempt_namespaces=exempt("exemptNamespaces"),
            exempt_workloads=exempt("exemptWorkloads"),
            exempt_ports=frozenset(int(p) for p in exempt("exemptPorts")),
            control_plane_namespaces=strings(
                "controlPlaneNamespaces", DEFAULT_CONTROL_PLANE_NAMESPACES
            ),
            model_namespaces=strings("modelNamespaces", ()),
            model_namespace_labels=str_map(labels) if isinstance(labels, Mapping) else {},
            model_workload_labels=tuple(str_list(workload_labels))
            if isinstance(workload_labels, list)
            else defaults.model_workload_labels,
            mesh_root_namespace=as_str(raw.get("meshRootNamespace"))
            or defaults.mesh_root_namespace,
            gateway_namespaces=strings("gatewayNamespaces", DEFAULT_GATEWAY_NAMESPACES),
            raw=dict(raw),
            lapsed=tuple(e for e in entries if e.expires < day),
        )

    @classmethod
    def for_config(cls, config: Mapping[str, Any] | object) -> Context:
        """`from_config`, parsed once per distinct config: the SDK hands every call a fresh copy
        of the same policy config. Keyed on the config's full JSON content (so a changed config
        - a new Configure - is a new key); uncacheable configs are parsed each time."""
        try:
            # The day is part of the key: an exemption lapses at midnight UTC.
            key = today().isoformat() + json.dumps(
                config, sort_keys=True, separators=(",", ":"), default=unproxied
            )
        except (TypeError, ValueError, RecursionError):
            return cls.from_config(config)
        with _CONTEXTS_LOCK:
            hit = _CONTEXTS.get(key)
        if hit is not None:
            return hit
        ctx = cls.from_config(config)
        with _CONTEXTS_LOCK:
            if len(_CONTEXTS) >= 256:  # a handful of distinct configs in practice
                _CONTEXTS.clear()
            _CONTEXTS[key] = ctx
        return ctx

    def is_exempt(self, obj: K8sObject) -> bool:
        return _covered(obj, self.exempt_namespaces, self.exempt_workloads)

    def lapsed_for(self, obj: K8sObject, message: str) -> list[Exemption]:
        """Lapsed exemptions that would have hidden `message` about `obj`: namespace and
        workload entries covering it, port entries whose port the message names."""
        found = []
        for entry in self.lapsed:
            if entry.key == "exemptPorts":
                hit = re.search(rf"(?<![0-9]){entry.value}(?![0-9])", message) is not None
            elif entry.key == "exemptNamespaces":
                hit = _covered(obj, frozenset({entry.value}), frozenset())
            else:
                hit = _covered(obj, frozenset(), frozenset({entry.value}))
            if hit:
                found.append(entry)
        return found

    def with_lapsed_notes(self, obj: K8sObject, found: list[Finding]) -> list[Finding]:
        """`found` with a note on each finding a lapsed exemption would have hidden."""
        if not self.lapsed:
            return found
        out = []
        for f in found:
            notes = " ".join(e.note() for e in self.lapsed_for(obj, f.message))
            out.append(Finding(f"{f.message} {notes}", f.urn) if notes else f)
        return out

    def is_control_plane(self, namespace: str) -> bool:
        return namespace in self.control_plane_namespaces

    def is_model_workload(self, labels: Mapping[str, str]) -> bool:
        return any(key in labels for key in self.model_workload_labels)

    def namespace_labels_select(self, labels: Mapping[str, str]) -> bool:
        """Whether a Namespace's labels match `modelNamespaceLabels` (never when it is empty)."""
        if not self.model_namespace_labels:
            return False
        return all(
            key in labels and (want == "*" or labels[key] == want)
            for key, want in self.model_namespace_labels.items()
        )


def _covered(obj: K8sObject, namespaces: frozenset[str], workloads: frozenset[str]) -> bool:
    if obj.namespace and obj.namespace in namespaces:
        return True
    if obj.is_("", "Namespace") and obj.name in namespaces:
        return True
    if not workloads:
        return False
    if obj.namespace:
        return f"{obj.namespace}/{obj.name}" in workloads or f"{obj.namespace}/*" in workloads
    return obj.name in workloads


_CONTEXTS: dict[str, Context] = {}
_CONTEXTS_LOCK = threading.Lock()


# --- policies ------------------------------------------------------------------------------------

Check = Callable[[K8sObject, Context], Iterable[Finding]]
StackCheck = Callable[[Sequence[K8sObject], Context], Iterable[Finding]]
Fix = Callable[[K8sObject], Mapping[str, Any] | None]


@dataclass(frozen=True)
class Policy:
    """One rule. Exactly one of `check` / `check_stack` is set."""

    name: str  # says what it demands: `istio-peerauthentication-require-strict-mtls`
    description: str  # one sentence: what it demands
    severity: Severity
    level: Level
    remediation: str  # how to fix a violation
    catches: str  # what it catches, for docs/policies.md (a sentence or two)
    check: Check | None = None
    check_stack: StackCheck | None = None
    # (group, kind) pairs a resource rule judges; empty = every object (rarely what you want).
    kinds: frozenset[GroupKind] = frozenset()
    # A finer filter than `kinds` (e.g. only istiod's chart values); must be total too.
    only: Callable[[K8sObject], bool] | None = None
    # Body paths ("spec.mtls.mode", "spec.rules[].from") whose unknown value must not pass.
    critical: tuple[str, ...] = ()
    fix: Fix | None = None
    # Extra, policy-specific config keys (JSON schema per key, with a default).
    config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    concern: str = ""  # module / concern name, for docs grouping (set by the registry)

    def __post_init__(self) -> None:
        if (self.check is None) == (self.check_stack is None):
            raise ValueError(f"policy {self.name}: set exactly one of check / check_stack")
        if self.fix is not None and self.check is None:
            raise ValueError(f"policy {self.name}: only resource rules can offer a fix")

    @property
    def is_stack_rule(self) -> bool:
        return self.check_stack is not None

    def config_schema(self) -> dict[str, dict[str, Any]]:
        return {**COMMON_CONFIG_SCHEMA, **{k: dict(v) for k, v in self.config.items()}}

    def applies_to(self, obj: K8sObject) -> bool:
        if self.kinds and obj.group_kind not in self.kinds:
            return False
        return self.only is None or self.only(obj)


def evaluate(policy: Policy, obj: K8sObject, ctx: Context) -> list[Finding]:
    """Findings of a resource rule on one object: unknown critical fields, then the check."""
    if policy.check is None or not policy.applies_to(obj) or ctx.is_exempt(obj):
        return []
    found: list[Finding] = []
    seen: set[str] = set()
    for path in policy.critical:
        for where in obj.unknown(path):
            if where not in seen:
                seen.add(where)
                found.append(unknown_finding(obj, where))
    found.extend(policy.check(obj, ctx))
    return _in_user_terms(policy, ctx.with_lapsed_notes(obj, found), [obj])


def _in_user_terms(
    policy: Policy, found: list[Finding], objs: Sequence[K8sObject]
) -> list[Finding]:
    """After the verdict: a finding on an object generated from a stack setting also names
    that setting and its fix (provenance.py). Wording only: the findings stay the same ones."""
    settings = {o.urn: s for o in objs if (s := setting_of(o.annotations)) is not None}
    if not settings:
        return found
    single = objs[0].urn if len(objs) == 1 else ""
    out = []
    for f in found:
        setting = settings.get(f.urn or single)
        out.append(
            f
            if setting is None
            else replace(f, message=f.message + in_user_terms(policy.name, setting))
        )
    return out


def evaluate_stack(policy: Policy, objs: Sequence[K8sObject], ctx: Context) -> list[Finding]:
    """Findings of a stack rule over every (non-exempt) object of the stack."""
    if policy.check_stack is None:
        return []
    judged = [o for o in objs if not ctx.is_exempt(o)]
    found: list[Finding] = []
    for path in policy.critical:
        for obj in judged:
            if policy.applies_to(obj):
                found.extend(unknown_finding(obj, where) for where in obj.unknown(path))
    found.extend(policy.check_stack(judged, ctx))
    if not ctx.lapsed:
        return _in_user_terms(policy, found, judged)
    by_urn = {o.urn: o for o in judged if o.urn}
    out: list[Finding] = []
    for f in found:
        anchor = by_urn.get(f.urn)
        out.extend(ctx.with_lapsed_notes(anchor, [f]) if anchor is not None else [f])
    return _in_user_terms(policy, out, judged)


def evaluate_all(
    policies: Iterable[Policy], objs: Sequence[K8sObject], ctx: Context | None = None
) -> dict[str, list[Finding]]:
    """Every policy over `objs` (resource rules per object, stack rules over all): name ->
    findings, only policies with findings. For tests and offline tools."""
    ctx = ctx or Context()
    out: dict[str, list[Finding]] = {}
    for policy in policies:
        found: list[Finding] = []
        if policy.is_stack_rule:
            found = evaluate_stack(policy, objs, ctx)
        else:
            for obj in objs:
                found.extend(evaluate(policy, obj, ctx))
        if found:
            out[policy.name] = found
    return out


def as_manifest(obj: K8sObject) -> dict[str, Any]:
    """A mutable deep copy of `obj.body` for a `fix` to edit."""
    copied: dict[str, Any] = _copy(obj.body)
    return copied


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


__all__ = [
    "COMMON_CONFIG_SCHEMA",
    "Context",
    "Exemption",
    "Finding",
    "Level",
    "Policy",
    "Severity",
    "as_manifest",
    "as_map",
    "evaluate",
    "evaluate_all",
    "evaluate_stack",
    "finding",
    "parse_day",
    "show",
    "today",
    "unknown_finding",
]
