"""Audit integrity: nothing may record less of model traffic than the generated telemetry.

What reaches a model workload is resolved as Istio resolves Telemetry: resources in the root
namespace (mesh-wide), in the model's namespace, and those whose selector matches its pods
(targetRef resources attach to gateways and waypoints, not sidecars). A reduction is:

- access logging disabled, filtered (any `filter.expression`: a filter is how denials vanish,
  `response.code < 400`), limited to the CLIENT side (a model's inbound requests are its SERVER
  side), or sent to fewer providers than declared (the collector, hence the SIEM, dropped);
- request metrics the alerts read (REQUEST_COUNT, REQUEST_DURATION, REQUEST_SIZE,
  RESPONSE_SIZE, or ALL_METRICS) disabled on the server side, any metric label removed or
  overwritten (the alerts group and filter on them), or fewer metrics providers than declared;
- with mesh intent: the mesh config's default access-log / metrics providers narrowed, the
  proxy statistics the denial alert needs (RBAC `denied` counters) no longer included, a
  declared audit/metrics provider redefined (pointed elsewhere, reformatted); the collector's
  audit pipeline given a processor the intent does not declare (filters and samplers drop
  records) or fewer exporters; a declared alert missing or its expression or `for` changed;
- without mesh intent: namespace- or workload-level providers narrower than the mesh-wide ones,
  and the collector's logs pipeline with a filter or sampling processor.

A reduction is a violation unless `auditExemptions` lists the object with a reason and an
expiry date that has not passed (`{"object": "Telemetry ns/name", "reason": "...",
"expires": "2027-06-30"}`); an expired or reasonless exemption is reported as such.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aimesh_policies.accessors import UNKNOWN, as_bool, as_map, as_str, get, maps, str_list
from aimesh_policies.effective.intent import Intents, MeshIntent, read_intents
from aimesh_policies.effective.workloads import MODEL_KINDS, Model, discover
from aimesh_policies.framework import (
    Context,
    Finding,
    Level,
    Policy,
    Severity,
    parse_day,
    unknown_finding,
)
from aimesh_policies.framework import today as current_day  # `today` is this module's argument
from aimesh_policies.k8s_object import HELM_VALUES, MESH_CONFIG, K8sObject
from aimesh_policies.meshlib import namespace_of, selects
from aimesh_policies.pods import selector_labels, target_refs

TELEMETRY: Final = ("telemetry.istio.io", "Telemetry")
PROMETHEUS_RULE: Final = ("monitoring.coreos.com", "PrometheusRule")
REQUEST_METRICS: Final = frozenset(
    {"ALL_METRICS", "REQUEST_COUNT", "REQUEST_DURATION", "REQUEST_SIZE", "RESPONSE_SIZE"}
)
COLLECTOR_CHARTS: Final = frozenset({"opentelemetry-collector"})
DROPPING_PROCESSORS: Final = frozenset(
    {"filter", "probabilistic_sampler", "tail_sampling", "logdedup", "sampling"}
)

EXEMPTIONS_CONFIG: Final = {
    "auditExemptions": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "object": {"type": "string"},
                "reason": {"type": "string"},
                "expires": {"type": "string"},
            },
        },
        "default": [],
        "description": "Telemetry reductions accepted on purpose: `object` as `<Kind> "
        "<namespace>/<name>` (cluster-scoped or chart values: `<Kind> <name>`), a `reason`, and "
        "an `expires` date (YYYY-MM-DD) after which the reduction is a violation again.",
    }
}


@dataclass(frozen=True)
class Reduction:
    obj: K8sObject
    path: str
    what: str


# --- Telemetry ---------------------------------------------------------------------------------


def _applies(obj: K8sObject, model: Model, ctx: Context) -> bool:
    if target_refs(obj):
        return False
    namespace = namespace_of(obj)
    if namespace not in (model.namespace, ctx.mesh_root_namespace):
        return False
    selector = selector_labels(obj)
    return selector is None or any(selects(selector, pods) for pods in model.pods)


def _providers(entry: Mapping[str, Any]) -> list[str]:
    return [n for p in maps(entry.get("providers")) if isinstance(n := p.get("name"), str)]


def _mesh_defaults(objs: Sequence[K8sObject], key: str) -> list[str]:
    for obj in objs:
        if obj.group_kind == MESH_CONFIG:
            found = str_list(get(obj.body, f"defaultProviders.{key}"))
            if found:
                return found
    return []


def _root_providers(objs: Sequence[K8sObject], ctx: Context, key: str) -> list[str]:
    for obj in objs:
        if (
            obj.group_kind == TELEMETRY
            and namespace_of(obj) == ctx.mesh_root_namespace
            and selector_labels(obj) is None
            and not target_refs(obj)
        ):
            found = [p for e in maps(obj.spec.get(key)) for p in _providers(e)]
            if found:
                return found
    return _mesh_defaults(objs, "accessLogging" if key == "accessLogging" else key)


def telemetry_reductions(
    obj: K8sObject, required_logs: Sequence[str], required_metrics: Sequence[str]
) -> Iterator[Reduction]:
    for i, entry in enumerate(maps(obj.spec.get("accessLogging"))):
        at = f"spec.accessLogging[{i}]"
        if as_bool(entry.get("disabled")) is True:
            yield Reduction(obj, f"{at}.disabled", "turns access logging off")
        expression = as_str(get(entry, "filter.expression"))
        if expression is not None:
            yield Reduction(
                obj, f"{at}.filter", f"filters access logs ({expression!r}): what it drops vanishes"
            )
        if (as_str(get(entry, "match.mode")) or "") == "CLIENT":
            yield Reduction(
                obj,
                f"{at}.match.mode",
                "logs only the CLIENT side: requests a model receives go unlogged",
            )
        providers = _providers(entry)
        missing = [p for p in required_logs if providers and p not in providers]
        if missing:
            yield Reduction(
                obj, f"{at}.providers", f"access logs no longer go to {', '.join(missing)}"
            )
    for i, entry in enumerate(maps(obj.spec.get("metrics"))):
        at = f"spec.metrics[{i}]"
        providers = _providers(entry)
        missing = [p for p in required_metrics if providers and p not in providers]
        if missing:
            yield Reduction(obj, f"{at}.providers", f"metrics no longer go to {', '.join(missing)}")
        for j, override in enumerate(maps(entry.get("overrides"))):
            where = f"{at}.overrides[{j}]"
            metric = as_str(get(override, "match.metric")) or "ALL_METRICS"
            mode = as_str(get(override, "match.mode")) or "CLIENT_AND_SERVER"
            if (
                as_bool(override.get("disabled")) is True
                and metric in REQUEST_METRICS
                and mode != "CLIENT"
            ):
                yield Reduction(
                    obj,
                    f"{where}.disabled",
                    f"disables {metric}, which the traffic and denial alerts read",
                )
            for tag, change in as_map(override.get("tagOverrides")).items():
                operation = as_str(as_map(change).get("operation")) or "UPSERT"
                yield Reduction(
                    obj,
                    f"{where}.tagOverrides.{tag}",
                    f"{'removes' if operation == 'REMOVE' else 'overwrites'} the metric label "
                    f"{tag} the alerts group and filter on",
                )


_TELEMETRY_CRITICAL: Final = (
    "metadata",
    "metadata.namespace",
    "spec",
    "spec.selector",
    "spec.targetRef",
    "spec.targetRefs",
    "spec.accessLogging",
    "spec.metrics",
)


# --- mesh config, collector, alerts (mesh intent) ------------------------------------------------


def _canonical(value: Any) -> str:
    def norm(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, Mapping):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, list):
            return [norm(x) for x in v]
        return v

    return json.dumps(norm(value), sort_keys=True, default=str)


def mesh_config_reductions(obj: K8sObject, mesh: MeshIntent) -> Iterator[Reduction]:
    body = obj.body
    for key, required in (
        ("accessLogging", mesh.access_log_providers),
        ("metrics", mesh.metrics_providers),
    ):
        have = str_list(get(body, f"defaultProviders.{key}"))
        missing = [p for p in required if p not in have]
        if missing:
            yield Reduction(
                obj,
                f"defaultProviders.{key}",
                f"the mesh default {key} providers leave out {', '.join(missing)}",
            )
    have = str_list(get(body, "defaultConfig.proxyStatsMatcher.inclusionRegexps"))
    missing = [r for r in mesh.proxy_stats_inclusion if r not in have]
    if missing:
        yield Reduction(
            obj,
            "defaultConfig.proxyStatsMatcher.inclusionRegexps",
            f"no longer includes {', '.join(missing)} (the RBAC denied counters the policy-denial "
            "alert reads)",
        )
    defined = {
        n: p for p in maps(body.get("extensionProviders")) if isinstance(n := p.get("name"), str)
    }
    for name, declared in mesh.extension_providers.items():
        if name not in defined:
            yield Reduction(obj, "extensionProviders", f"the declared provider {name} is gone")
        elif _canonical(defined[name]) != _canonical(declared):
            yield Reduction(
                obj,
                "extensionProviders",
                f"the declared provider {name} is redefined (where or what it records changed)",
            )


def _pipelines(values: Any) -> tuple[str, Mapping[str, Any]]:
    """Where the collector's pipelines are (`config` merges with the chart's defaults,
    `alternateConfig` replaces them), and the pipelines."""
    for key in ("alternateConfig", "config"):
        found = get(values, f"{key}.service.pipelines")
        if isinstance(found, Mapping):
            return f"values.{key}.service.pipelines", found
    return "", {}


def collector_reductions(obj: K8sObject, mesh: MeshIntent | None) -> Iterator[Reduction]:
    at, pipelines = _pipelines(obj.get("values"))
    declared = (
        mesh.agent_pipelines.get(f"{obj.namespace}/{obj.name}", mesh.collector_pipelines)
        if mesh is not None
        else {}
    )
    for name, (processors, exporters) in declared.items():
        pipeline = pipelines.get(name)
        if not isinstance(pipeline, Mapping):
            yield Reduction(obj, f"{at}.{name}", f"the audit pipeline {name} is gone")
            continue
        extra = [p for p in str_list(pipeline.get("processors")) if p not in processors]
        if extra:
            yield Reduction(
                obj,
                f"{at}.{name}.processors",
                f"the audit pipeline passes records through {', '.join(extra)}, which the "
                "intent does not declare (filters and samplers drop records before the SIEM)",
            )
        have = str_list(pipeline.get("exporters"))
        missing = [e for e in exporters if e not in have]
        if missing:
            yield Reduction(
                obj,
                f"{at}.{name}.exporters",
                f"the audit log no longer goes to {', '.join(missing)}",
            )
    for name, pipeline in pipelines.items():
        if name in declared or not (name == "logs" or name.startswith("logs/")):
            continue
        extra = [
            p
            for p in str_list(as_map(pipeline).get("processors"))
            if p.split("/", 1)[0] in DROPPING_PROCESSORS
        ]
        if extra:
            yield Reduction(
                obj,
                f"{at}.{name}.processors",
                f"the audit pipeline passes records through {', '.join(extra)}, which may drop "
                "them before they reach the SIEM",
            )


def alert_reductions(objs: Sequence[K8sObject], mesh: MeshIntent) -> Iterator[Reduction | Finding]:
    rules = {f"{namespace_of(o)}/{o.name}": o for o in objs if o.group_kind == PROMETHEUS_RULE}
    for alert in mesh.alerts:
        rule = rules.get(alert.rule)
        if rule is None:
            yield Finding(
                f"stack: PrometheusRule {alert.rule}, which holds the declared alert "
                f"{alert.alert}, is missing: that alert can never fire. Fix: restore it (the "
                "program's Observability component).",
                mesh.obj.urn,
            )
            continue
        found = [
            (g, r)
            for g, group in enumerate(maps(rule.spec.get("groups")))
            for r, item in enumerate(maps(group.get("rules")))
            if as_str(item.get("alert")) == alert.alert
        ]
        if not found:
            yield Reduction(rule, "spec.groups", f"the declared alert {alert.alert} is gone")
            continue
        g, r = found[0]
        item = maps(maps(rule.spec.get("groups"))[g].get("rules"))[r]
        at = f"spec.groups[{g}].rules[{r}]"
        if (as_str(item.get("expr")) or "") != alert.expr:
            yield Reduction(rule, f"{at}.expr", f"the alert {alert.alert} tests something else now")
        if (as_str(item.get("for")) or "") != alert.for_:
            yield Reduction(
                rule,
                f"{at}.for",
                f"the alert {alert.alert} waits {item.get('for')!r}, not {alert.for_!r}",
            )


# --- exemptions ----------------------------------------------------------------------------------


def _object_key(obj: K8sObject) -> str:
    where = f"{obj.namespace}/{obj.name}" if obj.namespace else obj.name
    return f"{obj.kind} {where}"


def exemption(obj: K8sObject, ctx: Context, today: datetime.date) -> tuple[bool, str]:
    """(exempt, a note when an exemption exists but does not hold)."""
    raw = ctx.raw.get("auditExemptions")
    key = _object_key(obj)
    for item in maps(raw if isinstance(raw, list) else []):
        if as_str(item.get("object")) != key:
            continue
        reason = (as_str(item.get("reason")) or "").strip()
        expires = as_str(item.get("expires")) or ""
        until = parse_day(expires)
        if until is None:
            return False, f" (its exemption has no valid expiry date: {expires!r})"
        if not reason:
            return False, " (its exemption gives no reason)"
        if until < today:
            return False, f" (its exemption expired on {until.isoformat()})"
        return True, ""
    return False, ""


# --- the policy ----------------------------------------------------------------------------------


def check_audit(
    objs: Sequence[K8sObject],
    ctx: Context,
    intents: Intents | None = None,
    today: datetime.date | None = None,
) -> Iterator[Finding]:
    intents = intents if intents is not None else read_intents(objs, ctx)
    models = discover(objs, ctx, intents)
    if not models:
        return
    today = today or current_day()
    mesh = intents.mesh
    required_logs = list(mesh.access_log_providers) if mesh else []
    required_metrics = list(mesh.metrics_providers) if mesh else []
    reductions: list[Reduction] = []
    seen: set[str] = set()
    by_namespace: dict[str, list[Model]] = {}
    for model in models:
        by_namespace.setdefault(model.namespace, []).append(model)
    root = ctx.mesh_root_namespace
    # Without mesh intent, the mesh-wide providers are the reference for narrower ones.
    root_logs = required_logs or _root_providers(objs, ctx, "accessLogging")
    root_metrics = required_metrics or _root_providers(objs, ctx, "metrics")
    for obj in objs:
        if obj.group_kind == TELEMETRY:
            namespace = namespace_of(obj)
            unknown = next((u for p in _TELEMETRY_CRITICAL if (u := obj.unknown(p))), None)
            if unknown and (
                namespace in by_namespace
                or namespace == root
                or obj.unknown("metadata.namespace")
                or obj.get("metadata") is UNKNOWN
            ):
                yield unknown_finding(obj, unknown[0])
                continue
            reaching = models if namespace == root else by_namespace.get(namespace, [])
            if not any(_applies(obj, m, ctx) for m in reaching) or obj.urn + obj.ref in seen:
                continue
            seen.add(obj.urn + obj.ref)
            mesh_wide = namespace == root and selector_labels(obj) is None
            logs = required_logs or ([] if mesh_wide else root_logs)
            metrics = required_metrics or ([] if mesh_wide else root_metrics)
            reductions += telemetry_reductions(obj, logs, metrics)
        elif obj.group_kind == MESH_CONFIG and mesh is not None:
            if obj.whole_unknown:
                yield unknown_finding(obj, obj.field(""))
                continue
            reductions += mesh_config_reductions(obj, mesh)
        elif obj.group_kind == HELM_VALUES and as_str(obj.get("chart")) in COLLECTOR_CHARTS:
            if (
                obj.get("values") is UNKNOWN
                or obj.unknown("values.config")
                or obj.unknown("values.alternateConfig")
            ):
                yield unknown_finding(obj, "values")
                continue
            reductions += collector_reductions(obj, mesh)
        elif obj.group_kind == PROMETHEUS_RULE and mesh is not None and obj.unknown("spec"):
            yield unknown_finding(obj, obj.unknown("spec")[0])
    if mesh is not None:
        for item in alert_reductions(objs, mesh):
            if isinstance(item, Finding):
                yield item
            else:
                reductions.append(item)
    for reduction in reductions:
        exempt, note = exemption(reduction.obj, ctx, today)
        if exempt:
            continue
        obj = reduction.obj
        yield Finding(
            f"{obj.ref}: {obj.field(reduction.path)}: {reduction.what}, for model traffic"
            f"{note}. Fix: keep model traffic fully recorded (restore the generated telemetry), "
            f"or exempt it on purpose in auditExemptions with a reason and an expiry "
            f'("object": "{_object_key(obj)}").',
            obj.urn,
        )


POLICIES: Final = (
    Policy(
        name="telemetry-forbid-audit-reduction",
        description="Nothing records less of model traffic than the generated telemetry "
        "(access logs, the metrics and statistics alerts read, the audit pipeline, the alerts), "
        "unless exempted with a reason and an expiry.",
        severity=Severity.HIGH,
        level=Level.MANDATORY,
        remediation="Restore the generated telemetry; for a deliberate reduction add an "
        "auditExemptions entry with the object, a reason and an expiry date.",
        catches="Telemetry reaching model workloads (mesh root, namespace, selector) that "
        "disables, filters or client-side-limits access logs or narrows their providers, "
        "disables request metrics server-side, removes or overwrites metric labels, or narrows "
        "metrics providers; with mesh intent also mesh-config default providers, the RBAC "
        "denied counters in proxyStatsMatcher, redefined audit providers, collector logs "
        "processors or exporters changed, and declared alerts deleted or altered; without it, "
        "filter/sampling processors in the collector's logs pipeline.",
        check_stack=lambda objs, ctx: check_audit(objs, ctx),
        kinds=MODEL_KINDS | {TELEMETRY, PROMETHEUS_RULE, MESH_CONFIG, HELM_VALUES},
        config=EXEMPTIONS_CONFIG,
    ),
)

__all__ = ["POLICIES", "check_audit", "exemption", "telemetry_reductions"]
