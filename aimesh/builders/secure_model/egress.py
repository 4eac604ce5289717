"""Egress (DLP): the only external hosts a model's pods may reach, its storage host(s) and
explicit allowlist, as a ServiceEntry visible to its namespace alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from aimesh.builders import access
from aimesh.builders.common import metadata
from aimesh.builders.secure_model.meta import NETWORKING_API, model_labels
from aimesh.settings import ModelSettings

# Hosts an `hf://` download touches: the Hub (metadata, `resolve/` URLs) and the CDNs its
# `resolve/` answers redirect to: LFS files to cdn-lfs*.hf.co (formerly *.huggingface.co), files
# in Xet storage (the Hub's default for new repositories) to the Xet bridge, or, with the hf_xet
# client huggingface_hub uses when installed, to the Xet CAS and transfer hosts.
HF_HOSTS = (
    "huggingface.co",
    "cdn-lfs.hf.co",
    "cdn-lfs-us-1.hf.co",
    "cdn-lfs.huggingface.co",
    "cdn-lfs-us-1.huggingface.co",
    "cas-bridge.xethub.hf.co",
    "cas-server.xethub.hf.co",
    "transfer.xethub.hf.co",
)


@dataclass(frozen=True)
class EgressHost:
    host: str
    port: int


def storage_hosts(model: ModelSettings) -> list[EgressHost]:
    """Hosts the storage initializer downloads the model (and the canary's) from.

    pvc:// stays in the cluster; oci:// model images are pulled by the kubelet (KServe's
    modelcar), not by the pod: neither needs egress. `storageHost` overrides the derived host."""
    uris = [model.storage_uri] + ([model.canary.storage_uri] if model.canary else [])
    hosts: list[EgressHost] = []
    for uri in uris:
        parsed = urlparse(uri)
        scheme = parsed.scheme
        if scheme in ("pvc", "oci"):
            continue
        if model.storage_host:
            host = EgressHost(model.storage_host, 443)
        elif scheme == "gs":
            host = EgressHost("storage.googleapis.com", 443)
        elif scheme == "s3":
            # boto3's default virtual-hosted addressing: <bucket>.s3.amazonaws.com
            host = EgressHost(f"{parsed.netloc}.s3.amazonaws.com", 443)
        elif scheme == "hf":
            # The Hub answers file downloads with a redirect to its CDNs (below): with
            # REGISTRY_ONLY, huggingface.co alone stops every model at the first weight file.
            for name in HF_HOSTS:
                if EgressHost(name, 443) not in hosts:
                    hosts.append(EgressHost(name, 443))
            continue
        else:  # https://host[:port]/..., azure://<account>.blob.core.windows.net/...
            host = EgressHost(parsed.hostname or parsed.netloc, parsed.port or 443)
        if host not in hosts:
            hosts.append(host)
    return hosts


def egress_hosts(model: ModelSettings) -> list[EgressHost]:
    allow = [EgressHost(h, 443) for h in model.egress_allowlist]
    return storage_hosts(model) + [h for h in allow if h not in storage_hosts(model)]


def service_entry(model: ModelSettings) -> dict[str, Any] | None:
    """With REGISTRY_ONLY egress, the ONLY external hosts this model's pods can reach, visible
    to this namespace alone (`exportTo: ["."]`). TLS passthrough: the storage client verifies
    the server certificate end to end."""
    hosts = egress_hosts(model)
    if not hosts:
        return None
    ports = sorted({h.port for h in hosts})
    return {
        "apiVersion": NETWORKING_API,
        "kind": "ServiceEntry",
        "metadata": metadata(
            access.short_name(model.name, "egress"), model.ns, model_labels(model)
        ),
        "spec": {
            "hosts": sorted({h.host for h in hosts}),
            "exportTo": ["."],
            "location": "MESH_EXTERNAL",
            "resolution": "DNS",
            "ports": [{"number": p, "name": f"tls-{p}", "protocol": "TLS"} for p in ports],
        },
    }
