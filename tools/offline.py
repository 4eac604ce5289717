"""Evaluate the Pulumi program offline: no engine, no cluster, no Pulumi CLI.

The program runs under Pulumi's mock monitor with the config the engine would pass for a stack:
the project defaults of `Pulumi.yaml`, overlaid with `Pulumi.<stack>.yaml`, structured values as
JSON text. Every registered resource is recorded with its type, name, inputs, parent,
dependencies and provider, so that tests and `make check` see exactly what `pulumi up` would ask
the engine for.
"""

from __future__ import annotations

import json
import os
import re
import runpy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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

from aimesh import cluster_version, settings, versions

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "aimesh"
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
CHART_TYPE = "kubernetes:helm.sh/v4:Chart"
# Render mode's chart: a component whose objects come from the provider's `helm template`.
TEMPLATE_TYPE = "kubernetes:helm.sh/v3:Chart"
HELM_TEMPLATE = "kubernetes:helm:template"
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
    # Every provider function the program called: (token, arguments).
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

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

    def chart_installs(self) -> list[ChartInstall]:
        """Every Helm chart the program installs, however: a v3 Release or a v4 Chart (from its
        inputs) or, in render mode, a v3 Chart (a component with no inputs of its own: from
        the `helm template` call it made, matched by release name)."""
        templates = {
            opts.get("release_name"): opts
            for token, args in self.calls
            if token == HELM_TEMPLATE and isinstance(args.get("jsonOpts"), str)
            for opts in [json.loads(args["jsonOpts"])]
        }
        # A Release's render-only mirror (aimesh/components/charts.py) is a v3 Chart named like
        # the release: the same install, not another one.
        released = {str(r.inputs.get("name")) for r in self.resources if r.type == RELEASE_TYPE}
        found: list[ChartInstall] = []
        for r in self.resources:
            if r.type in (RELEASE_TYPE, CHART_TYPE):
                repo = (r.inputs.get("repositoryOpts") or {}).get("repo")
                found.append(
                    ChartInstall(
                        urn=r.urn,
                        type=r.type,
                        release=str(r.inputs.get("name") or r.name),
                        chart=str(r.inputs.get("chart", "")),
                        version=r.inputs.get("version"),
                        repo=repo,
                        namespace=str(r.inputs.get("namespace", "")),
                        values=r.inputs.get("values") or {},
                    )
                )
            elif r.type == TEMPLATE_TYPE and r.name in templates and r.name not in released:
                opts = templates[r.name]
                found.append(
                    ChartInstall(
                        urn=r.urn,
                        type=r.type,
                        release=r.name,
                        chart=str(opts.get("chart") or opts.get("path") or ""),
                        version=opts.get("version"),
                        repo=(opts.get("fetch_opts") or {}).get("repo"),
                        namespace=str(opts.get("namespace", "")),
                        values=opts.get("values") or {},
                    )
                )
        return found


@dataclass(frozen=True)
class ChartInstall:
    """One Helm chart a stack installs, whichever resource installs it."""

    urn: str
    type: str
    release: str
    # As given: a chart name (with `repo`), an oci:// reference or a local path.
    chart: str
    version: str | None
    repo: str | None
    namespace: str
    values: dict[str, Any]

    @property
    def name(self) -> str:
        """The chart's own name: `cert-manager`, `istiod`, `kserve-resources`."""
        base = self.chart.rstrip("/").rsplit("/", 1)[-1]
        return re.sub(r"-v?\d+\.\d+\.\d+.*\.tgz$", "", base)


# Outputs a real provider would compute that the program reads back (extend as needed).
ComputedOutputs = Callable[[pulumi_mocks.MockResourceArgs], Mapping[str, Any]]
# What a provider function returns, by token and arguments.
Invokes = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]


