"""`make check`: the policy pack's verdict on a stack (or on plain manifests), offline.

    python -m tools.check --stack dev [--policy-pack-config FILE]
    python -m tools.check --manifests DIR [--policy-pack-config FILE]

`--stack` evaluates the program under Pulumi mocks (tools.offline) and sends every registered
resource through the policy pack exactly as `pulumi preview --policy-pack policy-pack` would:
the pack is started the way the CLI starts a Python pack, and driven over the analyzer gRPC
protocol (tools.analyzer). `--manifests` does the same for a directory of Kubernetes YAML
(rendered chart output, another team's manifests): every document becomes the resource a Helm v4
Chart child would be, `kubernetes:<group>/<version>:<Kind>` under a `kubernetes:helm.sh/v4:Chart`.

The policy config is `--policy-pack-config`, else $POLICY_PACK_CONFIG, else the pack's own
policy-config.json (what `make check` and CI pass); every mistake in it is reported at once with
the file, key path, value and nearest valid name, before anything is judged.

Violations are printed grouped by resource with the policy's fix, then the result of compiling
every Lua source the EnvoyFilters embed (tools/envoy_lua.py). Exit status: 0 when no mandatory
violation, 1 when there is one (the preview would fail) or a Lua source does not compile, 2 when
the check itself could not run (bad config file, pack does not start, program error).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml

from aimesh import settings
from aimesh.builders.charts import RENDERED_FROM
from aimesh.components.charts import RELEASE_TYPE
from tools import envoy_lua, offline
from tools.analyzer import (
    AnalyzerError,
    AnalyzerInfo,
    Diagnostic,
    PolicyConfig,
    PolicyConfigError,
    PolicyPackProcess,
    PreviewResult,
    ProviderResource,
    Resource,
    load_policy_config,
    manifest_version,
    preview,
    reconcile_policy_config,
    urn,
)

ROOT = Path(__file__).resolve().parent.parent
POLICY_PACK = ROOT / "policy-pack"
STACK_TYPE = "pulumi:pulumi:Stack"
CHART_TYPE = "kubernetes:helm.sh/v4:Chart"
K8S_PROVIDER_TYPE = "pulumi:providers:kubernetes"


@dataclass
class Target:
    """The resources to judge, as the engine would hand them to the pack."""

    label: str
    stack: str
    project: str
    resources: list[Resource]
    config: dict[str, str] = field(default_factory=dict)
    secret_keys: list[str] = field(default_factory=list)
    stack_properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # urn -> where it came from
    access_matrix: list[Any] = field(default_factory=list)
    # Said before the verdict: e.g. which required values were stood in for offline.
    notes: list[str] = field(default_factory=list)
    # Policies this target cannot feed (policy -> why): run disabled, said in `notes`.
    not_evaluated: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# A stack of this program, evaluated offline
# --------------------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def _seconds(duration: str) -> float:
    """A Go duration string ("5m", "1h30m") in seconds, as the engine converts custom timeouts."""
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(duration or ""))


def _provider_urn(reference: str) -> str:
    # A provider reference is `<provider urn>::<provider id>`.
    return reference.rsplit("::", 1)[0] if reference else ""


def _default_provider(type_: str, stack: str, project: str) -> ProviderResource:
    """The engine's default provider for a custom resource registered without one."""
    package = type_.split(":", 1)[0]
    provider_type = f"pulumi:providers:{package}"
    return ProviderResource(
        type=provider_type,
        urn=urn(stack, project, provider_type, "default"),
        name="default",
        properties={},
    )


def _from_registered(
    r: offline.Registered, provider: ProviderResource | None, stack_urn: str
) -> Resource:
    options = r.options
    timeouts = options.get("customTimeouts") or {}
    dbr = options.get("deleteBeforeReplace")
    return Resource(
        type=r.type,
        urn=r.urn,
        name=r.urn.rsplit("::", 1)[-1],
        properties=r.inputs,
        # Top-level resources are children of the root stack resource.
        parent=r.parent or stack_urn,
        dependencies=tuple(r.dependencies),
        property_dependencies={k: tuple(v) for k, v in r.property_dependencies.items()},
        provider=provider,
        protect=bool(options.get("protect")),
        ignore_changes=tuple(options.get("ignoreChanges") or ()),
        delete_before_replace=None if dbr is None else bool(dbr),
        additional_secret_outputs=tuple(options.get("additionalSecretOutputs") or ()),
        aliases=tuple(options.get("aliases") or ()),
        custom_timeouts=(
            _seconds(str(timeouts.get("create", ""))),
            _seconds(str(timeouts.get("update", ""))),
            _seconds(str(timeouts.get("delete", ""))),
        ),
    )


