"""The model access matrix of a stack: who may call which model, how, and when.

    python -m tools.access_matrix [--stack dev] [--format markdown|mermaid] [--output FILE]
    python -m tools.access_matrix --stack dev --effective
    python -m tools.access_matrix --all-stacks --output docs/access-matrix.md   (make docs)

`--effective` (Markdown, one stack) adds, per model, what the stack's objects actually let
through next to what is declared: the program is evaluated offline (tools.offline, as `make
check` does) and its AuthorizationPolicies are evaluated by the policy pack's own evaluator
(policy-pack/aimesh_policies/effective), over the same identity and route classes the pack's
`istio-model-access-within-intent` judges.

`markdown` (the default) is a table per model; `mermaid` is the same grants as a Mermaid
flowchart (callers and integrations -> models), which GitHub renders; `--all-stacks` writes one
document with the graph and the tables of every `Pulumi.<stack>.yaml`.

Computed by the same builders that create the AuthorizationPolicies (aimesh/builders/access.py
and aimesh/builders/secure_model/), from the stack's config (Pulumi.yaml defaults +
Pulumi.<stack>.yaml), so the report and the policies cannot disagree. No Pulumi engine or
cluster is needed.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from aimesh import settings as settings_module
from aimesh.builders import access, secure_model
from aimesh.builders.gateway import reference
from aimesh.builders.secure_model.egress import egress_hosts
from aimesh.builders.secure_model.serving import service_host
from aimesh.config_source import ConfigSource
from aimesh.settings import Settings
from tools import offline


def load(stack: str, root: Path = offline.ROOT) -> Settings:
    """The validated settings of `stack` (project defaults overlaid with the stack file),
    checked as the program checks them: errors name the file and line of each setting."""
    values: dict[str, Any] = dict(offline.project_defaults(root / "Pulumi.yaml"))
    stack_file = root / f"Pulumi.{stack}.yaml"
    config: Mapping[str, Any] = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}
    values.update(config)
    secret = [k for k, v in config.items() if isinstance(v, dict) and set(v) == {"secure"}]
    source = ConfigSource.for_stack(root, stack, secret)
    try:
        return settings_module.parse_stack(_placeholders(values), source)
    except settings_module.MissingValuesError as exc:
        # Values only the stack's owner sets (secrets, its CA) never change who may call what.
        filled = offline.stand_ins_for(values, exc.missing)
        return settings_module.parse_stack(_placeholders(filled), source)


def _placeholders(value: Any) -> Any:
    """`secure:` values (only the Pulumi CLI can decrypt them) never matter to access: they
    become a placeholder string, as under `tools.offline`."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return offline.SECRET_PLACEHOLDER
        return {k: _placeholders(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_placeholders(v) for v in value]
    return value


def _cell(values: list[str]) -> str:
    return "<br>".join(f"`{v}`" for v in values) if values else "-"


DENIED_BY_DEFAULT = [
    "Everything not listed is denied: every model namespace has a deny-all policy, and the",
    "operator endpoints (model repository load/unload/index, logging and trace settings,",
    "shared memory, statistics, `/metrics`) are denied to every caller without the `admin`",
    "role.",
]


def _tables(settings: Settings, heading: str) -> list[str]:
    """One section per model (`heading` is its Markdown level): endpoint, versions, egress,
    and the table of grants."""
    if not settings.models:
        return ["No models are configured in this stack.", ""]
    gateway = reference(settings)
    lines: list[str] = []
    for model in settings.models:
        objects = secure_model.build(settings, model, gateway)
        versions = "stable" + (
            f" + canary ({model.canary.traffic_percent}% of traffic)" if model.canary else ""
        )
        limit = (
            f"{model.rate_limit.requests}/{model.rate_limit.unit} per pod"
            if model.rate_limit
            else "none"
        )
        egress = ", ".join(f"`{h.host}:{h.port}`" for h in egress_hosts(model))
        lines += [
            f"{heading} `{model.name}` (namespace `{model.ns}`, protocol {model.protocol})",
            "",
            f"- endpoint: `https://{model.name}.{settings.gateway_domain}` (gateway), "
            f"`http://{service_host(model)}` (mesh)",
            f"- versions: {versions}; model-wide rate limit: {limit}",
            f"- response masking: {'on' if settings.masking_enabled(model) else 'off'}",
            f"- egress: {egress or 'none'}",
            "",
            "| caller | identity | role | operations | when | rate limit | policy |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in objects.rows:
            d = row.to_dict()
            identity = [d["principal"], *d["requestPrincipals"]]
            lines.append(
                "| "
                + " | ".join(
                    [
                        f"`{d['caller']}`",
                        _cell(identity),
                        d["role"],
                        "<br>".join(
                            f"**{' '.join(op.methods)}** {_cell(list(op.paths))}"
                            for op in row.operations
                        ),
                        d["when"],
                        d["rateLimit"] or "-",
                        f"`{d['policy']}`",
                    ]
                )
                + " |"
            )
        if not objects.rows:
            lines.append("| (nobody) | | | | | | |")
        mode = model.authorization
        if mode.audit and mode.until is not None:
            lines += [
                "",
                f"**Audit mode until {mode.until.isoformat()}** ({mode.reason}): the rows above "
                "run in Istio dry-run (decided and logged, not enforced); meanwhile any caller "
                f"with an mTLS identity of `{settings.trust_domain}` may call every path but the "
                f"operator paths (`{access.audit_policy_name(model)}`).",
            ]
        lines += [
            "",
            f"Denied to all but admins: {_cell(access.admin_paths(model))}",
            "",
        ]
    return lines


def render(settings: Settings, stack: str) -> str:
    """The Markdown report of one stack."""
    lines = [
        f"# Model access matrix (stack `{stack}`)",
        "",
        "Generated by `python -m tools.access_matrix --stack "
        f"{stack}` from the same builders that create the policies; do not edit by hand.",
        "",
        *DENIED_BY_DEFAULT,
        "",
    ]
    return "\n".join([*lines, *_tables(settings, "##")])


def render_document(stacks: Sequence[str], root: Path = offline.ROOT) -> str:
    """docs/access-matrix.md: the graph and the tables of every stack (`make docs`)."""
    lines = [
        "# Model access matrix",
        "",
        "Generated by `make docs` (`python -m tools.access_matrix --all-stacks`) from the same",
        "builders that create the policies; do not edit by hand. One section per stack file.",
        "",
        *DENIED_BY_DEFAULT,
        "",
        "In the graphs, callers and external integrations (through the ingress gateway) are on",
        "the left and model namespaces on the right; each arrow is one grant, labelled with its",
        "role, rate limit and batch window. Thick: `admin`; dotted: open only inside a window.",
        "",
    ]
    for stack in stacks:
        settings = load(stack, root)
        lines += [
            f"## Stack `{stack}`",
            "",
            "```mermaid",
            mermaid(settings).rstrip("\n"),
            "```",
            "",
            *_tables(settings, "###"),
        ]
    return "\n".join(lines)


# ---- the graph ----------------------------------------------------------------------------------


def _node_id(prefix: str, text: str) -> str:
    """A Mermaid node id: letters, digits and `_` only (ids never show; labels do)."""
    return prefix + "_" + re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def _label(text: str) -> str:
    """A quoted Mermaid label, with the characters Mermaid would read as syntax as entities."""
    for char, entity in (('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, entity)
    return f'"{text}"'


def _grant(row: access.AccessRow) -> str:
    text: str = row.role
    if row.rate_limit:
        text += f" · {row.rate_limit.requests}/{row.rate_limit.unit}"
    for window in row.windows:
        text += f" · {window.open} → {window.close} {window.time_zone}"
    if row.kind == "integration":
        text = f"{row.caller.removeprefix('integration:')}: {text}"
    return text


def mermaid(settings: Settings) -> str:
    """Who may call which model, as a Mermaid flowchart: in-mesh callers and external
    integrations (through the ingress gateway) on the left, one box per model namespace on the
    right, one arrow per grant labelled with its role, rate limit and windows. Admin grants
    are thick, grants open only inside a window dotted."""
    lines = ["flowchart LR"]
    if not settings.models:
        lines.append(f"  nothing[{_label('no models in this stack')}]")
        return "\n".join(lines) + "\n"
    gateway = reference(settings)
    grants = [(model, access.rows(settings, model, gateway)) for model in settings.models]
    callers = sorted({r.caller for _, rows in grants for r in rows if r.kind == "workload"})
    integrations = sorted({r.caller for _, rows in grants for r in rows if r.kind != "workload"})
    if callers:
        lines.append(f"  subgraph mesh[{_label('in-mesh callers: mTLS identity')}]")
        lines += [f"    {_node_id('w', c)}[{_label(c)}]" for c in callers]
        lines.append("  end")
    if integrations:
        lines.append(f"  subgraph outside[{_label('external integrations: JWT')}]")
        lines += [
            f"    {_node_id('i', c)}([{_label(c.removeprefix('integration:'))}])"
            for c in integrations
        ]
        lines.append("  end")
        where = f"ingress gateway {gateway.namespace}/{gateway.name}"
        lines.append(f"  gateway{{{{{_label(where)}}}}}")
        lines += [f"  {_node_id('i', c)} -->|{_label('JWT')}| gateway" for c in integrations]
    for model, rows in grants:
        target = _node_id("m", model.name)
        versions = "stable" + (f" + canary {model.canary.traffic_percent}%" if model.canary else "")
        box = _label(f"namespace {model.ns}: deny by default")
        lines += [
            f"  subgraph {_node_id('ns', model.ns)}[{box}]",
            f"    {target}[({_label(f'{model.name}: {versions}')})]",
            "  end",
        ]
        for row in rows:
            source = _node_id("w", row.caller) if row.kind == "workload" else "gateway"
            arrow = "-.->" if row.windows else ("==>" if row.role == "admin" else "-->")
            lines.append(f"  {source} {arrow}|{_label(_grant(row))}| {target}")
        if not rows:
            nobody = _node_id("nobody", model.name)
            lines.append(f"  {nobody}[{_label('nobody may call it')}] ~~~ {target}")
    return "\n".join(lines) + "\n"


def render_effective(stack: str, root: Path = offline.ROOT) -> str:
    """Declared next to effective access of every model of `stack` (Markdown)."""
    # The pack is a directory of its own (it never imports the program; the reverse is fine).
    sys.path.insert(0, str(root / "policy-pack"))
    from aimesh_policies import to_objects
    from aimesh_policies.effective.access import explain
    from aimesh_policies.framework import Context

    evaluation = offline.evaluate_stack(stack, root=root)
    objs = [o for r in evaluation.resources for o in to_objects(r.type, r.inputs, r.urn, r.name)]
    lines = [
        "## Effective access (the stack's objects, evaluated)",
        "",
        "Every identity and route that is declared above or that the AuthorizationPolicies in "
        "force let through, side by side. `window only`: a batch grant, closed in the manifest "
        "and opened by its CronJobs. `audit mode`: let in by the model's current audit-mode "
        "ALLOW for mesh peers (models[].authorization). A row whose effective verdict is "
        "wider than the declared one is a violation of `istio-model-access-within-intent`.",
        "",
    ]
    for model, cells in explain(objs, Context()).items():
        lines += [
            f"### `{model}`",
            "",
            "| identity | route | declared | effective | granted by |",
            "| --- | --- | --- | --- | --- |",
        ]
        for cell in cells:
            wider = cell.effective == "allowed" and cell.declared != "allowed"
            effective = f"**{cell.effective}**" if wider else cell.effective
            lines.append(
                f"| {cell.identity} | `{cell.route}` | {cell.declared} | {effective} | "
                f"{cell.by or '-'} |"
            )
        if not cells:
            lines.append("| (nobody) | | | | |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--stack", default="dev")
    which.add_argument(
        "--all-stacks",
        action="store_true",
        help="every Pulumi.<stack>.yaml: graph and tables (docs/access-matrix.md)",
    )
    parser.add_argument("--format", choices=("markdown", "mermaid"), default="markdown")
    parser.add_argument("--output", type=Path, help="write to this file instead of stdout")
    parser.add_argument(
        "--effective",
        action="store_true",
        help="also print what the stack's objects let through, next to what is declared",
    )
    args = parser.parse_args(argv)
    if args.effective and (args.all_stacks or args.format != "markdown"):
        parser.error("--effective goes with one --stack in Markdown")
    try:
        if args.all_stacks:
            report = render_document(offline.stacks())
        elif args.format == "mermaid":
            report = mermaid(load(args.stack))
        else:
            report = render(load(args.stack), args.stack)
        if args.effective:
            report += "\n" + render_effective(args.stack)
    except (settings_module.ConfigError, FileNotFoundError, yaml.YAMLError) as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.output:
        args.output.write_text(report)
    else:
        sys.stdout.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
