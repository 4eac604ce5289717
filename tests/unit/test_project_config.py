"""Pulumi.yaml, settings.py and the generated config schema tell the same story."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic.fields import FieldInfo

from aimesh.settings import Settings, decode_value
from tools import config_schema, offline

ROOT = Path(__file__).resolve().parents[2]
DECLARED: dict[str, Any] = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
README = (ROOT / "README.md").read_text()
PULUMI_TYPES = {str: "string", int: "integer", bool: "boolean", float: "string"}


def _scalar_type(field: FieldInfo) -> type | None:
    """The scalar Python type of a field (Literal -> its values' type, Optional unwrapped)."""
    annotation: Any = field.annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else annotation
    if typing.get_origin(annotation) is typing.Literal:
        return type(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation if annotation in PULUMI_TYPES else None


SCALARS = {f.alias or n: f for n, f in Settings.model_fields.items() if _scalar_type(f) is not None}


@pytest.mark.parametrize("key", sorted(SCALARS))
def test_every_scalar_key_is_declared_typed_and_described(key: str) -> None:
    field = SCALARS[key]
    if field.default is None:
        # The CLI requires every declared key without a default in every stack
        # (pulumi/pulumi#21797): such keys must stay out of Pulumi.yaml (README documents them).
        assert key not in DECLARED, f"aimesh:{key} has no default: declaring it makes it required"
        assert f"`{key}`" in README, f"aimesh:{key} is not documented in README.md"
        return
    assert key in DECLARED, f"Pulumi.yaml does not declare aimesh:{key}"
    declaration = DECLARED[key]
    assert declaration["type"] == PULUMI_TYPES[_scalar_type(field)]  # type: ignore[index]
    assert declaration.get("description"), f"aimesh:{key} has no description"
    if field.default is not None:
        declared_default = declaration.get("default")
        # Numbers typed as strings in Pulumi.yaml (no float type there) are parsed by settings.
        expected = str(field.default) if declaration["type"] == "string" else field.default
        assert str(declared_default) == str(expected), f"aimesh:{key} default differs"
    else:
        assert "default" not in declaration, f"aimesh:{key} has no default in settings.py"


def test_pulumi_yaml_declares_no_unknown_key() -> None:
    aliases = {f.alias or n for n, f in Settings.model_fields.items()}
    assert set(DECLARED) <= aliases


def test_project_defaults_alone_are_valid() -> None:
    config, _ = offline.encode_config(offline.project_defaults())
    raw = {key.split(":", 1)[1]: decode_value(value) for key, value in config.items()}
    Settings.model_validate(raw)


def test_config_schema_document_is_current() -> None:
    committed = json.loads((ROOT / "docs" / "config.schema.json").read_text())
    assert committed == config_schema.schema(), (
        "stale: run .venv/bin/python -m tools.config_schema > docs/config.schema.json"
    )


def test_every_declared_key_has_a_default() -> None:
    # A declared key without a default fails `pulumi preview` of any stack that lacks it.
    assert [key for key, decl in DECLARED.items() if "default" not in decl] == []


@pytest.mark.parametrize("key", ["kubeconfig", "grafanaAdminPassword"])
def test_credentials_must_be_secrets(key: str) -> None:
    from aimesh.settings import ConfigError, require_secrets

    with pytest.raises(ConfigError, match=f"aimesh:{key}: holds credentials"):
        require_secrets({key: "value"}, set())
    require_secrets({key: "value"}, {f"aimesh:{key}"})
