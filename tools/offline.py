"""Evaluate the Pulumi program offline: no engine, no cluster, no Pulumi CLI.

The program runs under Pulumi's mock monitor with the config the engine would pass for a stack:
the project defaults of `Pulumi.yaml`, overlaid with `Pulumi.<stack>.yaml`, structured values as
JSON text. Every registered resource is recorded with its type, name, inputs, parent,
dependencies and provider, so that tests and `make check` see exactly what `pulumi up` would ask
the engine for.
"""

from __future__ import annotations

import json
import runpy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "aimesh"
SECRET_PLACEHOLDER = "[secret]"  # noqa: S105 - a marker, not a credential


@dataclass
class Registered:
    """One resource as the engine would receive it."""

    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    custom: bool
    parent: str
    dependencies: list[str]
    provider: str
    remote: bool
    # What the engine also hands analyzers (tools.check): per-property dependencies and options.
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """Kubernetes kind for kubernetes:* custom resources, else ''."""
        if not self.type.startswith("kubernetes:"):
            return ""
        return str(self.inputs.get("kind") or self.type.rsplit(":", 1)[-1])


@dataclass
class Evaluation:
    """What one evaluation of the program registered and exported."""

    resources: list[Registered] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    stack: str = "test"

    def by_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def manifests(self) -> list[dict[str, Any]]:
        """Inputs of every Kubernetes object the program registers directly (not Helm charts)."""
        return [
            r.inputs
            for r in self.resources
            if r.type.startswith("kubernetes:")
            and r.custom
            and "helm.sh" not in r.type
            and r.type != "pulumi:providers:kubernetes"
            and isinstance(r.inputs.get("kind"), str)
        ]

    def find(self, kind: str, name: str | None = None) -> list[dict[str, Any]]:
        return [
            m
            for m in self.manifests()
            if m.get("kind") == kind and (name is None or m.get("metadata", {}).get("name") == name)
        ]

    def urn_of(self, name: str) -> str:
        return next(r.urn for r in self.resources if r.name == name)


# Outputs a real provider would compute that the program reads back (extend as needed).
ComputedOutputs = Callable[[pulumi_mocks.MockResourceArgs], Mapping[str, Any]]


def _computed(args: pulumi_mocks.MockResourceArgs) -> Mapping[str, Any]:
    if args.typ == "command:local:Command":
        return {"stdout": "apiVersion: v1\nkind: Config\n# kubeconfig of the mock kind cluster\n"}
    return {}