RENDERED_OUTPUT = "helm-release-require-rendered-output"


def stack_target(stack: str, invokes: offline.Invokes = offline.no_rendering) -> Target:
    """Evaluate `Pulumi.<stack>.yaml` offline and describe every resource the engine would see:
    the root stack, default providers, explicit providers, components and custom resources.
    `invokes` answers the program's provider functions (offline: Helm renders nothing)."""
    config, secret_keys, missing = offline.stack_inputs(stack)
    evaluation = offline.evaluate(
        config, secret_keys=secret_keys, stack=stack, preview=True, invokes=invokes
    )
    project = offline.PROJECT
    stack_urn = urn(stack, project, STACK_TYPE, f"{project}-{stack}")
    root = Resource(type=STACK_TYPE, urn=stack_urn, name=f"{project}-{stack}", properties={})

    by_urn = {r.urn: r for r in evaluation.resources}
    defaults: dict[str, Resource] = {}
    resources: list[Resource] = [root]
    for r in evaluation.resources:
        provider: ProviderResource | None = None
        if r.custom and not r.type.startswith("pulumi:providers:"):
            ref = _provider_urn(r.provider)
            if ref and ref in by_urn:
                p = by_urn[ref]
                provider = ProviderResource(
                    type=p.type, urn=p.urn, name=p.urn.rsplit("::", 1)[-1], properties=p.inputs
                )
            else:
                provider = _default_provider(r.type, stack, project)
                if provider.urn not in defaults:
                    defaults[provider.urn] = Resource(
                        type=provider.type,
                        urn=provider.urn,
                        name=provider.name,
                        properties={},
                        parent=stack_urn,
                    )
                    resources.append(defaults[provider.urn])
        resources.append(_from_registered(r, provider, stack_urn))

    matrix = evaluation.outputs.get("accessMatrix")
    not_evaluated = not_evaluable_offline(evaluation)
    notes = [stand_in_note(stack, missing)] if missing else []
    notes += [f"note: {name} not evaluated: {why}" for name, why in not_evaluated.items()]
    return Target(
        label=f"stack {stack}",
        stack=stack,
        project=project,
        resources=resources,
        config=config,
        secret_keys=secret_keys,
        # AnalyzeStack sees outputs; for the root stack those are its exports.
        stack_properties={stack_urn: dict(evaluation.outputs)},
        access_matrix=list(matrix) if isinstance(matrix, list) else [],
        notes=notes,
        not_evaluated=not_evaluated,
    )


def not_evaluable_offline(evaluation: offline.Evaluation) -> dict[str, str]:
    """Policies an offline evaluation cannot feed (policy -> why). The Release rule cannot be
    judged when no chart was rendered (offline there is no Helm): it would refuse every Release
    for lack of what only the real engine produces."""
    releases = evaluation.by_type(RELEASE_TYPE)
    rendered = any(
        RENDERED_FROM in ((r.inputs.get("metadata") or {}).get("annotations") or {})
        for r in evaluation.resources
        if r.custom
    )
    if not releases or rendered:
        return {}
    return {
        RENDERED_OUTPUT: f"this offline check has no Helm, so the render-only mirrors of the "
        f"stack's {len(releases)} Helm v3 Release(s) rendered no objects to judge. `pulumi "
        "preview` renders them (each object judged by every policy, and this rule checks each "
        "Release against them); `make e2e` shows it with the real engine."
    }


def stand_in_note(stack: str, missing: Sequence[settings.MissingValue]) -> str:
    """What `pulumi preview` would say about the values the stack lacks, and that this offline
    check stood in for them (the policy verdict does not depend on a secret's value)."""
    lines = [
        f"note: Pulumi.{stack}.yaml lacks {len(missing)} required value(s). `pulumi preview "
        f"--stack {stack}` stops before creating anything until they are set:"
    ]
    lines += [f"  - {m.describe(stack)}" for m in missing]
    lines.append("This offline check used stand-ins for them; the verdict below is otherwise real.")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# A directory of plain Kubernetes YAML
