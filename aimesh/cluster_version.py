"""Which Kubernetes the stack targets, and the refusal to install on one that is too old.

aimesh needs Kubernetes >= 1.33 (`versions.MIN_KUBERNETES`): native sidecars (GA in 1.33) start
Istio's proxy before any init container, so KServe's storage initializer downloads the model
through the proxy. On an older cluster (or kubelet) the proxy starts only after the init
containers, the download cannot leave the pod under REGISTRY_ONLY egress, and every
InferenceService stays unready. There is no safe ordering to switch to: running the initializer
outside the proxy's capture (as the proxy's UID) is exactly the escape the guardrails forbid.
So the program refuses, before registering anything, with the versions it found.

- `existing`: the cluster is asked: the API server's version and the oldest kubelet among its
  nodes (Istio turns native sidecars on only if every node supports them).
- `render`: there is no cluster; `aimesh:kubernetesVersion` says what the YAML is for.
- `kind`: the pinned node image (`versions.KIND_NODE_IMAGE`).

`AIMESH_ASSUME_KUBERNETES_VERSION` replaces the question to the cluster with an answer: the
offline evaluation (tools/offline.py, `make check`), which has no cluster to ask, sets it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from aimesh import versions
from aimesh.settings import Settings

ASSUME_ENV = "AIMESH_ASSUME_KUBERNETES_VERSION"
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


class UnsupportedClusterError(Exception):
    """The cluster (or render target) is older than aimesh supports, or could not be asked."""


def minor(version: str) -> tuple[int, int]:
    """(major, minor) of a Kubernetes version as servers report it (`v1.33.2-eks-1a2b`)."""
    match = _VERSION.match(version.strip())
    if match is None:
        raise UnsupportedClusterError(f"cannot read a Kubernetes version from {version!r}")
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True)
class ClusterVersion:
    """What the stack targets: the API server's version and the oldest kubelet's (if known)."""

    server: str
    oldest_kubelet: str | None = None
    source: str = "cluster"

    def problems(self) -> list[str]:
        floor = ".".join(map(str, versions.MIN_KUBERNETES))
        found = []
        if minor(self.server) < versions.MIN_KUBERNETES:
            found.append(f"the API server is {self.server}")
        if self.oldest_kubelet and minor(self.oldest_kubelet) < versions.MIN_KUBERNETES:
            found.append(f"a node's kubelet is {self.oldest_kubelet}")
        return [f"{p} (aimesh needs >= {floor})" for p in found]


def require_supported(found: ClusterVersion) -> ClusterVersion:
    """`found` if it is supported, else an error that says what was found and what to do."""
    problems = found.problems()
    if problems:
        floor = ".".join(map(str, versions.MIN_KUBERNETES))
        where = {
            "render": "aimesh:kubernetesVersion",
            "cluster": "the cluster (aimesh:kubeconfig / aimesh:kubeContext)",
            ASSUME_ENV: ASSUME_ENV,
        }.get(found.source, found.source)
        raise UnsupportedClusterError(
            f"{where}: {'; '.join(problems)}. Kubernetes {floor} brings native sidecars, which "
            "start Istio's proxy before KServe's storage initializer; without them no model can "
            f"download its weights through the mesh. Upgrade the control plane and nodes to "
            f"{floor} or later (nothing was created)."
        )
    return found


def read_cluster(settings: Settings) -> ClusterVersion:
    """Ask the cluster of an `existing` stack: the API server's version, and the oldest kubelet
    among its nodes when the credentials may list nodes."""
    from kubernetes import client, config

    try:
        if settings.kubeconfig and "\n" in settings.kubeconfig:
            import yaml

            api = config.new_client_from_config_dict(  # type: ignore[no-untyped-call]
                yaml.safe_load(settings.kubeconfig),
                context=settings.kube_context,
                persist_config=False,
            )
        else:
            api = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=settings.kubeconfig or None,
                context=settings.kube_context,
                persist_config=False,
            )
        server = str(client.VersionApi(api).get_code().git_version)
    except Exception as exc:  # any failure to ask becomes one clear error
        raise UnsupportedClusterError(
            "cannot read the cluster's Kubernetes version through aimesh:kubeconfig / "
            f"aimesh:kubeContext ({type(exc).__name__}: {_short(exc)}). Check that the "
            "context exists and the cluster is reachable (nothing was created)."
        ) from None
    return ClusterVersion(server=server, oldest_kubelet=_oldest_kubelet(client, api))


def _oldest_kubelet(client: Any, api: Any) -> str | None:
    try:
        nodes = client.CoreV1Api(api).list_node().items
    except Exception:  # may not list nodes: the server version must do
        return None
    kubelets = {
        str(n.metadata.name): str(n.status.node_info.kubelet_version)
        for n in nodes
        if n.status and n.status.node_info
    }
    for name, version in kubelets.items():
        if _VERSION.match(version.strip()) is None:
            # A simulated or virtual node (kwok reports `kwok-<version>`): whether its pods get
            # native sidecars cannot be told, so it is refused like an old one, by name.
            raise UnsupportedClusterError(
                f"the cluster: node {name}'s kubelet reports {version!r}, not a Kubernetes "
                f"version, so aimesh cannot tell whether it runs native sidecars (needs >= "
                f"{'.'.join(map(str, versions.MIN_KUBERNETES))}). Remove the node or run a "
                "kubelet that reports its release (nothing was created)."
            )
    return min(kubelets.values(), key=minor) if kubelets else None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


def target(settings: Settings) -> ClusterVersion:
    """The Kubernetes version the stack installs onto, refused when too old."""
    assumed = os.environ.get(ASSUME_ENV)
    if settings.cluster_mode == "render":
        found = ClusterVersion(settings.kubernetes_version, source="render")
    elif settings.cluster_mode == "kind":
        found = ClusterVersion(versions.KIND_NODE_VERSION, source="kind")
    elif assumed:
        found = ClusterVersion(assumed, source=ASSUME_ENV)
    else:
        found = read_cluster(settings)
    return require_supported(found)


def check(settings: Settings) -> ClusterVersion:
    """`target`, with a refusal turned into a clean Pulumi error before anything is registered."""
    import pulumi

    try:
        return target(settings)
    except UnsupportedClusterError as exc:
        raise pulumi.RunError(str(exc)) from None
