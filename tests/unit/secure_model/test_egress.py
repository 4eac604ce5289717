"""Egress (DLP): the storage hosts a model may reach and its namespace-local ServiceEntry."""

from __future__ import annotations

import pytest

from aimesh.builders.secure_model import (
    egress,
)
from tests.unit.secure_model.support import one_model


@pytest.mark.parametrize(
    ("uri", "hosts"),
    [
        ("gs://bucket/m", [("storage.googleapis.com", 443)]),
        ("s3://my-bucket/m", [("my-bucket.s3.amazonaws.com", 443)]),
        ("https://models.example.com:8443/m.joblib", [("models.example.com", 8443)]),
        (
            "hf://org/model",
            [
                (h, 443)
                for h in (
                    "huggingface.co",
                    "cdn-lfs.hf.co",
                    "cdn-lfs-us-1.hf.co",
                    "cdn-lfs.huggingface.co",
                    "cdn-lfs-us-1.huggingface.co",
                    "cas-bridge.xethub.hf.co",
                    "cas-server.xethub.hf.co",
                    "transfer.xethub.hf.co",
                )
            ],
        ),
        ("pvc://models-pvc/m", []),
        ("oci://registry.example.com/models/m:1", []),
    ],
)
def test_storage_host_derived_from_uri(uri: str, hosts: list[tuple[str, int]]) -> None:
    _, m = one_model(storageUri=uri)
    assert [(h.host, h.port) for h in egress.storage_hosts(m)] == hosts


def test_hf_models_reach_the_hub_cdns() -> None:
    # The Hub redirects weight downloads to its LFS and Xet CDNs; without them in the
    # ServiceEntry, REGISTRY_ONLY stops the storage initializer at the first large file.
    _, m = one_model(storageUri="hf://org/model")
    se = egress.service_entry(m)
    assert se is not None
    hosts = se["spec"]["hosts"]
    assert "huggingface.co" in hosts
    assert {"cdn-lfs.hf.co", "cas-bridge.xethub.hf.co"} <= set(hosts)
    assert not any("*" in h for h in hosts)  # DNS resolution: exact names only


def test_storage_host_override() -> None:
    _, m = one_model(storageUri="s3://b/m", storageHost="minio.example.com")
    assert [h.host for h in egress.storage_hosts(m)] == ["minio.example.com"]


def test_service_entry_only_for_storage_and_allowlist() -> None:
    _, m = one_model(egressAllowlist=["telemetry.example.com"])
    se = egress.service_entry(m)
    assert se is not None
    assert se["spec"]["hosts"] == ["storage.googleapis.com", "telemetry.example.com"]
    assert se["spec"]["exportTo"] == ["."]
    assert se["spec"]["location"] == "MESH_EXTERNAL"
    _, local = one_model(storageUri="pvc://claim/m")
    assert egress.service_entry(local) is None
