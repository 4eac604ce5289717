"""Drive a CrossGuard policy pack over the analyzer gRPC protocol, the way the Pulumi CLI does.

What the CLI does for `pulumi preview --policy-pack DIR` with a Python pack (pulumi/pulumi,
pkg/resource/plugin/analyzer_plugin.go `NewPolicyAnalyzer`, and the `pulumi-analyzer-policy-python`
shim it launches):

1. It reads `DIR/PulumiPolicy.yaml` and runs, in DIR, the shim
   `pulumi-analyzer-policy-python <engine> . -virtualenv=venv` (runtime options become `-key=value`
   arguments). The shim puts the pack's virtualenv first on PATH, unsets PYTHONHOME and runs
   `<venv>/bin/python -u -m pulumi.policy <engine> .`, which executes `./__main__.py`. `-u`
   matters: the pack prints its port on a pipe, and a block-buffered stdout would never deliver it.
2. The environment is the CLI's own plus PULUMI_CONFIG (the stack config as a JSON object of
   strings), PULUMI_ORGANIZATION, PULUMI_PROJECT, PULUMI_STACK and PULUMI_DRY_RUN ("true" in a
   preview).
3. The first line on the pack's stdout is the port of its Analyzer gRPC server on 127.0.0.1.
4. The engine calls Handshake and ConfigureStack (both may be Unimplemented), GetAnalyzerInfo, then
   Configure with the reconciled policy config (every policy, schema defaults, then the pack's
   initial config, then `--policy-pack-config`), then for every registered resource Remediate and
   Analyze (on its checked inputs), and AnalyzeStack once at the end with every resource, its
   parent, dependencies and property dependencies.

This module is the reusable client: `PolicyPackProcess` starts and stops a pack, `AnalyzerClient`
speaks the protocol with plain Python values in and out. `tools.check`, the protocol tests and
`benchmarks/policy_pack.py` all go through it.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
import jsonschema
import yaml
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc, engine_pb2_grpc

# Wire encodings of the engine's special property values (sdk/go/common/resource/properties.go).
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
SPECIAL_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 - a type tag, not a secret

# The CLI raises gRPC's default 4 MiB limit for plugins; big stacks need it in AnalyzeStack.
_MAX_MESSAGE = 400 * 1024 * 1024
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
]

ENFORCEMENT_LEVELS = ("advisory", "mandatory", "remediate", "disabled")
_LEVEL_TO_PROTO = {
    "advisory": analyzer_pb2.ADVISORY,
    "mandatory": analyzer_pb2.MANDATORY,
    "remediate": analyzer_pb2.REMEDIATE,
    "disabled": analyzer_pb2.DISABLED,
}
_PROTO_TO_LEVEL: dict[int, str] = {int(v): k for k, v in _LEVEL_TO_PROTO.items()}
_SEVERITIES = {
    analyzer_pb2.POLICY_SEVERITY_UNSPECIFIED: "",
    analyzer_pb2.POLICY_SEVERITY_LOW: "low",
    analyzer_pb2.POLICY_SEVERITY_MEDIUM: "medium",
    analyzer_pb2.POLICY_SEVERITY_HIGH: "high",
    analyzer_pb2.POLICY_SEVERITY_CRITICAL: "critical",
}
_POLICY_TYPES = {
    analyzer_pb2.POLICY_TYPE_UNKNOWN: "unknown",
    analyzer_pb2.POLICY_TYPE_RESOURCE: "resource",
    analyzer_pb2.POLICY_TYPE_STACK: "stack",
}


class AnalyzerError(RuntimeError):
    """The pack could not be started or answered a call with an error."""


# --------------------------------------------------------------------------------------------
# What the engine sends
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderResource:
    """The provider a resource is registered with (AnalyzerProviderResource)."""

    type: str
    urn: str
    name: str
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Resource:
    """One resource as the engine describes it to analyzers (AnalyzeRequest / AnalyzerResource)."""

    type: str
    urn: str
    name: str
    properties: Mapping[str, Any]
    parent: str = ""
    dependencies: tuple[str, ...] = ()
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    provider: ProviderResource | None = None
    protect: bool = False
    ignore_changes: tuple[str, ...] = ()
    delete_before_replace: bool | None = None
    additional_secret_outputs: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    custom_timeouts: tuple[float, float, float] = (0.0, 0.0, 0.0)


def urn(stack: str, project: str, type_: str, name: str, parent_type_chain: str = "") -> str:
    """A Pulumi URN: `urn:pulumi:<stack>::<project>::<parent types $-joined><type>::<name>`."""
    qualified = f"{parent_type_chain}${type_}" if parent_type_chain else type_
    return f"urn:pulumi:{stack}::{project}::{qualified}::{name}"


def encode_value(value: Any) -> Any:
    """A Python property value in the engine's JSON wire form: unknowns become the unknown
    sentinel, secrets keep their signature envelope, keys starting with `__` are dropped (the
    engine marshals with SkipInternalKeys), tuples become lists."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        if value.get(SPECIAL_SIG_KEY) == SECRET_SIG:
            return {SPECIAL_SIG_KEY: SECRET_SIG, "value": encode_value(value.get("value"))}
        return {str(k): encode_value(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list | tuple):
        return [encode_value(v) for v in value]
    # pulumi.output.Unknown (and any other value the engine would not know yet during preview).
    return UNKNOWN


def to_struct(properties: Mapping[str, Any]) -> struct_pb2.Struct:
    """Properties as a protobuf Struct, the way MarshalProperties puts them on the wire."""
    struct = struct_pb2.Struct()
    struct.update(encode_value(properties))
    return struct


def _options(resource: Resource) -> analyzer_pb2.AnalyzerResourceOptions:
    create, update, delete = resource.custom_timeouts
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=resource.protect,
        ignoreChanges=list(resource.ignore_changes),
        deleteBeforeReplace=bool(resource.delete_before_replace),
        deleteBeforeReplaceDefined=resource.delete_before_replace is not None,
        additionalSecretOutputs=list(resource.additional_secret_outputs),
        aliases=list(resource.aliases),
        customTimeouts=analyzer_pb2.AnalyzerResourceOptions.CustomTimeouts(
            create=create, update=update, delete=delete
        ),
        parent=resource.parent,
    )


