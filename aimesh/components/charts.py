"""One place that decides how a Helm chart is installed: Helm v4 `Chart` or v3 `Release`.

The rule (docs/platform.md has the per-chart table and the reasons):

- v4 `Chart` by default: Pulumi renders the chart and manages every object itself, so each one
  is visible to CrossGuard, awaited individually, and `depends_on=[chart]` waits for all of them.
- v3 `Release` when the chart needs what only Helm's install does: hooks (v4 drops them outside
  render mode) or objects a controller rewrites at runtime (a v4-managed copy would be fought
  over on every update).
- Always v4 in render mode: a Release installs into a live cluster and cannot render to a
  directory. Hooks are then kept in the output so the GitOps tool that applies it runs them.

A Release shows CrossGuard only its values, never the objects it deploys. So every Release is
mirrored (except a chart Helm cannot render without a cluster, see `renders_offline`): the same
chart, version and values as a v4 Chart on a provider that only renders (`renderYamlToDirectory`,
`<renderDir>/releases/<release>`; hooks included). Its children are rendered during `pulumi
preview` like any v4 Chart's, so the policy pack judges each object the Release will install, in
preview, and its `helm-release-require-rendered-output` stack rule refuses a Release without such
a mirror. Nothing of the mirror touches the cluster; `pulumi up` writes the rendered YAML there (a
reviewable copy of what Helm installed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from aimesh.builders.charts import locate
from aimesh.settings import Settings

RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
# A Release's mirror (its render-only provider and v4 Chart) is named after it with this suffix.
MIRROR_SUFFIX = "-rendered"
CHART_TYPE = "kubernetes:helm.sh/v4:Chart"
# Helm's own default is 5 minutes; image pulls on a fresh kind node can take longer.
RELEASE_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class ChartSpec:
    """What to install; `install` decides how."""

    release: str
    chart: str
    version: str
    namespace: str
    values: dict[str, Any] = field(default_factory=dict)
    repo: str | None = None
    # The chart relies on Helm hooks (e.g. a post-install readiness check).
    hooks: bool = False
    # A controller rewrites objects of this chart at runtime (e.g. webhook failurePolicy).
    mutated_at_runtime: bool = False
    skip_crds: bool = False
    # Whether Helm can render the chart without a cluster: a provider that only renders gives
    # Helm its default capabilities (Kubernetes v1.20.0), which a chart demanding a newer
    # `kubeVersion` refuses; helm.v4.Chart cannot be given another version in the pinned provider
    # (pulumi/pulumi-kubernetes#4616). Such a Release gets no mirror (docs/platform.md).
    renders_offline: bool = True


def method(spec: ChartSpec, *, render: bool) -> Literal["release", "chart"]:
    """`release` (Helm v3 Release) or `chart` (Helm v4 Chart) for `spec`."""
    if render:
        return "chart"
    return "release" if spec.hooks or spec.mutated_at_runtime else "chart"


def mirror_directory(settings: Settings, spec: ChartSpec) -> str:
    """Where a Release's mirror writes the chart's rendered objects."""
    return f"{settings.render_dir.rstrip('/')}/releases/{spec.release}"


def install(
    resource_name: str, spec: ChartSpec, *, settings: Settings, opts: pulumi.ResourceOptions
) -> pulumi.Resource:
    """Register `spec` as a v3 Release (with its render-only mirror) or a v4 Chart (see
    `method`), from the stack's chart source (`aimesh:chartSource`: upstream, a local directory
    or a mirror; same version)."""
    render = settings.cluster_mode == "render"
    where = locate(settings, spec.chart, spec.version, spec.repo)
    repo = k8s.helm.v4.RepositoryOptsArgs(repo=where.repo) if where.repo else None
    if method(spec, render=render) == "release":
        release = k8s.helm.v3.Release(
            resource_name,
            k8s.helm.v3.ReleaseArgs(
                name=spec.release,
                chart=where.chart,
                version=spec.version,
                namespace=spec.namespace,
                repository_opts=(
                    k8s.helm.v3.RepositoryOptsArgs(repo=where.repo) if where.repo else None
                ),
                values=spec.values,
                create_namespace=False,
                skip_crds=spec.skip_crds,
                # --wait, plus hook Jobs must complete: the release is ready when Helm says so.
                skip_await=False,
                wait_for_jobs=True,
                timeout=RELEASE_TIMEOUT_SECONDS,
                cleanup_on_fail=True,
                max_history=5,
            ),
            opts=opts,
        )
        if not spec.renders_offline:
            return release
        # The mirror: a provider that only renders (the provider refuses a kubeconfig next to
        # renderYamlToDirectory), and the same chart on it. Parented like the Release (same
        # component), waiting for nothing.
        renderer = k8s.Provider(
            f"{resource_name}{MIRROR_SUFFIX}",
            render_yaml_to_directory=mirror_directory(settings, spec),
            opts=pulumi.ResourceOptions(parent=opts.parent),
        )
        k8s.helm.v4.Chart(
            f"{resource_name}{MIRROR_SUFFIX}",
            name=spec.release,
            chart=where.chart,
            version=spec.version,
            namespace=spec.namespace,
            repository_opts=repo,
            values=spec.values,
            skip_crds=spec.skip_crds,
            # What the Release runs as hooks is judged too.
            include_hooks=True,
            opts=pulumi.ResourceOptions(parent=opts.parent, provider=renderer),
        )
        return release
    return k8s.helm.v4.Chart(
        resource_name,
        name=spec.release,
        chart=where.chart,
        version=spec.version,
        namespace=spec.namespace,
        repository_opts=repo,
        values=spec.values,
        skip_crds=spec.skip_crds,
        include_hooks=render and spec.hooks,
        opts=opts,
    )


def existing_crds(
    resource_name: str, crds: Sequence[str], *, settings: Settings, opts: pulumi.ResourceOptions
) -> list[pulumi.Resource]:
    """Read each CRD of a bring-your-own component (`aimesh:bringYourOwn`): a preview fails
    naming the CRD the cluster lacks, before anything is created. In render mode there is no
    cluster to read from, so nothing can be checked."""
    if settings.cluster_mode == "render":
        return []
    return [
        k8s.apiextensions.v1.CustomResourceDefinition.get(f"{resource_name}-{crd}", crd, opts=opts)
        for crd in crds
    ]
