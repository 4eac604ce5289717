"""`make audit`: is what runs still what was approved? One report per stack, four checks.

    python -m tools.audit --stack STACK [--offline] [--drift refresh|program]
                          [--kubeconfig FILE] [--context NAME] [--policy-pack-config FILE]
                          [--within DAYS] [--report DIR]
    python -m tools.audit --stack STACK --approve      # record the current access matrix

1. **Drift** between the cluster and the stack, each drifted object named. `--drift refresh`
   (default): `pulumi refresh --preview-only --json` compares the stack's state with the live
   objects (the CLI and the provider only, no program run, nothing written). `--drift program`:
   `pulumi preview --refresh --expect-no-changes --json`, the live objects against what the
   program would deploy now (needs the program's language host too).
2. **The policy pack on what is live**: the security-relevant objects of the cluster, read with
   `kubectl` (every namespace; never Secrets), judged by the pack over the analyzer protocol
   exactly as `make check` does. This includes objects created behind Pulumi's back, which no
   state-based check (`pulumi policy analyze`) sees.
3. **The access matrix** (who may call which model, how, when) against the last approved one
   committed in `approved/access-matrix-<stack>.json`, as a table of differences. The matrix is
   the stack's `accessMatrix` output (what was deployed) when the CLI can read it, else the one
   the stack config builds.
4. **Ends**: models in audit mode and policy-pack exemptions that end within `--within` days
   (default 7) or have ended.

Exit status: 0 everything checked and nothing needs attention; 1 something needs attention; 2 a
check could not run (said plainly, never passed silently) or bad usage. `--offline` runs only
checks 3 and 4 (no CLI, no cluster) and does not count 1 and 2 as missing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aimesh.builders import secure_model
from aimesh.builders.gateway import reference
from aimesh.settings import ConfigError, Settings
from tools import access_matrix, offline

ROOT = offline.ROOT
APPROVED = ROOT / "approved"
DEFAULT_POLICY_CONFIG = ROOT / "policy-pack" / "policy-config.json"
# What decides "who may call which model, how, when": the fields an approval covers.
MATRIX_FIELDS = (
    "kind",
    "role",
    "principal",
    "requestPrincipals",
    "methods",
    "paths",
    "when",
    "versions",
    "rateLimit",
    "enforcement",
)
# Everything the policy pack judges that a cluster can hold (plural.group, as kubectl takes
# them). Secrets are never read.
LIVE_RESOURCES = (
    "namespaces",
    "services",
    "serviceaccounts",
    "deployments.apps",
    "statefulsets.apps",
    "daemonsets.apps",
    "jobs.batch",
    "cronjobs.batch",
    "networkpolicies.networking.k8s.io",
    "ingresses.networking.k8s.io",
    "roles.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "clusterroles.rbac.authorization.k8s.io",
    "clusterrolebindings.rbac.authorization.k8s.io",
    "mutatingwebhookconfigurations.admissionregistration.k8s.io",
    "validatingwebhookconfigurations.admissionregistration.k8s.io",
    "authorizationpolicies.security.istio.io",
    "peerauthentications.security.istio.io",
    "requestauthentications.security.istio.io",
    "destinationrules.networking.istio.io",
    "envoyfilters.networking.istio.io",
    "gateways.networking.istio.io",
    "serviceentries.networking.istio.io",
    "sidecars.networking.istio.io",
    "virtualservices.networking.istio.io",
    "wasmplugins.extensions.istio.io",
    "telemetries.telemetry.istio.io",
    "inferenceservices.serving.kserve.io",
    "llminferenceservices.serving.kserve.io",
    "servingruntimes.serving.kserve.io",
    "clusterservingruntimes.serving.kserve.io",
    "certificates.cert-manager.io",
    "issuers.cert-manager.io",
    "clusterissuers.cert-manager.io",
    "gateways.gateway.networking.k8s.io",
    "httproutes.gateway.networking.k8s.io",
    "grpcroutes.gateway.networking.k8s.io",
)
# Istio's mesh config lives in a ConfigMap (the pack derives MeshConfig from it).
MESH_CONFIGMAP = ("istio-system", "istio")
OK, ATTENTION, NOT_CHECKED, SKIPPED = "ok", "needs attention", "not checked", "skipped"
NO_CLUSTER = "the stack has no cluster"


@dataclass
class Section:
    """One check's outcome: a status, Markdown lines for people, items for machines."""

    title: str
    status: str = OK
    lines: list[str] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)

    def not_checked(self, why: str) -> Section:
        self.status = NOT_CHECKED
        self.lines.append(f"Not checked: {why}")
        return self