# --------------------------------------------------------------------------------------------


def k8s_type(api_version: str, kind: str) -> str:
    """Pulumi's type token for a Kubernetes object: `v1` objects live in the `core` group."""
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{kind}"


def _documents(path: Path) -> Iterable[tuple[int, Any]]:
    text = path.read_text()
    if path.suffix == ".json":
        yield 0, json.loads(text)
        return
    yield from enumerate(yaml.safe_load_all(text))


def _objects(doc: Any) -> Iterable[dict[str, Any]]:
    """A document's Kubernetes objects; `kind: List` (and `*List`) are expanded to their items."""
    if not isinstance(doc, dict):
        return
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        for item in doc["items"]:
            yield from _objects(item)
        return
    yield doc


def manifests_target(directory: Path, *, stack: str = "manifests") -> Target:
    """Every object in `directory` (recursively: *.yaml, *.yml, *.json) as a child of one Helm v4
    Chart named after the directory, which is how rendered chart objects reach the pack:
    name `<chart>:<namespace>/<name>` (cluster-scoped: `<chart>:<name>`), parent the Chart,
    provider the kubernetes provider, properties the manifest itself."""
    project = offline.PROJECT
    chart_name = re.sub(r"[^A-Za-z0-9_.-]", "-", directory.resolve().name) or "manifests"
    stack_urn = urn(stack, project, STACK_TYPE, f"{project}-{stack}")
    provider = ProviderResource(
        type=K8S_PROVIDER_TYPE,
        urn=urn(stack, project, K8S_PROVIDER_TYPE, "default"),
        name="default",
        properties={},
    )
    chart_urn = urn(stack, project, CHART_TYPE, chart_name)
    resources = [
        Resource(type=STACK_TYPE, urn=stack_urn, name=f"{project}-{stack}", properties={}),
        Resource(
            type=provider.type,
            urn=provider.urn,
            name=provider.name,
            properties={},
            parent=stack_urn,
        ),
        Resource(
            type=CHART_TYPE,
            urn=chart_urn,
            name=chart_name,
            properties={"chart": str(directory)},
            parent=stack_urn,
        ),
    ]
    sources: dict[str, str] = {}
    files = sorted(
        p for p in directory.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml", ".json")
    )
    for path in files:
        for index, doc in _documents(path):
            for obj in _objects(doc):
                api_version, kind = obj.get("apiVersion"), obj.get("kind")
                where = f"{path.relative_to(directory)}#{index}"
                if not isinstance(api_version, str) or not isinstance(kind, str):
                    raise ValueError(f"{where}: not a Kubernetes object (apiVersion/kind missing)")
                raw_metadata = obj.get("metadata")
                metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
                name = str(metadata.get("name") or metadata.get("generateName") or "unnamed")
                namespace = metadata.get("namespace")
                qualified = f"{namespace}/{name}" if namespace else name
                type_ = k8s_type(api_version, kind)
                child_urn = urn(stack, project, type_, f"{chart_name}:{qualified}", CHART_TYPE)
                if child_urn in sources:
                    raise ValueError(
                        f"{where}: duplicate {kind} {qualified} (also in {sources[child_urn]}); "
                        "the engine would refuse two resources with one URN"
                    )
                sources[child_urn] = where
                resources.append(
                    Resource(
                        type=type_,
                        urn=child_urn,
                        name=f"{chart_name}:{qualified}",
                        properties=obj,
                        parent=chart_urn,
                        provider=provider,
                    )
                )
    return Target(
        label=f"manifests {directory}",
        stack=stack,
        project=project,
        resources=resources,
        sources=sources,
    )


# --------------------------------------------------------------------------------------------
# Running the pack and reporting
# --------------------------------------------------------------------------------------------


@dataclass
class Report:
    target: Target
    info: AnalyzerInfo
    result: PreviewResult
    seconds: float
    config_file: Path | None = None

    @property
    def failed(self) -> bool:
        return bool(self.result.mandatory)