def _provider(resource: Resource) -> analyzer_pb2.AnalyzerProviderResource | None:
    if resource.provider is None:
        return None
    p = resource.provider
    return analyzer_pb2.AnalyzerProviderResource(
        type=p.type, urn=p.urn, name=p.name, properties=to_struct(p.properties)
    )


def analyze_request(resource: Resource) -> analyzer_pb2.AnalyzeRequest:
    """The AnalyzeRequest the engine sends for one resource (also used for Remediate)."""
    return analyzer_pb2.AnalyzeRequest(
        type=resource.type,
        urn=resource.urn,
        name=resource.name,
        properties=to_struct(resource.properties),
        options=_options(resource),
        provider=_provider(resource),
    )


def stack_resource(resource: Resource) -> analyzer_pb2.AnalyzerResource:
    """One entry of AnalyzeStackRequest. Like the engine, property dependencies without URNs are
    left out."""
    return analyzer_pb2.AnalyzerResource(
        type=resource.type,
        urn=resource.urn,
        name=resource.name,
        properties=to_struct(resource.properties),
        options=_options(resource),
        provider=_provider(resource),
        parent=resource.parent,
        dependencies=list(resource.dependencies),
        propertyDependencies={
            key: analyzer_pb2.AnalyzerPropertyDependencies(urns=list(urns))
            for key, urns in resource.property_dependencies.items()
            if urns
        },
    )


# --------------------------------------------------------------------------------------------
# What the pack answers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Diagnostic:
    """One policy violation (AnalyzeDiagnostic)."""

    policy_name: str
    policy_pack_name: str
    policy_pack_version: str
    description: str
    message: str
    enforcement_level: str
    urn: str
    severity: str

    @property
    def mandatory(self) -> bool:
        # The engine reports a violation of a `remediate` policy that is still present after
        # remediation as mandatory.
        return self.enforcement_level in ("mandatory", "remediate")


@dataclass(frozen=True)
class AnalyzeResult:
    diagnostics: tuple[Diagnostic, ...]
    not_applicable: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Remediation:
    policy_name: str
    description: str
    properties: dict[str, Any] | None
    diagnostic: str


@dataclass(frozen=True)
class PolicyInfo:
    name: str
    display_name: str
    description: str
    enforcement_level: str
    policy_type: str
    severity: str
    config_schema: dict[str, Any]
    remediation_steps: str
    url: str
    tags: tuple[str, ...]
    framework: dict[str, str]