def _run(
    command: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command),
        capture_output=True,
        text=True,
        check=False,
        env=dict(env) if env else None,
        cwd=cwd,
    )


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table (cells escaped for `|`)."""

    def cell(value: str) -> str:
        return value.replace("|", "\\|").replace("\n", " ") or "-"

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out


# --------------------------------------------------------------------------------------------
# 1. Drift
# --------------------------------------------------------------------------------------------


def drifted(digest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every object a preview digest (`pulumi refresh --preview-only --json` or `pulumi preview
    --json`) would change, named: operation, URN, Kubernetes kind/namespace/name where the
    state has them, and the properties that differ."""
    out: dict[str, dict[str, Any]] = {}
    for step in digest.get("steps") or []:
        if not isinstance(step, Mapping):
            continue
        op = str(step.get("op") or "")
        urn = str(step.get("urn") or "")
        if op in ("same", "read", "refresh", "") or not urn:
            continue
        state = step.get("newState") or step.get("oldState") or {}
        outputs = (
            (state.get("outputs") or state.get("inputs") or {})
            if isinstance(state, Mapping)
            else {}
        )
        metadata = outputs.get("metadata") if isinstance(outputs, Mapping) else None
        metadata = metadata if isinstance(metadata, Mapping) else {}
        kind = outputs.get("kind") if isinstance(outputs, Mapping) else None
        namespace, name = metadata.get("namespace"), metadata.get("name")
        detail = step.get("detailedDiff") or {}
        properties = sorted(detail) if isinstance(detail, Mapping) else []
        properties = properties or [str(p) for p in step.get("diffReasons") or []]
        entry = out.setdefault(
            urn,
            {
                "urn": urn,
                "op": op,
                "type": urn.rsplit("::", 2)[-2].rsplit("$", 1)[-1] if urn.count("::") >= 3 else "",
                "name": urn.rsplit("::", 1)[-1],
                "object": (
                    f"{kind} {namespace + '/' if namespace else ''}{name}" if kind and name else ""
                ),
                "properties": [],
            },
        )
        entry["properties"] = sorted({*entry["properties"], *properties})
    return list(out.values())