def run(
    target: Target,
    *,
    pack_dir: Path = POLICY_PACK,
    policy_config: Mapping[str, PolicyConfig] | None = None,
    python: str | None = None,
    config_problems: Sequence[str] = (),
) -> Report:
    """Start the pack as the CLI does, configure it, and put the target through it. Raises
    PolicyConfigError with `config_problems` (found while reading the file) and every problem
    the pack's config schemas reveal, before anything is analyzed."""
    started = time.perf_counter()
    with PolicyPackProcess(
        pack_dir,
        stack=target.stack,
        project=target.project,
        config=target.config,
        python=python,
    ) as pack:
        client = pack.client
        client.configure_stack(
            stack=target.stack,
            project=target.project,
            organization=pack.organization,
            dry_run=True,
            config=target.config,
            secret_keys=target.secret_keys,
        )
        info = client.get_analyzer_info()
        version = manifest_version(pack.pack_dir)
        if version:
            info = AnalyzerInfo(
                name=info.name,
                version=version,
                display_name=info.display_name,
                description=info.description,
                supports_config=info.supports_config,
                policies=info.policies,
                initial_config=info.initial_config,
            )
        wanted = dict(policy_config or {})
        known = {p.name for p in info.policies}
        for name in set(target.not_evaluated) & known:
            wanted[name] = PolicyConfig("disabled", wanted.get(name, PolicyConfig()).properties)
        try:
            reconciled = reconcile_policy_config(info, wanted)
        except PolicyConfigError as exc:
            raise PolicyConfigError([*config_problems, *exc.problems]) from None
        if config_problems:
            raise PolicyConfigError(config_problems)
        client.configure(reconciled)
        result = preview(client, target.resources, stack_properties=target.stack_properties)
    return Report(target, info, result, time.perf_counter() - started)


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


def _diagnostic_lines(d: Diagnostic, info: AnalyzerInfo) -> list[str]:
    level = "MANDATORY" if d.mandatory else "advisory "
    severity = f" [{d.severity}]" if d.severity else ""
    lines = [f"  {level} {d.policy_name}{severity}"]
    # pulumi_policy prefixes the message with the policy description; show it once.
    message = d.message
    if d.description and message.startswith(d.description):
        message = message[len(d.description) :].lstrip("\n")
    lines.append(_indent(message or d.description, "      "))
    steps = next((p.remediation_steps for p in info.policies if p.name == d.policy_name), "")
    # The pack's messages usually carry their own specific `Fix:`; the generic steps otherwise.
    if steps and "fix:" not in message.lower():
        lines.append(_indent(f"fix: {steps}", "      "))
    return lines


def render(report: Report) -> str:
    """The human report: violations grouped by resource (registration order), then a summary."""
    target, info, result = report.target, report.info, report.result
    config = f", config {report.config_file}" if report.config_file else ", no policy config"
    out = [note + "\n" for note in target.notes]
    out += [
        f"policy pack {info.name}@{info.version} ({len(info.policies)} policies{config}) "
        f"on {target.label}: {len(result.resources)} resources",
        "",
    ]
    by_urn = {r.urn: r for r in result.resources}
    order = [r.urn for r in result.resources if r.urn in result.diagnostics]
    order += [u for u in result.diagnostics if u not in by_urn]
    for resource_urn in order:
        diagnostics = sorted(
            result.diagnostics[resource_urn], key=lambda d: (not d.mandatory, d.policy_name)
        )
        resource = by_urn.get(resource_urn)
        if resource is not None:
            header = f"{resource.type}  {resource.name}"
            source = target.sources.get(resource_urn)
            out.append(header + (f"  ({source})" if source else ""))
            out.append(f"  {resource_urn}")
        else:
            out.append(resource_urn or "stack-wide (AnalyzeStack)")
        for d in diagnostics:
            out.extend(_diagnostic_lines(d, info))
        out.append("")
    for resource_urn, fixes in result.remediations.items():
        for fix in fixes:
            what = fix.diagnostic or "properties rewritten before analysis"
            out.append(f"remediation {fix.policy_name} on {resource_urn}: {what}")
    if result.remediations:
        out.append("")
    mandatory, advisory = result.mandatory, result.advisory
    flagged = len(result.diagnostics)
    verdict = (
        "FAIL: mandatory violations would stop `pulumi preview`"
        if mandatory
        else "PASS: no mandatory violation"
    )
    out.append(
        f"summary: {len(mandatory)} mandatory, {len(advisory)} advisory violation(s) on "
        f"{flagged} of {len(result.resources)} resources; "
        f"{sum(len(f) for f in result.remediations.values())} remediation(s); "
        f"{report.seconds:.2f}s -- {verdict}"
    )
    return "\n".join(out)


