"""Cluster: the Kubernetes provider every other component deploys through.

- `kind`: the program creates (and on destroy deletes) a local kind cluster with pulumi-command;
  the kubeconfig kind prints becomes the provider's kubeconfig and a secret stack output.
- `existing`: a kubeconfig (path or content) and/or a context from stack config.
- `render`: no cluster at all; the provider writes every manifest to `renderDir` (GitOps, PR
  previews without cluster credentials). Only Helm v4 Charts render; v3 Releases need a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s
import yaml

from aimesh.builders import cluster as builders
from aimesh.components.manifests import child_options, upstream
from aimesh.settings import Settings


@dataclass(frozen=True)
class ClusterArgs:
    """The platform's settings: `clusterMode` and the keys of that mode (kind's cluster name
    and ports, an existing kubeconfig/context, or the render directory)."""

    settings: Settings


class Cluster(pulumi.ComponentResource):
    """The kind cluster (kind mode) and the `kubernetes.Provider` for the configured mode."""

    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    render: bool
    kind: command.local.Command | None

    def __init__(
        self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aimesh:cluster:Cluster", name, None, opts)
        settings = args.settings
        self.render = settings.cluster_mode == "render"
        self.kind = None
        child = child_options(self, upstream(opts))

        if settings.cluster_mode == "kind":
            kind_config = yaml.safe_dump(builders.kind_config(settings), sort_keys=True)
            self.kind = command.local.Command(
                f"{name}-kind",
                create=builders.kind_create_command(settings),
                delete=builders.kind_delete_command(settings),
                stdin=kind_config,
                # stdout is the kubeconfig (with a client key): never logged, stored as secret.
                logging=command.local.Logging.STDERR,
                triggers=[kind_config],
                opts=pulumi.ResourceOptions.merge(
                    child,
                    pulumi.ResourceOptions(
                        additional_secret_outputs=["stdout"],
                        # A changed cluster definition means a new cluster; kind cannot create
                        # a second one under the same name, so the old one goes first.
                        replace_on_changes=["*"],
                        delete_before_replace=True,
                    ),
                ),
            )
            self.kubeconfig = pulumi.Output.secret(self.kind.stdout)
            self.provider = k8s.Provider(
                f"{name}-k8s",
                kubeconfig=self.kubeconfig,
                # `make down` may find the kind cluster already gone; don't wedge the stack.
                delete_unreachable=True,
                opts=child,
            )
        elif settings.cluster_mode == "existing":
            kubeconfig = pulumi.Output.secret(settings.kubeconfig or "")
            self.kubeconfig = kubeconfig
            self.provider = k8s.Provider(
                f"{name}-k8s",
                kubeconfig=kubeconfig if settings.kubeconfig else None,
                context=settings.kube_context,
                opts=child,
            )
        else:
            self.kubeconfig = pulumi.Output.secret("")
            self.provider = k8s.Provider(
                f"{name}-k8s",
                render_yaml_to_directory=settings.render_dir,
                opts=child,
            )

        self.register_outputs({"kubeconfig": self.kubeconfig, "render": self.render})