def check_drift(
    stack: str,
    mode: str,
    *,
    pulumi: str | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Section:
    """Drift of `stack`, with the `pulumi` on PATH (or the one given), run in `cwd` (the
    project) with `env` (backend, passphrase)."""
    section = Section("Drift: the cluster against the stack")
    pulumi = pulumi or shutil.which("pulumi")
    if pulumi is None:
        return section.not_checked(
            "the Pulumi CLI is not on PATH (https://www.pulumi.com/docs/install/); drift needs "
            "the stack's state and the cluster"
        )
    if mode == "program":
        command = [
            pulumi,
            "preview",
            "--stack",
            stack,
            "--refresh",
            "--expect-no-changes",
            "--json",
        ]
        what = "the live objects against what the program deploys now"
    else:
        command = [
            pulumi,
            "refresh",
            "--preview-only",
            "--stack",
            stack,
            "--json",
            "--non-interactive",
        ]
        what = "the stack's state against the live objects (no program run, nothing written)"
    proc = _run(command, env=env, cwd=cwd)
    try:
        digest = json.loads(proc.stdout) if proc.stdout.strip() else None
    except json.JSONDecodeError:
        digest = None
    if not isinstance(digest, Mapping) or "steps" not in digest:
        shown = " ".join(command[1:])
        return section.not_checked(
            f"`pulumi {shown}` exited {proc.returncode}: {_tail(proc.stderr or proc.stdout)}"
        )
    found = drifted(digest)
    section.items = found
    section.lines.append(f"`pulumi {' '.join(command[1:])}`: {what}.")
    if not found:
        section.lines.append("No drift: every object is as the stack left it.")
        return section
    section.status = ATTENTION
    section.lines.append(
        f"{len(found)} object(s) differ. Restore them with `pulumi up --refresh -s {stack}` "
        "(or adopt the change in the program):"
    )
    section.lines += table(
        ("operation", "object", "resource", "properties"),
        [(f["op"], f["object"] or f["type"], f["name"], ", ".join(f["properties"])) for f in found],
    )
    return section


# --------------------------------------------------------------------------------------------
# 2. The policy pack on what is live
# --------------------------------------------------------------------------------------------


def clean(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A live object as a manifest: no status, no server-set metadata, no last-applied copy."""
    manifest = {k: v for k, v in obj.items() if k != "status"}
    metadata = dict(manifest.get("metadata") or {})
    for key in ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation"):
        metadata.pop(key, None)
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    manifest["metadata"] = metadata
    return manifest


def _kubectl(kubectl: str, kubeconfig: str | None, context: str | None) -> list[str]:
    command = [kubectl]
    if kubeconfig:
        command += ["--kubeconfig", kubeconfig]
    if context:
        command += ["--context", context]
    return command


def live_objects(kubectl: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The live objects the pack judges, and the resource types the cluster does not serve."""
    served = _run([*kubectl, "api-resources", "-o", "name"])
    if served.returncode != 0:
        raise RuntimeError(f"kubectl api-resources: {_tail(served.stderr)}")
    available = set(served.stdout.split())
    wanted = [r for r in LIVE_RESOURCES if r in available or r.split(".", 1)[0] in available]
    missing = [r for r in LIVE_RESOURCES if r not in wanted]
    listed = _run([*kubectl, "get", ",".join(wanted), "--all-namespaces", "-o", "json"])
    if listed.returncode != 0:
        raise RuntimeError(f"kubectl get: {_tail(listed.stderr)}")
    items = [clean(i) for i in json.loads(listed.stdout).get("items", []) if isinstance(i, dict)]
    namespace, name = MESH_CONFIGMAP
    mesh = _run(
        [*kubectl, "get", "configmap", name, "-n", namespace, "-o", "json", "--ignore-not-found"]
    )
    if mesh.returncode == 0 and mesh.stdout.strip():
        items.append(clean(json.loads(mesh.stdout)))
    return items, missing


def check_live(
    kubectl_command: list[str] | None, policy_config: Path | None, reason: str = ""
) -> Section:
    section = Section("The policy pack on what is live")
    if kubectl_command is None:
        if reason.startswith(NO_CLUSTER):
            section.status = SKIPPED
            section.lines.append(f"Skipped: {reason}.")
            return section
        return section.not_checked(reason)
    try:
        objects, missing = live_objects(kubectl_command)
    except (RuntimeError, OSError, json.JSONDecodeError) as exc:
        return section.not_checked(f"cannot read the cluster: {exc}")
    return judge(section, objects, missing, policy_config)


def judge(
    section: Section, objects: list[dict[str, Any]], missing: list[str], policy_config: Path | None
) -> Section:
    """Put `objects` (live, cleaned) through the policy pack, as `make check --manifests`."""
    from tools.analyzer import AnalyzerError, load_policy_config
    from tools.check import manifests_target, run

    with tempfile.TemporaryDirectory(prefix="aimesh-live-") as directory:
        folder = Path(directory) / "live"
        folder.mkdir()
        for index, obj in enumerate(objects):
            (folder / f"{index:06d}.json").write_text(json.dumps(obj))
        try:
            config = load_policy_config(policy_config) if policy_config else None
            report = run(manifests_target(folder, stack="live"), policy_config=config)
        except (AnalyzerError, ValueError, OSError) as exc:
            return section.not_checked(f"the policy pack did not run: {exc}")
    result = report.result
    section.lines.append(
        f"{len(objects)} live objects judged by {report.info.name}@{report.info.version}"
        + (f" (config {policy_config})" if policy_config else "")
        + (f"; not served by this cluster: {', '.join(missing)}" if missing else "")
        + "."
    )
    by_urn = {r.urn: r for r in result.resources}
    for urn, diagnostics in result.diagnostics.items():
        resource = by_urn.get(urn)
        what = resource.name.split(":", 1)[-1] if resource else urn or "stack"
        kind = resource.type.rsplit(":", 1)[-1] if resource else ""
        for d in diagnostics:
            section.items.append(
                {
                    "object": f"{kind} {what}".strip(),
                    "policy": d.policy_name,
                    "mandatory": d.mandatory,
                    "message": d.message,
                }
            )
    mandatory = [i for i in section.items if i["mandatory"]]
    if mandatory:
        section.status = ATTENTION
    section.lines.append(
        f"{len(mandatory)} mandatory, {len(section.items) - len(mandatory)} advisory violation(s)."
    )
    if section.items:
        section.lines += table(
            ("level", "policy", "object", "finding"),
            [
                (
                    "MANDATORY" if i["mandatory"] else "advisory",
                    i["policy"],
                    i["object"],
                    i["message"].splitlines()[-1][:300],
                )
                for i in sorted(section.items, key=lambda i: (not i["mandatory"], i["policy"]))
            ],
        )
    return section


# --------------------------------------------------------------------------------------------
# 3. The access matrix against the approved one
# --------------------------------------------------------------------------------------------


def config_matrix(settings: Settings) -> list[dict[str, Any]]:
    """The access matrix the stack config builds (the builders of the policies)."""
    gateway = reference(settings)
    return [
        row
        for model in settings.models
        for row in secure_model.build(settings, model, gateway).matrix()
    ]


def approvable(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows as an approval records them: model, caller and MATRIX_FIELDS, sorted."""
    out = [
        {"model": r.get("model"), "caller": r.get("caller"), **{k: r.get(k) for k in MATRIX_FIELDS}}
        for r in rows
        if isinstance(r, Mapping)
    ]
    return sorted(out, key=lambda r: (str(r["model"]), str(r["caller"])))


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def _grant(row: Mapping[str, Any]) -> str:
    return "; ".join(_show(row.get(k)) for k in ("role", "when", "enforcement"))


def matrix_changes(
    approved: Sequence[Mapping[str, Any]], now: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str, str, str, str, str]]:
    """(change, model, caller, field, approved, now) for every difference."""
    before = {(str(r.get("model")), str(r.get("caller"))): r for r in approved}
    after = {(str(r.get("model")), str(r.get("caller"))): r for r in now}
    changes: list[tuple[str, str, str, str, str, str]] = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        model, caller = key
        if old is None and new is not None:
            changes.append(("added", model, caller, "grant", "-", _grant(new)))
        elif new is None and old is not None:
            changes.append(("removed", model, caller, "grant", _grant(old), "-"))
        elif old is not None and new is not None:
            for name in MATRIX_FIELDS:
                if old.get(name) != new.get(name):
                    changes.append(
                        ("changed", model, caller, name, _show(old.get(name)), _show(new.get(name)))
                    )
    return changes


def deployed_matrix(stack: str) -> list[dict[str, Any]] | None:
    """The stack's `accessMatrix` output (what the last `pulumi up` deployed), if readable."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        return None
    proc = _run([pulumi, "stack", "output", "accessMatrix", "--stack", stack, "--json"])
    if proc.returncode != 0:
        return None
    try:
        value = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


def check_matrix(
    stack: str, settings: Settings, approved_file: Path, *, offline_only: bool
) -> Section:
    section = Section("The access matrix against the approved one")
    deployed = None if offline_only else deployed_matrix(stack)
    source = (
        "the stack's accessMatrix output (deployed)" if deployed is not None else "the stack config"
    )
    now = approvable(deployed if deployed is not None else config_matrix(settings))
    if not approved_file.is_file():
        section.status = ATTENTION
        shown = (
            approved_file.relative_to(ROOT) if approved_file.is_relative_to(ROOT) else approved_file
        )
        section.lines.append(
            f"No approved access matrix ({shown}): "
            f"review the {len(now)} rows of `python -m tools.access_matrix --stack {stack}` and "
            f"record them with `python -m tools.audit --stack {stack} --approve`, then commit."
        )
        return section
    try:
        approved = json.loads(approved_file.read_text())
    except json.JSONDecodeError as exc:
        return section.not_checked(f"{approved_file}: not JSON: {exc}")
    if not isinstance(approved, list):
        return section.not_checked(f"{approved_file}: not a list of matrix rows")
    changes = matrix_changes(approvable(approved), now)
    section.items = [
        dict(zip(("change", "model", "caller", "field", "approved", "now"), c, strict=True))
        for c in changes
    ]
    section.lines.append(f"{len(now)} rows from {source} against {approved_file.name}.")
    if not changes:
        section.lines.append("Identical to the approved matrix.")
        return section
    section.status = ATTENTION
    section.lines.append(
        f"{len(changes)} difference(s). If they are intended, approve them in a pull request: "
        f"`python -m tools.audit --stack {stack} --approve`."
    )
    section.lines += table(("change", "model", "caller", "field", "approved", "now"), changes)
    return section


# --------------------------------------------------------------------------------------------
# 4. What ends soon
# --------------------------------------------------------------------------------------------


def exemptions(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every exemption of a policy-pack config file: policy, key, what, reason, expires."""
    out = []
    for policy, value in config.items():
        if not isinstance(value, Mapping):
            continue
        for key in ("exemptNamespaces", "exemptWorkloads", "exemptPorts"):
            entries = value.get(key)
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, Mapping):
                    what = entry.get("port") if key == "exemptPorts" else entry.get("name")
                    out.append(
                        {
                            "policy": policy,
                            "key": key,
                            "what": str(what),
                            "reason": str(entry.get("reason") or ""),
                            "expires": str(entry.get("expires") or ""),
                        }
                    )
                else:
                    out.append(
                        {
                            "policy": policy,
                            "key": key,
                            "what": str(entry),
                            "reason": "",
                            "expires": "",
                        }
                    )
    return out


def _day(text: str) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        return None


def exemption_state(
    entry: Mapping[str, str], today: datetime.date, horizon: datetime.date
) -> str | None:
    """INVALID (no reason or date: it exempts nothing), ENDED, "ends soon" (by `horizon`), or
    None for an exemption that holds past the horizon."""
    day = _day(entry["expires"])
    if day is None or not entry["reason"]:
        return "INVALID"
    if day < today:
        return "ENDED"
    return "ends soon" if day <= horizon else None


def check_ends(
    settings: Settings, policy_config: Path | None, within: int, today: datetime.date
) -> Section:
    section = Section(f"Audit modes and exemptions ending within {within} days")
    horizon = today + datetime.timedelta(days=within)
    rows: list[tuple[str, str, str, str, str]] = []
    for model in settings.models:
        mode = model.authorization
        if mode.audit and mode.until is not None and mode.until <= horizon:
            rows.append(
                (
                    "ENDED" if mode.until < today else "ends soon",
                    "audit mode",
                    f"model {model.name}",
                    mode.until.isoformat(),
                    mode.reason or "",
                )
            )
    if policy_config is not None:
        try:
            config = json.loads(policy_config.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            return section.not_checked(f"{policy_config}: {exc}")
        for entry in exemptions(config if isinstance(config, Mapping) else {}):
            ending = exemption_state(entry, today, horizon)
            what = f"{entry['policy']}: {entry['key']} {entry['what']}"
            if ending == "INVALID":
                why = "needs a reason and an expires date; it exempts nothing"
                rows.append((ending, "exemption", what, entry["expires"] or "-", why))
            elif ending is not None:
                rows.append((ending, "exemption", what, entry["expires"], entry["reason"]))
    section.items = [
        dict(zip(("state", "kind", "what", "date", "reason"), r, strict=True)) for r in rows
    ]
    audited = [m.name for m in settings.models if m.authorization.audit]
    section.lines.append(
        f"Today {today.isoformat()}. Models in audit mode: {', '.join(audited) or 'none'}."
    )
    if not rows:
        section.lines.append("Nothing ends within the horizon.")
        return section
    section.status = ATTENTION
    section.lines.append(
        "Enforce the model (or extend `until` with a reason) and renew or remove exemptions "
        "(`policy-pack/policy-config.json`): after its date an exemption exempts nothing and "
        "the policy pack blocks the deployment of an ended audit."
    )
    section.lines += table(("state", "kind", "what", "date", "reason"), rows)
    return section


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def exit_status(sections: Sequence[Section]) -> int:
    if any(s.status == ATTENTION for s in sections):
        return 1
    if any(s.status == NOT_CHECKED for s in sections):
        return 2
    return 0


def render(stack: str, sections: Sequence[Section], when: datetime.datetime) -> str:
    status = exit_status(sections)
    verdict = {
        0: "nothing needs attention",
        1: "NEEDS ATTENTION",
        2: "INCOMPLETE: a check could not run",
    }[status]
    out = [
        f"# aimesh audit of stack `{stack}`: {verdict}",
        "",
        f"{when.isoformat(timespec='seconds')}",
        "",
    ]
    out += table(("check", "status"), [(s.title, s.status) for s in sections])
    for number, section in enumerate(sections, 1):
        out += ["", f"## {number}. {section.title}: {section.status}", "", *section.lines]
    return "\n".join(out) + "\n"


def as_json(stack: str, sections: Sequence[Section], when: datetime.datetime) -> dict[str, Any]:
    return {
        "stack": stack,
        "time": when.isoformat(timespec="seconds"),
        "exitStatus": exit_status(sections),
        "checks": [{"title": s.title, "status": s.status, "items": s.items} for s in sections],
    }


def _kubectl_for(
    args: argparse.Namespace, settings: Settings, scratch: Path
) -> tuple[list[str] | None, str]:
    """kubectl for the stack's cluster: --kubeconfig/--context, $KUBECONFIG, the stack's
    kubeContext, or (a kind cluster the program created) the stack's `kubeconfig` output."""
    if settings.cluster_mode == "render":
        return None, f"{NO_CLUSTER} (stack {args.stack} renders YAML: clusterMode render)"
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None, "kubectl is not on PATH (https://kubernetes.io/docs/tasks/tools/)"
    existing = settings.cluster_mode == "existing"
    context = args.context or (settings.kube_context if existing else None)
    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    pulumi = shutil.which("pulumi")
    if kubeconfig is None and settings.cluster_mode == "kind" and pulumi is not None:
        command = [pulumi, "stack", "output", "kubeconfig", "--show-secrets", "--stack", args.stack]
        output = _run(command)
        if output.returncode == 0 and output.stdout.strip():
            path = scratch / "kubeconfig"
            path.write_text(output.stdout)
            path.chmod(0o600)
            kubeconfig = str(path)
    return _kubectl(kubectl, kubeconfig, context), ""


def main(argv: Sequence[str] | None = None, *, today: datetime.date | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.audit", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--stack", required=True)
    parser.add_argument(
        "--offline", action="store_true", help="only the checks without CLI/cluster"
    )
    parser.add_argument("--drift", choices=("refresh", "program"), default="refresh")
    parser.add_argument("--kubeconfig", help="kubeconfig of the cluster (default $KUBECONFIG)")
    parser.add_argument("--context", help="kubeconfig context (default: the stack's kubeContext)")
    env_config = os.environ.get("POLICY_PACK_CONFIG")
    parser.add_argument(
        "--policy-pack-config",
        type=Path,
        default=Path(env_config) if env_config else DEFAULT_POLICY_CONFIG,
        help="policy config JSON (default $POLICY_PACK_CONFIG, else the project's own)",
    )
    parser.add_argument(
        "--approved",
        type=Path,
        help="approved matrix (default approved/access-matrix-<stack>.json)",
    )
    parser.add_argument(
        "--within", type=int, default=7, help="days ahead for ending audits/exemptions"
    )
    parser.add_argument("--report", type=Path, help="also write audit-<stack>.md and .json here")
    parser.add_argument(
        "--approve", action="store_true", help="record the current matrix as approved"
    )
    parser.add_argument("--project-dir", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    # `org/project/prod` for the CLI; its config file and approval are named after `prod`.
    name = args.stack.rsplit("/", 1)[-1]
    try:
        settings = access_matrix.load(name, args.project_dir)
    except (OSError, ConfigError, yaml.YAMLError) as exc:
        print(f"audit: stack {args.stack}: {exc}", file=sys.stderr)
        return 2
    approved = args.approved or args.project_dir / "approved" / f"access-matrix-{name}.json"
    if args.approve:
        rows = approvable(config_matrix(settings))
        approved.parent.mkdir(parents=True, exist_ok=True)
        approved.write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
        print(f"audit: {len(rows)} rows of stack {args.stack} recorded in {approved}: commit it")
        return 0
    if args.within < 0:
        print("audit: --within must be 0 or more days", file=sys.stderr)
        return 2

    when = datetime.datetime.now(datetime.UTC)
    day = today or when.date()
    config = (
        args.policy_pack_config
        if args.policy_pack_config and args.policy_pack_config.exists()
        else None
    )
    sections: list[Section] = []
    if args.offline:
        sections.append(
            Section("Drift: the cluster against the stack", SKIPPED, ["Skipped (--offline)."])
        )
        sections.append(
            Section("The policy pack on what is live", SKIPPED, ["Skipped (--offline)."])
        )
    else:
        sections.append(check_drift(args.stack, args.drift))
        with tempfile.TemporaryDirectory(prefix="aimesh-audit-") as scratch:
            kubectl, reason = _kubectl_for(args, settings, Path(scratch))
            sections.append(check_live(kubectl, config, reason))
    sections.append(check_matrix(args.stack, settings, approved, offline_only=args.offline))
    sections.append(check_ends(settings, config, args.within, day))

    text = render(args.stack, sections, when)
    sys.stdout.write(text)
    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        (args.report / f"audit-{name}.md").write_text(text)
        (args.report / f"audit-{name}.json").write_text(
            json.dumps(as_json(args.stack, sections, when), indent=2, sort_keys=True) + "\n"
        )
    return exit_status(sections)


if __name__ == "__main__":
    sys.exit(main())