@dataclass(frozen=True)
class AnalyzerInfo:
    name: str
    version: str
    display_name: str
    description: str
    supports_config: bool
    policies: tuple[PolicyInfo, ...]
    initial_config: dict[str, PolicyConfig]

    def policy(self, name: str) -> PolicyInfo:
        return next(p for p in self.policies if p.name == name)


@dataclass(frozen=True)
class PolicyConfig:
    """Config of one policy: an enforcement level ('' = keep) and properties."""

    enforcement_level: str = ""
    properties: dict[str, Any] = field(default_factory=dict)


def _level(value: int) -> str:
    return _PROTO_TO_LEVEL.get(value, f"unknown({value})")


def _diagnostic(d: analyzer_pb2.AnalyzeDiagnostic) -> Diagnostic:
    return Diagnostic(
        policy_name=d.policyName,
        policy_pack_name=d.policyPackName,
        policy_pack_version=d.policyPackVersion,
        description=d.description,
        message=d.message,
        enforcement_level=_level(d.enforcementLevel),
        urn=d.urn,
        severity=_SEVERITIES.get(d.severity, ""),
    )


def _result(response: analyzer_pb2.AnalyzeResponse) -> AnalyzeResult:
    return AnalyzeResult(
        diagnostics=tuple(_diagnostic(d) for d in response.diagnostics),
        not_applicable=tuple((n.policy_name, n.reason) for n in response.not_applicable),
    )


def _struct_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    return dict(json_format.MessageToDict(struct))


# --------------------------------------------------------------------------------------------
# Policy config, as `--policy-pack-config FILE` and the engine handle it
# --------------------------------------------------------------------------------------------


class PolicyConfigError(ValueError):
    """A `--policy-pack-config` the engine (or the pack) would refuse; one line per problem,
    each naming the key path, the value given and, where one is close, the intended name."""

    def __init__(self, problems: Sequence[str], where: str = "") -> None:
        self.problems = list(problems)
        self.where = where
        prefix = f"{where}: " if where else ""
        super().__init__("\n".join(prefix + problem for problem in self.problems))

    def located(self, where: str) -> PolicyConfigError:
        return PolicyConfigError(self.problems, where)


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    found = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f"; did you mean `{found[0]}`?" if found else ""


def _level_problem(path: str, level: Any) -> str:
    levels = ", ".join(ENFORCEMENT_LEVELS)
    hint = _did_you_mean(level, ENFORCEMENT_LEVELS) if isinstance(level, str) else ""
    return f"{path}: {json.dumps(level)}: not an enforcement level ({levels}){hint}"


def parse_policy_config(
    data: Mapping[str, Any], problems: list[str] | None = None
) -> dict[str, PolicyConfig]:
    """The CLI's config file format: `{"<policy>": "<level>"}` or
    `{"<policy>": {"enforcementLevel": "<level>", "<property>": value, ...}}`; the key `all`
    sets the level of every policy. Raises PolicyConfigError naming every bad entry; with a
    `problems` list, appends to it instead and returns the good entries (so that one run can
    report these together with what only the pack's schemas can tell)."""
    result: dict[str, PolicyConfig] = {}
    found: list[str] = []
    for name, value in data.items():
        if isinstance(value, str):
            if value not in ENFORCEMENT_LEVELS:
                found.append(_level_problem(name, value))
                continue
            result[name] = PolicyConfig(value, {})
        elif isinstance(value, Mapping):
            props = dict(value)
            level = props.pop("enforcementLevel", "")
            if not isinstance(level, str) or (level and level not in ENFORCEMENT_LEVELS):
                found.append(_level_problem(f"{name}.enforcementLevel", level))
                continue
            if level or props:
                result[name] = PolicyConfig(level, props)
        else:
            found.append(f"{name}: {json.dumps(value)}: must be an enforcement level or an object")
    if problems is not None:
        problems.extend(found)
    elif found:
        raise PolicyConfigError(found)
    return result


def load_policy_config(path: Path, problems: list[str] | None = None) -> dict[str, PolicyConfig]:
    """Read a `--policy-pack-config` JSON file (empty file = no config). Errors name the file
    (`problems`: as in parse_policy_config)."""
    text = path.read_text()
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise PolicyConfigError([f"{where}: {exc.msg}"], str(path)) from None
    if not isinstance(data, dict):
        raise PolicyConfigError(["must be a JSON object of policy names"], str(path))
    try:
        return parse_policy_config(data, problems)
    except PolicyConfigError as exc:
        raise exc.located(str(path)) from None


