"""One place that decides how a Helm chart is installed: Helm v4 `Chart` or v3 `Release`.

The rule (docs/platform.md has the per-chart table and the reasons):

- v4 `Chart` by default: Pulumi renders the chart and manages every object itself, so each one
  is visible to CrossGuard, awaited individually, and `depends_on=[chart]` waits for all of them.
- v3 `Release` when the chart needs what only Helm's install does: hooks (v4 drops them outside
  render mode) or objects a controller rewrites at runtime (a v4-managed copy would be fought
  over on every update).
- Always v3 `Chart` in render mode: a Release installs into a live cluster and cannot render to
  a directory, and a v4 Chart renders for Helm's built-in Kubernetes v1.20.0 when there is no
  cluster to ask (below), so a chart that requires a newer Kubernetes (cert-manager: >= 1.22)
  fails to render. The v3 Chart renders client-side (the provider's `helm template`) for
  `aimesh:kubernetesVersion`; each rendered object is registered as a typed resource, so
  CrossGuard judges every one of them, and hooks are kept in the output so the GitOps tool
  that applies it runs them.

A Release shows CrossGuard only its values, never the objects it deploys. So every Release is
mirrored: the same chart, version and values rendered client-side by a Helm v3 `Chart` (`helm
template` for the Kubernetes version the stack targets, hooks included) on a provider that only
renders (`renderYamlToDirectory`, `<renderDir>/releases/<release>`). Each rendered object is a
resource of its own, judged by every policy during `pulumi preview`, and stamped with
`aimesh.io/rendered-from` (the digest of the chart inputs, `builders.charts.rendered_from`); the
pack's `helm-release-require-rendered-output` refuses a Release whose inputs no stamped object
matches. Nothing of the mirror touches the cluster; `pulumi up` writes the rendered YAML there (a
reviewable copy of what Helm installed).

Why not a v4 Chart for the mirror: the provider renders a v4 Chart without a cluster as
Kubernetes v1.20.0 (no `kubeVersion` input in pulumi-kubernetes 4.34; pulumi/pulumi-kubernetes
#4616), which cert-manager's chart refuses, and the engine shows the pack a v4 Chart's inputs as
empty, so nothing could tie it to its Release.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from aimesh import cluster_version
from aimesh.builders.charts import RENDERED_FROM, ChartLocation, locate, rendered_from
from aimesh.settings import Settings

RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
# The render-only provider of a Release's mirror is named after the Release with this suffix.
MIRROR_SUFFIX = "-rendered"
CHART_TYPE = "kubernetes:helm.sh/v4:Chart"
# A Helm v3 Chart (`helm template` client-side): what a Release's mirror is.
TEMPLATE_TYPE = "kubernetes:helm.sh/v3:Chart"
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


Method = Literal["release", "chart", "template"]


def method(spec: ChartSpec, *, render: bool) -> Method:
    """`release` (Helm v3 Release), `chart` (Helm v4 Chart) or, in render mode, `template`
    (Helm v3 Chart: rendered client-side for the stack's Kubernetes version) for `spec`."""
    if render:
        return "template"
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
    how = method(spec, render=render)
    if how == "template":
        return _template(spec, where, settings=settings, opts=opts)
    if how == "release":
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
        _mirror(resource_name, spec, where, settings=settings, parent=opts.parent)
        return release
    return k8s.helm.v4.Chart(
        resource_name,
        name=spec.release,
        chart=where.chart,
        version=spec.version,
        namespace=spec.namespace,
        repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=where.repo) if where.repo else None,
        values=spec.values,
        skip_crds=spec.skip_crds,
        opts=opts,
    )


def _mirror(
    resource_name: str,
    spec: ChartSpec,
    where: ChartLocation,
    *,
    settings: Settings,
    parent: pulumi.Resource | None,
) -> None:
    """The Release's render-only twin (module docstring): a provider that only writes YAML (it
    refuses a kubeconfig next to renderYamlToDirectory) and the same chart on it, as a Helm v3
    Chart named like the release (Helm renders that name into object names). Parented like the
    Release, waiting for nothing."""
    renderer = k8s.Provider(
        f"{resource_name}{MIRROR_SUFFIX}",
        render_yaml_to_directory=mirror_directory(settings, spec),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    stamp = rendered_from(
        release=spec.release,
        namespace=spec.namespace,
        where=where,
        version=spec.version,
        skip_crds=spec.skip_crds,
        values=spec.values,
    )

    def stamped(obj: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
        del opts
        metadata = obj.setdefault("metadata", {})
        metadata["annotations"] = {**(metadata.get("annotations") or {}), RENDERED_FROM: stamp}

    _template(
        spec,
        where,
        settings=settings,
        opts=pulumi.ResourceOptions(parent=parent, provider=renderer),
        transformations=[stamped],
    )


def _template(
    spec: ChartSpec,
    where: ChartLocation,
    *,
    settings: Settings,
    opts: pulumi.ResourceOptions,
    transformations: list[Any] | None = None,
) -> pulumi.Resource:
    """A Helm v3 Chart: `helm template` for the Kubernetes version the stack targets (its
    resource name is the release name, which Helm renders into object names)."""
    common: dict[str, Any] = {
        "namespace": spec.namespace,
        "values": spec.values,
        "skip_crd_rendering": spec.skip_crds,
        "kube_version": kubernetes_version(settings),
        "transformations": transformations,
    }
    config: k8s.helm.v3.ChartOpts | k8s.helm.v3.LocalChartOpts
    if settings.chart_source == "directory":
        # An archive or an unpacked folder: Helm loads either from the path.
        config = k8s.helm.v3.LocalChartOpts(path=where.chart, **common)
    else:
        config = k8s.helm.v3.ChartOpts(
            chart=where.chart,
            version=spec.version,
            fetch_opts=k8s.helm.v3.FetchOpts(repo=where.repo) if where.repo else None,
            **common,
        )
    return k8s.helm.v3.Chart(spec.release, config, opts=opts)


# One answer per target and program run: an existing cluster is asked once, not per Release.
_VERSIONS: dict[tuple[str | None, ...], str] = {}


def kubernetes_version(settings: Settings) -> str:
    """The Kubernetes version a chart renders for (Helm's `--kube-version`): the one the stack
    targets (`cluster_version.check`: the cluster's own in `existing` mode, the kind node's, or
    `aimesh:kubernetesVersion`), so the mirror renders what the Release installs."""
    key = (
        settings.cluster_mode,
        settings.kubeconfig,
        settings.kube_context,
        settings.kubernetes_version,
        os.environ.get(cluster_version.ASSUME_ENV),
    )
    if key not in _VERSIONS:
        _VERSIONS[key] = cluster_version.check(settings).server
    return _VERSIONS[key]


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
