"""Observability: audit access logs, metrics, traces, SIEM export, alerts and a dashboard.

What it registers (the knowledge is in builders/telemetry.py, collector.py, monitoring.py,
alerts.py, dashboard.py; docs/observability.md explains the choices):

- the `aimesh-observability` namespace (no injection label: pods opt in one by one);
- the mesh-wide Istio Telemetry (JSON access logs with identities to stdout and to the
  collector, Prometheus metrics, sampled traces) and the collector's loop guard;
- the OpenTelemetry collector (Helm v4 Chart: plain objects CrossGuard can see), its SIEM
  credentials Secret (from Pulumi secrets), its ALLOW policy and egress ServiceEntries;
- the audit agents (the same chart as a DaemonSet): every node's proxy access logs, read from
  the proxies' own log files, forwarded to the collector (builders/audit_agent.py);
- kube-prometheus-stack (Helm v3 Release: CRDs and admission-webhook Jobs as Helm hooks),
  the Pod/ServiceMonitors, the PrometheusRule, Alertmanager receivers and a Grafana dashboard.

Per-namespace Telemetry overrides live in model namespaces that SecureModel creates later,
so they are registered by `NamespaceTelemetry`, after the models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from aimesh import versions
from aimesh.builders import (
    audit_agent,
    bring_your_own,
    collector,
    monitoring,
    observability,
    telemetry,
)
from aimesh.builders.common import metadata
from aimesh.components.charts import ChartSpec, existing_crds, install
from aimesh.components.manifests import child_options, register, upstream
from aimesh.namespaces import OBSERVABILITY_NAMESPACE
from aimesh.settings import Settings


def chart_specs(settings: Settings) -> dict[str, ChartSpec]:
    """kube-prometheus-stack needs Helm's install (CRDs in crds/, admission-webhook cert Jobs as
    pre/post-install hooks): a v3 Release. The collector and the audit agents (the same chart in
    daemonset mode) are plain objects: v4 Charts."""
    return {
        "monitoring": ChartSpec(
            release=monitoring.RELEASE,
            chart="kube-prometheus-stack",
            version=versions.KUBE_PROMETHEUS_STACK,
            repo=versions.KUBE_PROMETHEUS_STACK_REPO,
            namespace=OBSERVABILITY_NAMESPACE,
            values=monitoring.helm_values(settings),
            hooks=True,
        ),
        "collector": ChartSpec(
            release=telemetry.COLLECTOR_NAME,
            chart="opentelemetry-collector",
            version=versions.OTEL_COLLECTOR_CHART,
            repo=versions.OTEL_COLLECTOR_REPO,
            namespace=OBSERVABILITY_NAMESPACE,
            values=collector.helm_values(settings),
        ),
        "audit-agent": ChartSpec(
            release=audit_agent.AGENT_NAME,
            chart="opentelemetry-collector",
            version=versions.OTEL_COLLECTOR_CHART,
            repo=versions.OTEL_COLLECTOR_REPO,
            namespace=OBSERVABILITY_NAMESPACE,
            values=audit_agent.helm_values(settings),
        ),
    }


@dataclass(frozen=True)
class ObservabilityArgs:
    """The platform's settings: SIEM sinks, alert receivers and thresholds, retention, the
    Grafana password, tracing."""

    settings: Settings


class Observability(pulumi.ComponentResource):
    """Telemetry, audit export to the SIEM, Prometheus alerting and the security dashboard.

    `opts.depends_on` (Istio: its CRDs and validating webhook) is handed on to every child."""

    ready: list[pulumi.Resource]

    def __init__(
        self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aimesh:observability:Observability", name, None, opts)
        settings = args.settings
        waits = upstream(opts)

        def child(*after: pulumi.Resource) -> pulumi.ResourceOptions:
            return child_options(self, waits, after)

        self.namespace = k8s.core.v1.Namespace(
            f"{name}-observability-ns",
            metadata=observability.namespace()["metadata"],
            opts=child(),
        )
        secrets = self._secrets(name, settings, child(self.namespace))
        specs = chart_specs(settings)
        chart_opts = child(self.namespace, *secrets.values())
        monitoring_crds = bring_your_own.crds(settings, "monitoring")
        # A Prometheus operator the cluster already runs: its CRDs must exist; the rules,
        # monitors and receivers below are still aimesh's.
        self.monitoring: list[pulumi.Resource] = (
            existing_crds(
                f"{name}-monitoring-crd", monitoring_crds, settings=settings, opts=chart_opts
            )
            if monitoring_crds
            else [
                install(
                    f"{name}-monitoring", specs["monitoring"], settings=settings, opts=chart_opts
                )
            ]
        )
        # A collector the platform team runs serves the same address (docs/platform.md).
        self.collector: list[pulumi.Resource] = (
            []
            if bring_your_own.brought(settings, "collector")
            else [
                install(
                    f"{name}-otel-collector",
                    specs["collector"],
                    settings=settings,
                    opts=chart_opts,
                )
            ]
        )
        # The node agents are part of the collector's pipeline: brought with it (docs/platform.md).
        self.audit_agent: list[pulumi.Resource] = (
            []
            if bring_your_own.brought(settings, "collector")
            else [
                install(
                    f"{name}-audit-agent",
                    specs["audit-agent"],
                    settings=settings,
                    opts=child(self.namespace),
                )
            ]
        )
        # Istio objects wait for Istio (CRDs, istiod's validating webhook) and the namespace.
        self.mesh_objects = {
            suffix: register(f"{name}-{suffix}", manifest, child(self.namespace))
            for suffix, manifest in observability.mesh_resources(settings).items()
        }
        # prometheus-operator objects wait for the chart that installs their CRDs and webhook.
        self.monitoring_objects = {
            suffix: register(f"{name}-{suffix}", manifest, child(*self.monitoring))
            for suffix, manifest in observability.monitoring_resources(settings).items()
        }
        self.dashboards = {
            suffix: k8s.core.v1.ConfigMap(
                f"{name}-{suffix}",
                metadata=manifest["metadata"],
                data=manifest["data"],
                opts=child(self.namespace),
            )
            for suffix, manifest in observability.dashboards(settings).items()
        }
        self.ready = [
            self.namespace,
            *self.monitoring,
            *self.collector,
            *self.audit_agent,
            *self.mesh_objects.values(),
            *self.monitoring_objects.values(),
        ]
        self.register_outputs(
            {
                "namespace": OBSERVABILITY_NAMESPACE,
                "siemSinks": [s.name for s in settings.siem_sinks],
                "alertReceivers": [r.name for r in settings.alert_receivers],
            }
        )

    def _secrets(
        self, name: str, settings: Settings, opts: pulumi.ResourceOptions
    ) -> dict[str, k8s.core.v1.Secret]:
        """Kubernetes Secrets built from Pulumi secrets (values wrapped as secret outputs so
        they are encrypted in the state and masked in previews)."""
        found: dict[str, k8s.core.v1.Secret] = {}
        wanted: list[tuple[str, str, Mapping[str, str]]] = [
            ("siem-credentials", collector.CREDENTIALS_SECRET, collector.credentials(settings)),
            (
                "alert-receivers",
                monitoring.RECEIVERS_SECRET,
                monitoring.receiver_credentials(settings),
            ),
        ]
        if settings.grafana_admin_password is not None:
            wanted.append(
                (
                    "grafana-admin",
                    monitoring.GRAFANA_SECRET,
                    {
                        "admin-user": "admin",
                        "admin-password": settings.grafana_admin_password.get_secret_value(),
                    },
                )
            )
        for suffix, secret_name, data in wanted:
            if not data:
                continue
            meta = metadata(secret_name, OBSERVABILITY_NAMESPACE)
            found[suffix] = k8s.core.v1.Secret(
                f"{name}-{suffix}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=meta["name"], namespace=meta["namespace"], labels=meta["labels"]
                ),
                type="Opaque",
                string_data={key: pulumi.Output.secret(value) for key, value in data.items()},
                opts=opts,
            )
        return found


@dataclass(frozen=True)
class NamespaceTelemetryArgs:
    """The platform's settings: `telemetryOverrides`."""

    settings: Settings


class NamespaceTelemetry(pulumi.ComponentResource):
    """Per-namespace Telemetry overrides (`aimesh:telemetryOverrides`). Registered after the
    models (`opts.depends_on`, handed on to every override): the namespaces they tune are created
    by SecureModel (or exist already)."""

    def __init__(
        self, name: str, args: NamespaceTelemetryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aimesh:observability:NamespaceTelemetry", name, None, opts)
        settings = args.settings
        after = child_options(self, upstream(opts))
        self.overrides = {
            suffix: register(f"{name}-{suffix}", manifest, after)
            for suffix, manifest in observability.override_resources(settings).items()
        }
        self.register_outputs({"namespaces": sorted(self.overrides)})