MATRIX_COLUMNS = ("model", "role", "caller", "kind", "versions", "methods", "rateLimit", "when")


def render_access_matrix(rows: Sequence[Any], width: int | None = None) -> str:
    """The stack's `accessMatrix` export as a table: who may call which model, how, when.
    Shows the columns of MATRIX_COLUMNS the rows have (all scalar columns if none match).
    Long cells wrap within their column (rich), never cut: `width` is the terminal's
    (COLUMNS, else 160 when the output is not a terminal: CI logs do not wrap)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    dict_rows = [r for r in rows if isinstance(r, Mapping)]
    if not dict_rows:
        return ""
    present = [c for c in MATRIX_COLUMNS if any(c in row for row in dict_rows)]
    if not present:
        present = [
            k
            for k in dict_rows[0]
            if all(not isinstance(row.get(k), Mapping | list) for row in dict_rows)
        ]
    cells = [[_cell(row.get(c)) for c in present] for row in dict_rows]
    columns = (width or shutil.get_terminal_size((160, 24)).columns) - 2  # the indent below
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column, fixed in zip(present, _column_widths(present, cells, columns), strict=True):
        table.add_column(column, overflow="fold", width=fixed)
    for row_cells in cells:
        table.add_row(*row_cells)
    out = io.StringIO()
    Console(file=out, width=columns, color_system=None, highlight=False).print(table)
    body = "\n".join(("  " + line).rstrip() for line in out.getvalue().splitlines())
    return "access matrix:\n" + body.rstrip()


def _column_widths(
    header: Sequence[str], cells: Sequence[Sequence[str]], width: int
) -> list[int | None]:
    """Column widths that keep every word whole: each column gets its longest word (an
    identifier such as a caller is one word), then the room left goes to the columns that can
    still use it, the longest text first, so it wraps only between words. When even the words
    do not fit (a very narrow terminal), None everywhere: rich then folds words to fit, but
    never drops text."""
    columns = [[name, *(row[i] for row in cells)] for i, name in enumerate(header)]
    longest = [max(len(w) for value in column for w in value.split() or [""]) for column in columns]
    natural = [max(len(value) for value in column) for column in columns]
    room = width - 3 * (len(header) - 1) - sum(longest)  # 3: the gap between two columns
    if room < 0:
        return [None] * len(header)
    widths = list(longest)
    for index in sorted(range(len(header)), key=natural.__getitem__):
        share = room // sum(1 for i in range(len(header)) if natural[i] >= natural[index])
        grow = min(natural[index] - widths[index], share)
        widths[index] += grow
        room -= grow
    return list(widths)


def _cell(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def as_json(report: Report) -> dict[str, Any]:
    result = report.result
    return {
        "pack": {"name": report.info.name, "version": report.info.version},
        "config": str(report.config_file) if report.config_file else None,
        "target": report.target.label,
        "notes": list(report.target.notes),
        "resources": len(result.resources),
        "passed": not report.failed,
        "violations": [
            {
                "urn": resource_urn,
                "source": report.target.sources.get(resource_urn, ""),
                "policy": d.policy_name,
                "level": "mandatory" if d.mandatory else d.enforcement_level,
                "severity": d.severity,
                "message": d.message,
            }
            for resource_urn, ds in result.diagnostics.items()
            for d in ds
        ],
        "remediations": [
            {"urn": u, "policy": f.policy_name, "diagnostic": f.diagnostic}
            for u, fixes in result.remediations.items()
            for f in fixes
        ],
    }


CONFIG_ENV = "POLICY_PACK_CONFIG"
DEFAULT_CONFIG_NAME = "policy-config.json"


def policy_config_file(args: argparse.Namespace) -> Path | None:
    """The policy config to judge with: the option, else $POLICY_PACK_CONFIG, else the pack's
    own policy-config.json (what `make check` and CI pass), shown relative to the working
    directory when it is below it."""
    chosen: Path | None = args.policy_pack_config
    if chosen is None and os.environ.get(CONFIG_ENV):
        chosen = Path(os.environ[CONFIG_ENV])
    if chosen is None:
        beside = args.policy_pack / DEFAULT_CONFIG_NAME
        chosen = beside if beside.is_file() else None
    if chosen is not None and chosen.is_absolute() and chosen.is_relative_to(Path.cwd()):
        chosen = chosen.relative_to(Path.cwd())
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.check", description=__doc__.split("\n")[0]
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--stack", help="evaluate Pulumi.<STACK>.yaml offline and check it")
    what.add_argument("--manifests", type=Path, help="check a directory of Kubernetes YAML")
    config_choice = parser.add_mutually_exclusive_group()
    config_choice.add_argument(
        "--policy-pack-config",
        type=Path,
        help="policy config JSON, the file `pulumi preview --policy-pack-config` takes "
        f"(default: ${CONFIG_ENV}, else {DEFAULT_CONFIG_NAME} in the policy pack directory, "
        "the file the Makefile and CI pass)",
    )
    config_choice.add_argument(
        "--no-policy-pack-config",
        action="store_true",
        help="judge with the pack's own defaults, as a preview without --policy-pack-config",
    )
    parser.add_argument(
        "--policy-pack", type=Path, default=POLICY_PACK, help="policy pack directory"
    )
    parser.add_argument(
        "--python", help="interpreter for the pack when its own virtualenv does not exist"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    args = parser.parse_args(argv)
    config_file = None if args.no_policy_pack_config else policy_config_file(args)

    problems: list[str] = []
    try:
        policy_config = load_policy_config(config_file, problems) if config_file else None
        if args.stack:
            target = stack_target(args.stack)
        else:
            if not args.manifests.is_dir():
                raise ValueError(f"{args.manifests} is not a directory")
            target = manifests_target(args.manifests)
        report = run(
            target,
            pack_dir=args.policy_pack,
            policy_config=policy_config,
            python=args.python,
            config_problems=problems,
        )
        report.config_file = config_file
    except PolicyConfigError as exc:
        located = exc if exc.where or config_file is None else exc.located(str(config_file))
        print(f"check could not run: invalid policy pack config\n{located}", file=sys.stderr)
        return 2
    except (AnalyzerError, ValueError, OSError, yaml.YAMLError, pulumi.RunError) as exc:
        # A config error (pulumi.RunError from settings.load) is already one line per
        # problem with its file and line: no traceback.
        print(f"check could not run: {exc}", file=sys.stderr)
        return 2

    # Lua sources are strings to the pack: compile them here, with the LuaJIT Envoy embeds.
    sources = envoy_lua.lua_sources(target.resources)
    try:
        lua_errors = envoy_lua.compile_errors(sources)
        lua_line = f"lua: {len(sources)} EnvoyFilter source(s) compiled with LuaJIT"
    except ImportError:
        lua_errors, lua_line = [], "lua: not compiled (lupa with LuaJIT is not installed)"

    if args.json:
        data = as_json(report)
        data["lua"] = {"sources": len(sources), "errors": lua_errors}
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(render(report))
        print("\n".join([lua_line, *(f"  {e}" for e in lua_errors)]))
        ended = ended_exemptions(args.policy_pack_config)
        if ended:
            print()
            print("\n".join(ended))
        matrix = render_access_matrix(target.access_matrix)
        if matrix:
            print()
            print(matrix)
    return 1 if report.failed or lua_errors else 0


def ended_exemptions(path: Path | None) -> list[str]:
    """Exemptions of the config file that ended (they exempt nothing any more) or are invalid:
    shown even when nothing they covered fails, so that stale entries get cleaned up."""
    if path is None:
        return []
    import datetime

    from tools.audit import exemption_state, exemptions

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    today = datetime.datetime.now(datetime.UTC).date()
    out = []
    for entry in exemptions(data if isinstance(data, Mapping) else {}):
        what = f"{entry['policy']}: {entry['key']} {entry['what']!r}"
        state = exemption_state(entry, today, today)
        if state == "INVALID":
            out.append(f"exemption {what}: no reason or expires date: it exempts nothing")
        elif state == "ENDED":
            out.append(
                f"exemption {what} ({entry['reason']}) ended on {entry['expires']}: it exempts "
                "nothing; renew or remove it"
            )
    return out


if __name__ == "__main__":
    sys.exit(main())