def no_rendering(token: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
    """Provider functions offline. There is no Helm here to render a chart: a Helm v3 Chart (a
    Release's render-only mirror, render mode's charts) has no objects. A real preview (and
    `make e2e`) renders them; tools/check.py says which policy that leaves unjudged."""
    del args
    return {"result": []} if token == HELM_TEMPLATE else {}


def _computed(args: pulumi_mocks.MockResourceArgs) -> Mapping[str, Any]:
    if args.typ == "command:local:Command":
        return {"stdout": "apiVersion: v1\nkind: Config\n# kubeconfig of the mock kind cluster\n"}
    return {}


class _Mocks(pulumi_mocks.Mocks):
    def __init__(self, computed: ComputedOutputs, invokes: Invokes, into: Evaluation) -> None:
        self._computed = computed
        self._invokes = invokes
        self._into = into

    def new_resource(
        self, args: pulumi_mocks.MockResourceArgs
    ) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        state.update(self._computed(args))
        return f"{args.name}-id", state

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self._into.calls.append((args.token, dict(args.args)))
        return dict(self._invokes(args.token, args.args)), []


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


def stack_config(
    stack: str, root: Path = ROOT, *, stand_ins: bool = True
) -> tuple[dict[str, str], list[str]]:
    """The config map (and secret keys) the engine passes for `stack`, as strings. With
    `stand_ins`, values the stack file lacks and only its owner can set (secrets, a root CA,
    see `stand_ins_for`) are filled with stand-ins, so the rest can still be evaluated."""
    config, secret_keys, _ = stack_inputs(stack, root, stand_ins=stand_ins)
    return config, secret_keys


def stack_inputs(
    stack: str, root: Path = ROOT, *, stand_ins: bool = True
) -> tuple[dict[str, str], list[str], list[settings.MissingValue]]:
    """`stack_config`, plus the required values that were missing (and stood in for)."""
    stack_file = root / f"Pulumi.{stack}.yaml"
    values = project_defaults(root / "Pulumi.yaml")
    values.update((yaml.safe_load(stack_file.read_text()) or {}).get("config") or {})
    config, secret_keys = encode_config(values)
    if not stand_ins:
        return config, secret_keys, []
    missing = missing_values(config)
    if not missing:
        return config, secret_keys, []
    filled = stand_ins_for(values, missing)
    config, secret_keys = encode_config(filled)
    return config, secret_keys, missing


def missing_values(config: Mapping[str, str]) -> list[settings.MissingValue]:
    """The required values `config` lacks ([] when it is complete, or invalid otherwise: an
    invalid config is reported by the program itself)."""
    raw = {
        key.split(":", 1)[1]: settings.decode_value(value)
        for key, value in config.items()
        if key.startswith(f"{PROJECT}:")
    }
    try:
        settings.parse(raw)
    except settings.MissingValuesError as exc:
        return list(exc.missing)
    except settings.ConfigError:
        return []
    return []


STAND_IN = "offline-stand-in"


def stand_ins_for(
    values: Mapping[str, Any], missing: list[settings.MissingValue]
) -> dict[str, Any]:
    """A copy of the stack's config values with a stand-in for each missing value: a secret
    placeholder for secrets, a throwaway PKI (a root in the trust bundle and an intermediate it
    signed) for a missing mesh CA, a name for the rest. Offline only: the real engine stops on
    each missing value with its fix."""
    filled: dict[str, Any] = json.loads(json.dumps(dict(values)))
    keys = {item.key for item in missing}
    intermediate_pem = ""
    if "meshCaCertificate" in keys or "meshTrustRoots[0]" in keys:
        root_pem, intermediate_pem = _throwaway_pki()
        roots = filled.setdefault(f"{PROJECT}:meshTrustRoots", [])
        roots.append({"name": STAND_IN, "pem": root_pem})
    for item in missing:
        if item.secret:
            _set_path(filled, item.key, {"secure": STAND_IN})
        elif item.key == "meshCaCertificate":
            _set_path(filled, item.key, intermediate_pem)
        elif not item.key.startswith("meshTrustRoots"):
            _set_path(filled, item.key, STAND_IN)
    return filled


def _set_path(values: dict[str, Any], key_path: str, value: Any) -> None:
    """Set `aimesh:<key_path>` (`a[0].b` syntax) in `values`, creating lists and maps."""
    parts: list[str | int] = [
        int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", key_path)
    ]
    full = f"{PROJECT}:{parts[0]}"
    node: Any = values
    key: str | int = full
    for part in parts[1:]:
        if isinstance(node, dict):
            node = node.setdefault(key, [] if isinstance(part, int) else {})
        else:
            while len(node) <= int(key):
                node.append([] if isinstance(part, int) else {})
            node = node[int(key)]
        key = part
    if isinstance(node, list):
        while len(node) <= int(key):
            node.append(None)
        node[int(key)] = value
    else:
        node[key] = value


def _throwaway_pki() -> tuple[str, str]:
    """(root, intermediate) CA certificates made on the spot; their keys are discarded."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    made: list[tuple[x509.Certificate, ec.EllipticCurvePrivateKey]] = []
    for common_name in ("aimesh offline stand-in root", "aimesh offline stand-in intermediate"):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        issuer, signer = (made[0][0].subject, made[0][1]) if made else (name, key)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(signer, hashes.SHA256())
        )
        made.append((cert, key))
    root, intermediate = (c.public_bytes(serialization.Encoding.PEM).decode() for c, _ in made)
    return root, intermediate


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
            # The engine treats a structured value holding any secure part as a secret.
            if json.dumps(value) != config[full]:
                secret_keys.append(full)
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
    invokes: Invokes = no_rendering,
) -> Evaluation:
    """Run the program once under mocks with `config` and return what it registered.

    Raises whatever the program raises (e.g. a config error), after the runtime is drained."""
    result = Evaluation()
    result.stack = stack
    pulumi_settings.reset_options(project=PROJECT, stack=stack, preview=preview)
    set_all_config(dict(config), secret_keys or [])
    mocks = _Mocks(computed, invokes, result)
    pulumi.runtime.set_mocks(
        mocks,
        project=PROJECT,
        stack=stack,
        preview=preview,
        monitor=_RecordingMonitor(mocks, result),
    )
    # A fresh root stack per run, finished after the program so its exports are recorded.
    pulumi_settings.ROOT.set(None)
    # No cluster to ask: an existing-cluster stack is evaluated for the pinned Kubernetes (a
    # caller's own AIMESH_ASSUME_KUBERNETES_VERSION wins).
    preset = cluster_version.ASSUME_ENV in os.environ
    os.environ.setdefault(cluster_version.ASSUME_ENV, versions.KUBERNETES_SCHEMA_VERSION)
    try:
        _sync_await(run_in_stack(lambda: _run_program(program)))
    finally:
        if not preset:
            os.environ.pop(cluster_version.ASSUME_ENV, None)
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
