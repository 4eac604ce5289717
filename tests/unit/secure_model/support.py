"""Helpers of the per-model builder tests: one model from a few fields, objects by kind/name."""

from __future__ import annotations

from typing import Any

from aimesh.builders import secure_model
from aimesh.settings import ModelSettings, Settings, parse


def one_model(environment: str = "dev", **fields: Any) -> tuple[Settings, ModelSettings]:
    base: dict[str, Any] = {"name": "m", "format": "sklearn", "storageUri": "gs://bucket/m"}
    base.update(fields)
    settings = parse({"environment": environment, "models": [base]})
    return settings, settings.models[0]


def by_kind(objects: secure_model.ModelObjects, kind: str) -> list[dict[str, Any]]:
    return [m for m in objects.all() if m["kind"] == kind]


def named(objects: secure_model.ModelObjects, kind: str, name: str) -> dict[str, Any]:
    return next(m for m in by_kind(objects, kind) if m["metadata"]["name"] == name)