def _apply(base: dict[str, PolicyConfig], given: Mapping[str, PolicyConfig]) -> None:
    everything = given.get("all")
    if everything is not None and everything.enforcement_level:
        for name, cfg in list(base.items()):
            base[name] = PolicyConfig(everything.enforcement_level, cfg.properties)
    for name, cfg in given.items():
        current = base.get(name, PolicyConfig())
        base[name] = PolicyConfig(
            cfg.enforcement_level or current.enforcement_level,
            {**current.properties, **cfg.properties},
        )


def reconcile_policy_config(
    info: AnalyzerInfo, config: Mapping[str, PolicyConfig] | None = None
) -> dict[str, PolicyConfig]:
    """What the engine sends in Configure: every policy at its declared level with the schema
    defaults, overlaid with the pack's initial config, then with `config`. Raises
    PolicyConfigError listing every property that does not satisfy the policy's config schema,
    and every policy or property `config` names that the pack does not have (the engine would
    pass those on silently; our pack refuses them in Configure)."""
    errors = unknown_policy_config_names(info, config or {})
    result: dict[str, PolicyConfig] = {}
    for policy in info.policies:
        defaults = {
            key: prop["default"]
            for key, prop in (policy.config_schema.get("properties") or {}).items()
            if isinstance(prop, Mapping) and "default" in prop
        }
        result[policy.name] = PolicyConfig(policy.enforcement_level, defaults)
    _apply(result, info.initial_config)
    _apply(result, config or {})
    for policy in info.policies:
        schema: dict[str, Any] = {"type": "object"}
        if policy.config_schema.get("properties"):
            schema["properties"] = policy.config_schema["properties"]
        if policy.config_schema.get("required"):
            schema["required"] = policy.config_schema["required"]
        validator = jsonschema.Draft7Validator(schema)
        for error in validator.iter_errors(result[policy.name].properties):
            where = ".".join(str(p) for p in error.absolute_path)
            errors.append(f"{policy.name}{'.' + where if where else ''}: {error.message}")
    if errors:
        raise PolicyConfigError(errors)
    return result


def unknown_policy_config_names(
    info: AnalyzerInfo, config: Mapping[str, PolicyConfig]
) -> list[str]:
    """Policies and properties named in `config` that the pack does not declare."""
    by_name = {p.name: p for p in info.policies}
    problems = []
    for name, cfg in config.items():
        if name == "all":
            continue
        policy = by_name.get(name)
        if policy is None:
            problems.append(f"{name}: no such policy in {info.name}{_did_you_mean(name, by_name)}")
            continue
        known = policy.config_schema.get("properties") or {}
        for key, value in cfg.properties.items():
            if key not in known:
                problems.append(
                    f"{name}.{key}: {json.dumps(value, default=str)}: not a property of this "
                    f"policy{_did_you_mean(key, known)}"
                )
    return problems


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


