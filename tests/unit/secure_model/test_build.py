"""Every object of one model, assembled: valid against the upstream schemas."""

from __future__ import annotations

import pytest

from aimesh.builders import secure_model
from tests.unit.secure_model.support import one_model
from tests.unit.test_access import GATEWAY, stack
from tools import schemas


@pytest.mark.usefixtures("upstream_available")
@pytest.mark.parametrize("which", ["alpha", "beta"])
def test_every_object_validates_against_upstream_schemas(which: str) -> None:
    settings = stack()
    m = settings.models[0 if which == "alpha" else 1]
    problems = [
        p for obj in secure_model.build(settings, m, GATEWAY).all() for p in schemas.validate(obj)
    ]
    assert problems == []


@pytest.mark.usefixtures("upstream_available")
def test_full_featured_model_validates() -> None:
    settings, m = one_model(
        resources={"cpu": "4", "memory": "16Gi", "gpu": 1},
        nodeSelector={"gpu": "true"},
        tolerations=[{"key": "gpu", "value": "true", "effect": "NoSchedule"}],
        canary={"storageUri": "gs://bucket/v2", "trafficPercent": 5, "runtimeVersion": "1.2.0"},
        rateLimit={"requests": 5},
        callers=[
            {
                "namespace": "batch",
                "serviceAccount": "job",
                "rateLimit": {"requests": 5},
                "windows": [
                    {"open": "0 22 * * 1-5", "close": "0 6 * * 2-6", "timeZone": "America/New_York"}
                ],
            }
        ],
        managers=[{"kind": "User", "name": "a@example.com"}],
        egressAllowlist=["api.example.com"],
    )
    problems = [
        p for obj in secure_model.build(settings, m, GATEWAY).all() for p in schemas.validate(obj)
    ]
    assert problems == []