class _Mocks(pulumi_mocks.Mocks):
    def __init__(self, computed: ComputedOutputs) -> None:
        self._computed = computed

    def new_resource(
        self, args: pulumi_mocks.MockResourceArgs
    ) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        state.update(self._computed(args))
        return f"{args.name}-id", state

    def call(
        self, args: pulumi_mocks.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, also keeping parent, dependencies and provider of each request."""

    def __init__(self, mocks: pulumi_mocks.Mocks, into: Evaluation) -> None:
        super().__init__(mocks)
        self._into = into

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            self._into.resources.append(
                Registered(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    inputs=rpc.deserialize_properties(request.object, keep_unknowns=True),
                    custom=bool(request.custom),
                    parent=request.parent,
                    dependencies=list(request.dependencies),
                    provider=request.provider,
                    remote=bool(request.remote),
                    property_dependencies={
                        key: list(deps.urns) for key, deps in request.propertyDependencies.items()
                    },
                    options={
                        "protect": bool(request.protect),
                        "ignoreChanges": list(request.ignoreChanges),
                        "deleteBeforeReplace": (
                            bool(request.deleteBeforeReplace)
                            if request.deleteBeforeReplaceDefined
                            else None
                        ),
                        "additionalSecretOutputs": list(request.additionalSecretOutputs),
                        "aliases": [
                            *request.aliasURNs,
                            *(a.urn for a in request.aliases if a.WhichOneof("alias") == "urn"),
                        ],
                        # Aliases the engine resolves itself (what `pulumi.Alias(type_=...)`
                        # sends): the fields the program set, e.g. {"type": <old token>}.
                        "aliasSpecs": [
                            _alias_spec(a.spec)
                            for a in request.aliases
                            if a.WhichOneof("alias") == "spec"
                        ],
                        "customTimeouts": {
                            "create": request.customTimeouts.create,
                            "update": request.customTimeouts.update,
                            "delete": request.customTimeouts.delete,
                        },
                    },
                )
            )
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        # Only the root stack's outputs are stack outputs (every URN below it mentions it too).
        if request.urn.split("::")[2:3] == ["pulumi:pulumi:Stack"]:
            self._into.outputs.update(
                rpc.deserialize_properties(request.outputs, keep_unknowns=True)
            )
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]


def _alias_spec(spec: Any) -> dict[str, Any]:
    fields = ("name", "type", "stack", "project", "parentUrn", "noParent")
    return {f: getattr(spec, f) for f in fields if getattr(spec, f)}


def project_defaults(project_file: Path = ROOT / "Pulumi.yaml") -> dict[str, Any]:
    """`aimesh:<key>` -> default, for every key Pulumi.yaml declares with a default."""
    project = yaml.safe_load(project_file.read_text())
    defaults: dict[str, Any] = {}
    for key, decl in (project.get("config") or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if isinstance(decl, dict) and "default" in decl:
            defaults[full] = decl["default"]
        elif isinstance(decl, dict) and "value" in decl:
            defaults[full] = decl["value"]
        elif not isinstance(decl, dict):
            defaults[full] = decl
    return defaults


def stack_config(stack: str, root: Path = ROOT) -> tuple[dict[str, str], list[str]]:
    """The config map (and secret keys) the engine passes for `stack`, as strings."""
    stack_file = root / f"Pulumi.{stack}.yaml"
    values = project_defaults(root / "Pulumi.yaml")
    values.update((yaml.safe_load(stack_file.read_text()) or {}).get("config") or {})
    return encode_config(values)


def encode_config(values: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Encode config the way the engine does: strings as-is, everything else as JSON.
    `secure:` values (which only the CLI can decrypt) become a placeholder secret."""
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in values.items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[full] = SECRET_PLACEHOLDER
            secret_keys.append(full)
        elif isinstance(value, str):
            config[full] = value
        else:
            config[full] = json.dumps(_reveal(value))
    return config, secret_keys


def _reveal(value: Any) -> Any:
    """Nested `secure:` values inside objects/lists become the placeholder too."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECRET_PLACEHOLDER
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reveal(v) for v in value]
    return value


def evaluate(
    config: Mapping[str, str],
    *,
    secret_keys: list[str] | None = None,
    stack: str = "test",
    preview: bool = True,
    program: Path = ROOT / "__main__.py",
    computed: ComputedOutputs = _computed,
) -> Evaluation:
    """Run the program once under mocks with `config` and return what it registered.

    Raises whatever the program raises (e.g. a config error), after the runtime is drained."""
    result = Evaluation()
    result.stack = stack
    pulumi_settings.reset_options(project=PROJECT, stack=stack, preview=preview)
    set_all_config(dict(config), secret_keys or [])
    mocks = _Mocks(computed)
    pulumi.runtime.set_mocks(
        mocks,
        project=PROJECT,
        stack=stack,
        preview=preview,
        monitor=_RecordingMonitor(mocks, result),
    )
    # A fresh root stack per run, finished after the program so its exports are recorded.
    pulumi_settings.ROOT.set(None)
    _sync_await(run_in_stack(lambda: _run_program(program)))
    return result


def _run_program(program: Path) -> None:
    runpy.run_path(str(program), run_name="__main__")


def evaluate_stack(stack: str, *, preview: bool = True, root: Path = ROOT) -> Evaluation:
    """Evaluate the program with the config of `Pulumi.<stack>.yaml` (plus project defaults)."""
    config, secret_keys = stack_config(stack, root)
    return evaluate(config, secret_keys=secret_keys, stack=stack, preview=preview)


def stacks(root: Path = ROOT) -> list[str]:
    """Every stack that has a `Pulumi.<stack>.yaml` in the project."""
    return sorted(p.name.split(".")[1] for p in root.glob("Pulumi.*.yaml"))