class AnalyzerClient:
    """The Analyzer service of a running pack, with plain values in and out."""

    def __init__(self, address: str, *, timeout: float = 300.0) -> None:
        self.address = address
        self.timeout = timeout
        self._channel = grpc.insecure_channel(address, options=_CHANNEL_OPTIONS)
        self._stub = analyzer_pb2_grpc.AnalyzerStub(self._channel)

    def wait_ready(self, timeout: float) -> None:
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError as exc:
            raise AnalyzerError(f"no analyzer answering on {self.address}") from exc

    def close(self) -> None:
        self._channel.close()

    def call(self, method: str, request: Any) -> Any:
        """One unary call with a ready protobuf request (benchmarks time the protocol alone)."""
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise AnalyzerError(f"{method} failed: {exc.code()}: {exc.details()}") from exc

    def _optional(self, method: str, request: Any) -> bool:
        """Calls the engine tolerates being Unimplemented. True if the pack implements it."""
        try:
            getattr(self._stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return False
            raise AnalyzerError(f"{method} failed: {exc.code()}: {exc.details()}") from exc
        return True

    def handshake(self, engine_address: str, pack_dir: Path) -> bool:
        directory = str(pack_dir)
        return self._optional(
            "Handshake",
            analyzer_pb2.AnalyzerHandshakeRequest(
                engine_address=engine_address,
                root_directory=directory,
                program_directory=directory,
            ),
        )

    def configure_stack(
        self,
        *,
        stack: str,
        project: str,
        organization: str,
        dry_run: bool,
        config: Mapping[str, str] | None = None,
        secret_keys: Iterable[str] = (),
        tags: Mapping[str, str] | None = None,
    ) -> bool:
        return self._optional(
            "ConfigureStack",
            analyzer_pb2.AnalyzerStackConfigureRequest(
                stack=stack,
                project=project,
                organization=organization,
                dry_run=dry_run,
                config=dict(config or {}),
                config_secret_keys=list(secret_keys),
                tags=dict(tags or {}),
            ),
        )

    def get_plugin_info(self) -> str:
        return str(self.call("GetPluginInfo", empty_pb2.Empty()).version)

    def get_analyzer_info(self) -> AnalyzerInfo:
        info = self.call("GetAnalyzerInfo", empty_pb2.Empty())
        policies = []
        for p in info.policies:
            schema: dict[str, Any] = {}
            if p.HasField("configSchema"):
                schema = {
                    "properties": _struct_dict(p.configSchema.properties),
                    "required": list(p.configSchema.required),
                }
            framework: dict[str, str] = {}
            if p.HasField("framework"):
                framework = {
                    "name": p.framework.name,
                    "version": p.framework.version,
                    "reference": p.framework.reference,
                    "specification": p.framework.specification,
                }
            policies.append(
                PolicyInfo(
                    name=p.name,
                    display_name=p.displayName,
                    description=p.description,
                    enforcement_level=_level(p.enforcementLevel),
                    policy_type=_POLICY_TYPES.get(p.policy_type, "unknown"),
                    severity=_SEVERITIES.get(p.severity, ""),
                    config_schema=schema,
                    remediation_steps=p.remediation_steps,
                    url=p.url,
                    tags=tuple(p.tags),
                    framework=framework,
                )
            )
        initial = {
            key: PolicyConfig(_level(cfg.enforcementLevel), _struct_dict(cfg.properties))
            for key, cfg in info.initialConfig.items()
        }
        return AnalyzerInfo(
            name=info.name,
            version=info.version,
            display_name=info.displayName,
            description=info.description,
            supports_config=info.supportsConfig,
            policies=tuple(policies),
            initial_config=initial,
        )

    def configure(self, config: Mapping[str, PolicyConfig]) -> None:
        """Send policy config. Like the engine, every entry carries an explicit enforcement
        level (a missing one would decode as ADVISORY, the protocol's zero value)."""
        if not config:
            return
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, cfg in config.items():
            level = cfg.enforcement_level or "advisory"
            if level not in _LEVEL_TO_PROTO:
                raise ValueError(f"{name}: invalid enforcement level {level!r}")
            entry = request.policyConfig[name]
            entry.enforcementLevel = _LEVEL_TO_PROTO[level]
            entry.properties.update(encode_value(cfg.properties))
        self.call("Configure", request)

    def analyze(self, resource: Resource) -> AnalyzeResult:
        return _result(self.call("Analyze", analyze_request(resource)))

    def remediate(self, resource: Resource) -> list[Remediation]:
        response = self.call("Remediate", analyze_request(resource))
        return [
            Remediation(
                policy_name=r.policyName,
                description=r.description,
                properties=_struct_dict(r.properties) if r.HasField("properties") else None,
                diagnostic=r.diagnostic,
            )
            for r in response.remediations
        ]

    def analyze_stack(self, resources: Sequence[Resource]) -> AnalyzeResult:
        request = analyzer_pb2.AnalyzeStackRequest(resources=[stack_resource(r) for r in resources])
        return _result(self.call("AnalyzeStack", request))


# --------------------------------------------------------------------------------------------
# Starting a pack the way the CLI does
# --------------------------------------------------------------------------------------------


class _Engine(engine_pb2_grpc.EngineServicer):
    """The engine endpoint the pack is given. pulumi_policy never dials it today, but a pack may
    log through it, so it is a real server that records log messages."""

    def __init__(self) -> None:
        self.logs: list[str] = []

    def Log(self, request: Any, context: Any) -> empty_pb2.Empty:  # noqa: N802 - gRPC name
        self.logs.append(str(request.message))
        return empty_pb2.Empty()


def pack_runtime(pack_dir: Path) -> tuple[str, dict[str, Any]]:
    """Runtime name and options from `PulumiPolicy.yaml` (python, {} if absent)."""
    manifest = pack_dir / "PulumiPolicy.yaml"
    if not manifest.exists():
        return "python", {}
    data = yaml.safe_load(manifest.read_text()) or {}
    runtime = data.get("runtime", "python")
    if isinstance(runtime, str):
        return runtime, {}
    if isinstance(runtime, Mapping):
        return str(runtime.get("name", "python")), dict(runtime.get("options") or {})
    return "python", {}


def pack_python(pack_dir: Path, fallback: str | None = None) -> tuple[str, str]:
    """The interpreter the CLI would use, and why: the pack's `virtualenv` runtime option when
    that virtualenv exists, else `fallback` (default: this interpreter, which in this repository
    is `.venv`, holding the same pinned policy-pack requirements)."""
    _, options = pack_runtime(pack_dir)
    venv = options.get("virtualenv")
    if isinstance(venv, str) and venv:
        venv_dir = (pack_dir / venv).resolve()
        candidate = venv_dir / "bin" / "python"
        if candidate.exists():
            return str(candidate), f"the pack's virtualenv {venv_dir}"
        chosen = fallback or sys.executable
        return chosen, f"{chosen} (the pack's virtualenv {venv_dir} does not exist)"
    chosen = fallback or sys.executable
    return chosen, chosen


@dataclass
class PolicyPackProcess:
    """A running policy pack. Use as a context manager; `client` is ready inside it.

    `config` is the stack config the CLI passes in PULUMI_CONFIG (`project:key` -> string)."""

    pack_dir: Path
    stack: str = "dev"
    project: str = "aimesh"
    organization: str = "organization"
    dry_run: bool = True
    config: Mapping[str, str] = field(default_factory=dict)
    python: str | None = None
    startup_timeout: float = 120.0
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pack_dir = Path(self.pack_dir).resolve()
        self.interpreter, self.interpreter_reason = pack_python(self.pack_dir, self.python)
        self._process: subprocess.Popen[bytes] | None = None
        self._engine_server: Any = None
        self._engine = _Engine()
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._threads: list[threading.Thread] = []
        self.port = 0
        self.client: AnalyzerClient

    # The environment and command line the CLI gives a Python policy pack.
    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PYTHONHOME", None)
        bin_dir = str(Path(self.interpreter).parent)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        if self.config:
            env["PULUMI_CONFIG"] = json.dumps(dict(self.config))
        env["PULUMI_ORGANIZATION"] = self.organization
        env["PULUMI_PROJECT"] = self.project
        env["PULUMI_STACK"] = self.stack
        env["PULUMI_DRY_RUN"] = "true" if self.dry_run else "false"
        env.update(self.extra_env)
        return env

    def command(self, engine_address: str) -> list[str]:
        return [self.interpreter, "-u", "-m", "pulumi.policy", engine_address, "."]

    def __enter__(self) -> PolicyPackProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if not (self.pack_dir / "__main__.py").exists():
            raise AnalyzerError(f"{self.pack_dir} has no __main__.py: not a Python policy pack")
        try:
            self._start()
        except BaseException:
            # Never leave a half-started pack (or the engine endpoint) behind.
            self.stop()
            raise

    def _start(self) -> None:
        self._engine_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        engine_pb2_grpc.add_EngineServicer_to_server(self._engine, self._engine_server)
        engine_port = self._engine_server.add_insecure_port("127.0.0.1:0")
        self._engine_server.start()
        engine_address = f"127.0.0.1:{engine_port}"

        self._process = subprocess.Popen(
            self.command(engine_address),
            cwd=self.pack_dir,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        port_line = self._read_port_line()
        try:
            self.port = int(port_line.strip())
        except ValueError as exc:
            raise AnalyzerError(
                f"policy pack printed {port_line!r} instead of its port\n{self.stderr}"
            ) from exc
        self.client = AnalyzerClient(f"127.0.0.1:{self.port}")
        self.client.wait_ready(self.startup_timeout)
        self.client.handshake(engine_address, self.pack_dir)

    def _read_port_line(self) -> str:
        assert self._process is not None
        assert self._process.stdout is not None
        assert self._process.stderr is not None
        first: list[str] = []
        got_first = threading.Event()

        def pump_stdout(stream: Any) -> None:
            for raw in iter(stream.readline, b""):
                line = raw.decode(errors="replace")
                if not got_first.is_set():
                    first.append(line)
                    got_first.set()
                else:
                    self._stdout.append(line)
            got_first.set()

        def pump_stderr(stream: Any) -> None:
            for raw in iter(stream.readline, b""):
                self._stderr.append(raw.decode(errors="replace"))

        for target, stream in (
            (pump_stdout, self._process.stdout),
            (pump_stderr, self._process.stderr),
        ):
            thread = threading.Thread(target=target, args=(stream,), daemon=True)
            thread.start()
            self._threads.append(thread)
        if not got_first.wait(self.startup_timeout) or not first:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait(timeout=10)
            for thread in self._threads:
                thread.join(timeout=5)
            raise AnalyzerError(
                f"policy pack in {self.pack_dir} did not print its port "
                f"within {self.startup_timeout:.0f}s\n{self.stderr}"
            )
        return first[0]

    @property
    def stderr(self) -> str:
        """What the pack wrote on stderr so far (its traceback, when it failed to start)."""
        return "".join(self._stderr)

    @property
    def engine_logs(self) -> list[str]:
        return list(self._engine.logs)

    def stop(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self._process is not None and self._process.poll() is None:
            # The CLI kills its plugins when done; SIGTERM first lets the pack exit cleanly.
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        if self._engine_server is not None:
            self._engine_server.stop(0)
            self._engine_server = None
        for thread in self._threads:
            thread.join(timeout=2)


# --------------------------------------------------------------------------------------------
# A preview's worth of calls, in the engine's order
# --------------------------------------------------------------------------------------------


@dataclass
class PreviewResult:
    """Everything a pack said about one set of resources."""

    resources: list[Resource]
    diagnostics: dict[str, list[Diagnostic]]  # urn ("" = the stack as a whole) -> diagnostics
    remediations: dict[str, list[Remediation]]
    not_applicable: int

    @property
    def all_diagnostics(self) -> list[Diagnostic]:
        return [d for ds in self.diagnostics.values() for d in ds]

    @property
    def mandatory(self) -> list[Diagnostic]:
        return [d for d in self.all_diagnostics if d.mandatory]

    @property
    def advisory(self) -> list[Diagnostic]:
        return [d for d in self.all_diagnostics if not d.mandatory]


def preview(
    client: AnalyzerClient,
    resources: Sequence[Resource],
    *,
    stack_properties: Mapping[str, Mapping[str, Any]] | None = None,
    remediate: bool = True,
) -> PreviewResult:
    """Remediate then Analyze every resource in registration order, then AnalyzeStack once, as
    the engine's step generator does. A remediation's properties replace the resource's inputs
    from then on (so Analyze and AnalyzeStack see the fixed resource, as in a real preview).
    `stack_properties` overrides what AnalyzeStack sees per URN (the engine sends outputs there,
    inputs to Analyze; they differ for the root stack, whose outputs are its exports)."""
    diagnostics: dict[str, list[Diagnostic]] = {}
    remediations: dict[str, list[Remediation]] = {}
    not_applicable = 0
    final: list[Resource] = []
    for resource in resources:
        current = resource
        if remediate:
            for fix in client.remediate(current):
                remediations.setdefault(current.urn, []).append(fix)
                if fix.properties is not None and not fix.diagnostic:
                    current = _replace_properties(current, fix.properties)
        result = client.analyze(current)
        not_applicable += len(result.not_applicable)
        for d in result.diagnostics:
            # The engine files every Analyze diagnostic under the analyzed resource's URN.
            diagnostics.setdefault(current.urn, []).append(d)
        final.append(current)
    overrides = stack_properties or {}
    at_end = [_replace_properties(r, overrides[r.urn]) if r.urn in overrides else r for r in final]
    result = client.analyze_stack(at_end)
    not_applicable += len(result.not_applicable)
    for d in result.diagnostics:
        diagnostics.setdefault(d.urn, []).append(d)
    return PreviewResult(final, diagnostics, remediations, not_applicable)


def _replace_properties(resource: Resource, properties: Mapping[str, Any]) -> Resource:
    return replace(resource, properties=dict(properties))


def manifest_version(pack_dir: Path) -> str:
    """`version` from PulumiPolicy.yaml: the CLI reports it instead of the SDK's placeholder."""
    manifest = pack_dir / "PulumiPolicy.yaml"
    if not manifest.exists():
        return ""
    data = yaml.safe_load(manifest.read_text()) or {}
    return str(data.get("version") or "")
