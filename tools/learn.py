"""Learn who calls which model from access logs, and propose the config that allows exactly that.

    python -m tools.learn --stack STACK [--min-requests N] [--since T] [--until T] [--apply]
                          ACCESS_LOG...

ACCESS_LOG: files or `-` (stdin), plain or gzip, in the format aimesh's Telemetry writes (the
JSON lines of `kubectl logs ... -c istio-proxy`, or the collector's OTLP/JSON file sink; see
tools/accesslog.py). Streamed: memory is bounded by the number of distinct callers and routes,
never by the size of the logs.

Evidence: a request counts once, where it is authorized. For in-mesh callers that is the
model's own sidecar (the server-side record in the model's namespace: the caller's mTLS
principal); for external callers it is the ingress gateway (the record in the gateway namespace:
the JWT's issuer and subject, the model by host). The model's record of a request the gateway
forwarded, and a caller's own client-side record, describe the same requests again and are only
counted, as is everything else: traffic that is not for a model of the stack is reported.

stdout: a YAML patch for `Pulumi.<stack>.yaml`: per model, the callers and integration grants
the logs show and the config lacks, each with the least role covering the routes it used, and
request counts and routes as comments. `--apply` appends exactly those entries to the stack file
(comments and formatting kept). Widening an existing grant is never applied: it is a comment.

stderr: a summary per model: callers the current config would deny (enforcing would break
them; for models in audit mode with the shadow denials the logs recorded), configured callers
never seen (candidates to remove), callers below `--min-requests`, unknown issuers or subjects;
traffic not for a model; malformed lines with `file:line`.

Exit status: 0 done (findings are in the summary), 2 bad usage or input (an unreadable file, a
bad stack, a bad option), named on stderr.
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aimesh.builders import access
from aimesh.builders.gateway import model_host, reference
from aimesh.settings import ConfigError, ModelSettings, Role, Settings
from tools import access_matrix, offline
from tools.accesslog import Located, ReadStats, read

# Bounds on what is remembered (memory does not grow with the size of the logs).
MAX_CALLERS_PER_MODEL = 2_000
MAX_ROUTES_PER_CALLER = 64
MAX_OTHER = 1_000
MAX_CACHED_PATHS = 4_096
MAX_SUBJECTS_SHOWN = 10
OVERFLOW = "<other>"

_RBAC_DENIED = "rbac_access_denied"
_SPIFFE = "spiffe://"
_PRINCIPAL = re.compile(r"^(?P<td>[^/]+)/ns/(?P<ns>[^/]+)/sa/(?P<sa>[^/]+)$")
_DURATION = re.compile(r"^([1-9][0-9]*)([mhdw])$")
_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


class UsageError(Exception):
    """Bad input to the tool itself (stack, option, file): reported, exit status 2."""


# --------------------------------------------------------------------------------------------
# What was seen
# --------------------------------------------------------------------------------------------


@dataclass
class CallerSeen:
    """One caller of one model: how often, on which routes, with which verdicts."""

    requests: int = 0
    first: str = ""
    last: str = ""
    routes: dict[tuple[str, str], int] = field(default_factory=dict)
    # A concrete path per route, to evaluate the config's verdict on.
    samples: dict[tuple[str, str], str] = field(default_factory=dict)
    shadow_denied: int = 0
    shadow_allowed: int = 0
    denied: int = 0  # refused for real by an AuthorizationPolicy (RBAC 403)

    def add(self, method: str, route: str, path: str, when: str, record: Mapping[str, Any]) -> None:
        self.requests += 1
        if when:
            self.first = min(self.first or when, when)
            self.last = max(self.last, when)
        key = (method, route)
        if key not in self.routes and len(self.routes) >= MAX_ROUTES_PER_CALLER:
            key = (method, OVERFLOW)
        self.routes[key] = self.routes.get(key, 0) + 1
        self.samples.setdefault(key, path)
        shadow = _text(record.get("shadow_allow_result"))
        if shadow == "denied":
            self.shadow_denied += 1
        elif shadow == "allowed":
            self.shadow_allowed += 1
        if _RBAC_DENIED in (_text(record.get("response_code_details")) or ""):
            self.denied += 1


@dataclass(frozen=True)
class Caller:
    """Who: an in-mesh workload (mTLS principal) or a JWT subject through the gateway."""

    kind: str  # "workload" | "token"
    principal: str = ""  # workloads: <td>/ns/<ns>/sa/<sa> ("" = no mTLS identity)
    issuer: str = ""  # tokens
    subject: str = ""

    @property
    def label(self) -> str:
        if self.kind == "workload":
            match = _PRINCIPAL.match(self.principal)
            if match:
                return f"{match['ns']}/{match['sa']}"
            return self.principal or "<no mTLS identity>"
        if not self.issuer:
            return "<no token>"
        return f"{self.issuer} sub={self.subject or '?'}"


@dataclass
class ModelSeen:
    callers: dict[Caller, CallerSeen] = field(default_factory=dict)
    overflow: int = 0  # requests from callers beyond MAX_CALLERS_PER_MODEL
    via_gateway: int = 0  # the model's records of gateway-forwarded requests (counted there)
    client_side: int = 0  # callers' own records of requests to the model


@dataclass
class Seen:
    models: dict[str, ModelSeen] = field(default_factory=dict)
    other: dict[str, int] = field(default_factory=dict)
    outside_window: int = 0
    first: str = ""
    last: str = ""

    def count_other(self, what: str) -> None:
        if what not in self.other and len(self.other) >= MAX_OTHER:
            what = OVERFLOW
        self.other[what] = self.other.get(what, 0) + 1


def _text(value: Any) -> str | None:
    """A record field as text; Envoy writes "-" (text) or null (JSON) for an absent value."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return None if text in ("", "-") else text


def _host(authority: str | None) -> str:
    if not authority:
        return ""
    host = authority.rsplit("@", 1)[-1]
    if host.startswith("["):
        return host
    return host.split(":", 1)[0].lower()


# --------------------------------------------------------------------------------------------
# The stack: models, their routes and grants
# --------------------------------------------------------------------------------------------


@dataclass
class StackView:
    settings: Settings
    by_namespace: dict[str, ModelSettings]
    by_host: dict[str, ModelSettings]
    rows: dict[str, list[access.AccessRow]]
    gateway_namespace: str
    gateway_principal: str

    @classmethod
    def of(cls, settings: Settings) -> StackView:
        gateway = reference(settings)
        return cls(
            settings=settings,
            by_namespace={m.ns: m for m in settings.models},
            by_host={model_host(settings, m): m for m in settings.models},
            rows={m.name: access.rows(settings, m, gateway) for m in settings.models},
            gateway_namespace=gateway.namespace,
            gateway_principal=gateway.principal(settings.trust_domain),
        )

    def model_of_service(self, host: str, namespace: str) -> ModelSettings | None:
        """The model whose predictor Service a client-side record's authority names."""
        labels = host.split(".")
        for model in self.settings.models:
            if not labels[0].startswith(f"{model.name}-") or not labels[0].endswith("predictor"):
                continue
            if (len(labels) > 1 and labels[1] == model.ns) or (
                len(labels) == 1 and namespace == model.ns
            ):
                return model
        return None


def _patterns(model: ModelSettings) -> list[str]:
    return [*access.read_paths(model), *access.invoke_paths(model), *access.admin_paths(model)]


def route_of(path: str, patterns: list[str]) -> str:
    """The model's path pattern a request path falls under (the path itself when none)."""
    for pattern in patterns:
        if access.path_matches(pattern, path):
            return pattern
    return path


def _issuer_matches(row: access.AccessRow, caller: Caller) -> bool:
    return any(
        p == f"{caller.issuer}/{caller.subject}" or p == f"{caller.issuer}/*"
        for p in row.request_principals
    )


def verdict(
    model: ModelSettings, rows: list[access.AccessRow], caller: Caller, method: str, path: str
) -> str:
    """What the current config decides: "allow", "window" (allowed only while a batch window is
    open; not evaluated against the time) or "deny"."""
    if caller.kind == "workload":
        mine = [r for r in rows if r.kind == "workload" and r.principal == caller.principal]
    else:
        mine = [r for r in rows if r.kind == "integration" and _issuer_matches(r, caller)]
    if access.is_admin_path(model, path) and not any(r.role == "admin" for r in mine):
        return "deny"
    if any(access.row_allows(r, method, path) for r in mine if not r.batch):
        return "allow"
    if any(access.row_allows(r, method, path) for r in mine if r.batch):
        return "window"
    return "deny"


def least_role(
    model: ModelSettings, routes: Iterable[tuple[str, str]]
) -> tuple[Role | None, list[str]]:
    """The least role granting every (method, path) in `routes`, and the routes no role grants
    (None when none does)."""
    needed: Role | None = None
    ungranted: list[str] = []
    order: tuple[Role, ...] = access.ROLES
    for method, path in routes:
        for role in order:
            if any(
                method in op.methods and any(access.path_matches(p, path) for p in op.paths)
                for op in access.operations(model, role)
            ):
                if needed is None or order.index(role) > order.index(needed):
                    needed = role
                break
        else:
            ungranted.append(f"{method} {path}")
    return needed, ungranted


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def parse_time(text: str, now: datetime.datetime) -> datetime.datetime:
    """`--since/--until`: an ISO 8601 date or time (UTC unless it says otherwise), or a duration
    back from now (`30m`, `12h`, `7d`, `2w`)."""
    match = _DURATION.match(text)
    if match:
        return now - datetime.timedelta(seconds=int(match[1]) * _SECONDS[match[2]])
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{text!r} is not a time: use ISO 8601 (2026-12-01, 2026-12-01T08:00:00Z) or a "
            "duration back from now (30m, 12h, 7d, 2w)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def _record_time(value: Any) -> datetime.datetime | None:
    text = _text(value)
    if text is None:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


@dataclass(frozen=True)
class Window:
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None

    @property
    def set(self) -> bool:
        return self.since is not None or self.until is not None

    def holds(self, when: datetime.datetime) -> bool:
        return (self.since is None or when >= self.since) and (
            self.until is None or when < self.until
        )


def _inbound(record: Mapping[str, Any]) -> bool:
    """A server-side record at a sidecar: the request came in to this pod."""
    cluster = _text(record.get("upstream_cluster")) or ""
    if cluster.startswith("inbound|"):
        return True
    if cluster.startswith(("outbound|", "PassthroughCluster", "BlackHoleCluster")):
        return False
    # Refused before routing (no cluster yet): inbound if the peer proved an identity.
    return bool(_text(record.get("source_principal")))


def learn(
    view: StackView, located: Iterable[Located], stats: ReadStats, window: Window = Window()
) -> Seen:
    """Aggregate `located` records into what each model saw."""
    seen = Seen()
    patterns = {m.name: _patterns(m) for m in view.settings.models}
    # path -> route per model: logs repeat a handful of paths millions of times (bounded).
    routes: dict[str, dict[str, str]] = {m.name: {} for m in view.settings.models}
    for item in located:
        record = item.record
        method, path = _text(record.get("method")), _text(record.get("path"))
        if method is None or path is None:
            stats.bad(item.where, "no method or path: not an aimesh access-log record")
            continue
        when_text = _text(record.get("start_time")) or ""
        if window.set:
            when = _record_time(when_text)
            if when is None:
                stats.bad(item.where, f"start_time {when_text!r} is not a timestamp")
                continue
            if not window.holds(when):
                seen.outside_window += 1
                continue
        if when_text:
            seen.first = min(seen.first or when_text, when_text)
            seen.last = max(seen.last, when_text)
        namespace = _text(record.get("namespace")) or ""
        host = _host(_text(record.get("authority")))
        model: ModelSettings | None
        caller: Caller | None = None
        if namespace == view.gateway_namespace:
            model = view.by_host.get(host)
            if model is None:
                seen.count_other(f"gateway: host {host or '<none>'}")
                continue
            caller = Caller(
                "token",
                issuer=_text(record.get("request_principal_issuer")) or "",
                subject=_text(record.get("request_principal_subject")) or "",
            )
        elif namespace in view.by_namespace and _inbound(record):
            model = view.by_namespace[namespace]
            principal = (_text(record.get("source_principal")) or "").removeprefix(_SPIFFE)
            if principal == view.gateway_principal:
                seen.models.setdefault(model.name, ModelSeen()).via_gateway += 1
                continue
            caller = Caller("workload", principal=principal)
        else:
            model = view.model_of_service(host, namespace)
            if model is not None:
                seen.models.setdefault(model.name, ModelSeen()).client_side += 1
            elif namespace in view.by_namespace:
                seen.count_other(f"from model namespace {namespace} to {host or '<none>'}")
            else:
                seen.count_other(f"{namespace or '<no namespace>'} -> {host or '<none>'}")
            continue
        model_seen = seen.models.setdefault(model.name, ModelSeen())
        stat = model_seen.callers.get(caller)
        if stat is None:
            if len(model_seen.callers) >= MAX_CALLERS_PER_MODEL:
                model_seen.overflow += 1
                continue
            stat = model_seen.callers[caller] = CallerSeen()
        bare = path.split("?", 1)[0]
        known = routes[model.name]
        route = known.get(bare)
        if route is None:
            route = route_of(bare, patterns[model.name])
            if len(known) < MAX_CACHED_PATHS:
                known[bare] = route
        stat.add(method.upper(), route, bare, when_text, record)
    return seen


# --------------------------------------------------------------------------------------------
# Proposals
# --------------------------------------------------------------------------------------------


@dataclass
class Entry:
    """One proposed config entry (a caller or an integration grant) with its evidence."""

    key: str  # "callers" | "integrations"
    value: dict[str, str]
    comment: list[str]


@dataclass
class Finding:
    """One line of the summary about a caller."""

    caller: str
    text: str


@dataclass
class ModelReport:
    model: ModelSettings
    entries: list[Entry] = field(default_factory=list)
    would_deny: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # comments for the patch (not applied)
    unseen: list[str] = field(default_factory=list)
    below_minimum: list[str] = field(default_factory=list)


def _routes_text(stat: CallerSeen, limit: int = 6) -> str:
    ordered = sorted(stat.routes.items(), key=lambda kv: (-kv[1], kv[0]))
    parts = [f"{m} {r} {n:,}" for (m, r), n in ordered[:limit]]
    if len(ordered) > limit:
        parts.append(f"{len(ordered) - limit} more")
    return ", ".join(parts)


def _requests(count: int) -> str:
    return f"{count:,} request{'' if count == 1 else 's'}"


def _evidence(stat: CallerSeen) -> str:
    span = f", {stat.first} .. {stat.last}" if stat.first and stat.first != stat.last else ""
    if stat.first and stat.first == stat.last:
        span = f", {stat.first}"
    return f"{_requests(stat.requests)}{span}: {_routes_text(stat)}"


def _integrations_for(settings: Settings, caller: Caller) -> list[str]:
    return [
        i.name
        for i in settings.integrations
        if i.issuer == caller.issuer and (not i.subjects or caller.subject in i.subjects)
    ]


def _used(stat: CallerSeen) -> list[tuple[str, str]]:
    """(method, concrete path) per route the caller used."""
    return [(method, stat.samples[(method, route)]) for method, route in stat.routes]


@dataclass
class _Grant:
    """Token holders of one integration, summed over subjects, for one proposed grant."""

    requests: int = 0
    role: Role = "read"
    subjects: list[str] = field(default_factory=list)


class _Proposer:
    """Builds one model's report from what the model saw."""

    def __init__(self, view: StackView, model: ModelSettings, min_requests: int) -> None:
        self.view = view
        self.settings = view.settings
        self.model = model
        self.rows = view.rows[model.name]
        self.min_requests = min_requests
        self.report = ModelReport(model)
        self.seen_principals: set[str] = set()
        self.seen_integrations: set[str] = set()
        self.grants: dict[str, _Grant] = {}

    def caller(self, caller: Caller, stat: CallerSeen) -> None:
        decisions: dict[str, int] = {}
        for (method, route), count in stat.routes.items():
            decision = verdict(self.model, self.rows, caller, method, stat.samples[(method, route)])
            decisions[decision] = decisions.get(decision, 0) + count
        denied = decisions.get("deny", 0)
        if denied:
            shadow = f"; shadow-denied {stat.shadow_denied:,}" if stat.shadow_denied else ""
            real = f"; refused (403) {stat.denied:,}" if stat.denied else ""
            self.report.would_deny.append(
                Finding(caller.label, f"{denied:,} of {_evidence(stat)}{shadow}{real}")
            )
        role, ungranted = least_role(self.model, _used(stat))
        if caller.kind == "workload":
            self._workload(caller, stat, role, ungranted, denied)
        else:
            self._token(caller, stat, role, denied)

    def _workload(
        self, caller: Caller, stat: CallerSeen, role: Role | None, ungranted: list[str], denied: int
    ) -> None:
        report = self.report
        self.seen_principals.add(caller.principal)
        if any(r.kind == "workload" and r.principal == caller.principal for r in self.rows):
            if denied:
                report.notes.append(
                    f"{caller.label}: configured, but {_requests(denied)} went beyond its "
                    f"grant ({role or 'no role'} would cover what it called): widen it by hand "
                    "if that is intended"
                )
            return
        match = _PRINCIPAL.match(caller.principal)
        if match is None or match["td"] != self.settings.trust_domain:
            report.notes.append(
                f"{caller.label}: not a workload of trust domain {self.settings.trust_domain} "
                f"({_requests(stat.requests)})"
            )
            return
        if stat.requests < self.min_requests:
            report.below_minimum.append(f"{caller.label} ({stat.requests:,})")
            return
        if role is None:
            report.notes.append(
                f"{caller.label}: no role grants what it called ({_routes_text(stat, 3)})"
            )
            return
        comment = [_evidence(stat)]
        if ungranted:
            comment.append("no role grants: " + ", ".join(ungranted[:5]))
        value = {"namespace": match["ns"], "serviceAccount": match["sa"], "role": role}
        report.entries.append(Entry("callers", value, comment))

    def _token(self, caller: Caller, stat: CallerSeen, role: Role | None, denied: int) -> None:
        report = self.report
        if not caller.issuer:
            report.notes.append(
                f"{_requests(stat.requests)} through the gateway without a validated token "
                "(the gateway's token requirement refuses them)"
            )
            return
        names = _integrations_for(self.settings, caller)
        if not names:
            known = [i.name for i in self.settings.integrations if i.issuer == caller.issuer]
            why = (
                f"subject {caller.subject!r} is not in the subjects of {', '.join(known)}"
                if known
                else "no integration has this issuer: define one under aimesh:integrations "
                "(name, jwksUri, audiences) before granting it"
            )
            report.notes.append(f"{caller.label} ({_requests(stat.requests)}): {why}")
            return
        name = names[0]
        self.seen_integrations.add(name)
        if any(r.kind == "integration" and r.caller == f"integration:{name}" for r in self.rows):
            if denied:
                report.notes.append(
                    f"integration {name}: granted, but {_requests(denied)} went beyond its "
                    "grant: widen it by hand if that is intended"
                )
            return
        grant = self.grants.setdefault(name, _Grant())
        grant.requests += stat.requests
        if role is not None and access.ROLES.index(role) > access.ROLES.index(grant.role):
            grant.role = role
        grant.subjects.append(f"sub={caller.subject or '?'}: {_evidence(stat)}")

    def finish(self) -> ModelReport:
        report = self.report
        for name, grant in self.grants.items():
            if grant.requests < self.min_requests:
                report.below_minimum.append(f"integration {name} ({grant.requests:,})")
                continue
            shown = grant.subjects[:MAX_SUBJECTS_SHOWN]
            if len(grant.subjects) > MAX_SUBJECTS_SHOWN:
                shown.append(f"{len(grant.subjects) - MAX_SUBJECTS_SHOWN} more subjects")
            comment = [f"{_requests(grant.requests)} through the gateway", *shown]
            report.entries.append(
                Entry("integrations", {"name": name, "role": grant.role}, comment)
            )
        report.unseen = [
            f"{r.caller} ({r.role})"
            for r in self.rows
            if (r.kind == "workload" and r.principal not in self.seen_principals)
            or (
                r.kind == "integration"
                and r.caller.removeprefix("integration:") not in self.seen_integrations
            )
        ]
        return report


def propose(view: StackView, seen: Seen, min_requests: int = 1) -> list[ModelReport]:
    """Per model (config order): entries to add, what enforcing would deny, callers unseen."""
    reports = []
    for model in view.settings.models:
        proposer = _Proposer(view, model, min_requests)
        model_seen = seen.models.get(model.name, ModelSeen())
        for caller, stat in sorted(model_seen.callers.items(), key=lambda kv: -kv[1].requests):
            proposer.caller(caller, stat)
        reports.append(proposer.finish())
    return reports


# --------------------------------------------------------------------------------------------
# Output: the patch, the summary, --apply
# --------------------------------------------------------------------------------------------


def _flow(value: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}: {_scalar(v)}" for k, v in value.items()) + "}"


def _scalar(value: str) -> str:
    """A YAML plain scalar when it reads back as the same string, else a quoted one."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value) and yaml.safe_load(value) == value:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def comment_lines(text: str, indent: str, width: int = 100) -> list[str]:
    """`text` as YAML comment lines at `indent`, wrapped (continuations indented)."""
    wrapped = textwrap.wrap(
        text, width=max(40, width - len(indent) - 2), subsequent_indent="  ", break_on_hyphens=False
    )
    return [f"{indent}# {line}" for line in wrapped]


def entry_lines(entry: Entry, indent: str) -> list[str]:
    """An entry as block-sequence lines at `indent` (the dash column), comments first."""
    lines = [line for c in entry.comment for line in comment_lines(c, indent)]
    return [*lines, f"{indent}- {_flow(entry.value)}"]


def render_patch(stack: str, reports: Sequence[ModelReport], seen: Seen, stats: ReadStats) -> str:
    head = [
        f"# aimesh learn: additions for Pulumi.{stack}.yaml from {stats.files} access log(s),",
        f"# {stats.records:,} records{_span(seen)}.",
        "# Append each model's entries to that model (or run again with --apply). Every entry",
        "# is a grant: review it. Widening an existing grant is only ever a comment here.",
    ]
    body: list[str] = []
    for report in reports:
        if not report.entries and not report.notes:
            continue
        body.append(f"    - name: {report.model.name}")
        for key in ("callers", "integrations"):
            entries = [e for e in report.entries if e.key == key]
            if entries:
                body.append(f"      {key}:")
                for entry in entries:
                    body.extend(entry_lines(entry, "        "))
        for note in report.notes:
            body.extend(comment_lines(f"not proposed: {note}", "      "))
    if not body:
        return "\n".join(
            [*head, "# Nothing to add: the config already allows what was seen.", "config: {}", ""]
        )
    return "\n".join([*head, "config:", "  aimesh:models:", *body, ""])


def _span(seen: Seen) -> str:
    return f" between {seen.first} and {seen.last}" if seen.first else ""


def render_summary(
    stack: str, reports: Sequence[ModelReport], seen: Seen, stats: ReadStats, min_requests: int
) -> str:
    out = [
        f"learn: stack {stack}: {stats.files} file(s), {stats.lines:,} lines, "
        f"{stats.records:,} records{_span(seen)}; {stats.malformed:,} malformed"
        + (f", {seen.outside_window:,} outside the time window" if seen.outside_window else "")
    ]
    for example in stats.examples:
        out.append(f"  malformed: {example}")
    if stats.malformed > len(stats.examples):
        out.append(f"  malformed: ... {stats.malformed - len(stats.examples):,} more")
    for error in stats.errors:
        out.append(f"  unreadable: {error}")
    for report in reports:
        model = report.model
        model_seen = seen.models.get(model.name, ModelSeen())
        mode = access.enforcement(model)
        total = sum(s.requests for s in model_seen.callers.values())
        out.append("")
        callers = len(model_seen.callers)
        out.append(f"model {model.name} ({mode}): {total:,} requests from {callers} caller(s)")
        if report.would_deny:
            out.append("  the current config would DENY (enforcing breaks these):")
            out.extend(f"    {f.caller}: {f.text}" for f in report.would_deny)
        else:
            out.append("  the current config would deny none of the callers seen")
        if report.entries:
            out.append("  proposed (stdout):")
            out.extend(f"    {e.key}: {_flow(e.value)}" for e in report.entries)
        for note in report.notes:
            out.append(f"  not proposed: {note}")
        if report.below_minimum:
            out.append(f"  below --min-requests {min_requests}: " + ", ".join(report.below_minimum))
        if report.unseen:
            out.append(
                "  configured but never seen (candidates to remove): " + ", ".join(report.unseen)
            )
        extra = []
        if model_seen.via_gateway:
            extra.append(f"{model_seen.via_gateway:,} gateway-forwarded (counted at the gateway)")
        if model_seen.client_side:
            extra.append(f"{model_seen.client_side:,} client-side records (counted at the model)")
        if model_seen.overflow:
            extra.append(f"{model_seen.overflow:,} from callers beyond {MAX_CALLERS_PER_MODEL}")
        if extra:
            out.append("  also: " + "; ".join(extra))
    if seen.other:
        out.append("")
        out.append(
            f"traffic not for a model of stack {stack} ({sum(seen.other.values()):,} records):"
        )
        for what, count in sorted(seen.other.items(), key=lambda kv: (-kv[1], kv[0]))[:20]:
            out.append(f"  {count:>8,}  {what}")
        if len(seen.other) > 20:
            out.append(f"  ... {len(seen.other) - 20} more destinations")
    return "\n".join(out)


class ApplyError(Exception):
    """The stack file cannot be edited safely by machine; edit it by hand."""


def _last_line(node: yaml.Node) -> int:
    """The last line holding content of `node` (0-based)."""
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False):
        return int(node.end_mark.line)
    if isinstance(node, yaml.SequenceNode):
        return max((_last_line(n) for n in node.value), default=int(node.start_mark.line))
    if isinstance(node, yaml.MappingNode):
        return max((_last_line(v) for _, v in node.value), default=int(node.start_mark.line))
    return int(node.end_mark.line)


def _mapping_get(node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None


def apply_patch(text: str, reports: Sequence[ModelReport]) -> str:
    """`text` (a stack file) with every proposed entry appended to its model, nothing else
    touched. Raises ApplyError where a machine edit would be a guess (flow-style lists)."""
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode):
        raise ApplyError("the stack file is not a YAML mapping")
    config = _mapping_get(root, "config")
    models = (
        _mapping_get(config[1], "aimesh:models")
        if config and isinstance(config[1], yaml.MappingNode)
        else None
    )
    if models is None or not isinstance(models[1], yaml.SequenceNode) or models[1].flow_style:
        raise ApplyError("config.aimesh:models is not a block list")
    lines = text.splitlines(keepends=True)
    inserts: list[tuple[int, list[str]]] = []  # (after line, new lines)
    wanted = {r.model.name: r for r in reports if r.entries}
    for item in models[1].value:
        if not isinstance(item, yaml.MappingNode):
            continue
        name = _mapping_get(item, "name")
        report = wanted.get(str(name[1].value)) if name else None
        if report is None:
            continue
        key_indent = " " * item.start_mark.column
        for key in ("callers", "integrations"):
            entries = [e for e in report.entries if e.key == key]
            if not entries:
                continue
            found = _mapping_get(item, key)
            if found is None:
                new = [f"{key_indent}{key}:"]
                for entry in entries:
                    new.extend(entry_lines(entry, key_indent + "  "))
                inserts.append((_last_line(item), new))
                continue
            value = found[1]
            if not isinstance(value, yaml.SequenceNode) or value.flow_style or not value.value:
                raise ApplyError(
                    f"model {report.model.name}: {key} is not a block list; add the entries "
                    "from the patch by hand"
                )
            first = value.value[0]
            line = lines[first.start_mark.line]
            dash = line.rfind("-", 0, first.start_mark.column)
            if dash < 0:
                raise ApplyError(f"model {report.model.name}: cannot find the {key} list's dash")
            new = []
            for entry in entries:
                new.extend(entry_lines(entry, " " * dash))
            inserts.append((_last_line(value), new))
    for after, new in sorted(inserts, key=lambda i: -i[0]):
        if not lines[after].endswith("\n"):
            lines[after] += "\n"
        lines[after + 1 : after + 1] = [n + "\n" for n in new]
    return "".join(lines)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def load_stack(stack: str, root: Path) -> Settings:
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        known = ", ".join(offline.stacks(root)) or "none"
        raise UsageError(f"--stack {stack}: {stack_file} does not exist (stacks here: {known})")
    try:
        return access_matrix.load(stack, root)
    except ConfigError as exc:
        raise UsageError(f"{stack_file}: {exc}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{stack_file}: not YAML: {exc}") from None


def main(argv: Sequence[str] | None = None, *, now: datetime.datetime | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.learn",
        description="Learn who calls which model from aimesh access logs; propose the config.",
    )
    parser.add_argument("--stack", required=True, help="the stack whose config to compare with")
    parser.add_argument("logs", nargs="+", metavar="ACCESS_LOG", help="files or - (stdin); .gz ok")
    parser.add_argument(
        "--min-requests",
        type=int,
        default=1,
        help="propose only callers with at least this many requests (default 1)",
    )
    parser.add_argument("--since", help="only records from this time (ISO 8601, or 7d, 12h ago)")
    parser.add_argument("--until", help="only records before this time (ISO 8601, or 1h ago)")
    parser.add_argument(
        "--apply", action="store_true", help="append the proposed entries to Pulumi.<stack>.yaml"
    )
    parser.add_argument("--project-dir", type=Path, default=offline.ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    moment = now or datetime.datetime.now(datetime.UTC)
    try:
        if args.min_requests < 1:
            raise UsageError(f"--min-requests {args.min_requests}: must be 1 or more")
        window = Window(
            parse_time(args.since, moment) if args.since else None,
            parse_time(args.until, moment) if args.until else None,
        )
        if window.since and window.until and window.since >= window.until:
            raise UsageError("--since must be before --until")
        settings = load_stack(args.stack, args.project_dir)
    except UsageError as exc:
        print(f"learn: {exc}", file=sys.stderr)
        return 2

    view = StackView.of(settings)
    stats = ReadStats()
    seen = learn(view, read(args.logs, stats), stats, window)
    reports = propose(view, seen, args.min_requests)
    sys.stdout.write(render_patch(args.stack, reports, seen, stats))
    print(render_summary(args.stack, reports, seen, stats, args.min_requests), file=sys.stderr)
    if args.apply:
        stack_file = args.project_dir / f"Pulumi.{args.stack}.yaml"
        try:
            updated = apply_patch(stack_file.read_text(), reports)
        except ApplyError as exc:
            print(f"learn: --apply: {stack_file}: {exc}", file=sys.stderr)
            return 2
        stack_file.write_text(updated)
        added = sum(len(r.entries) for r in reports)
        print(
            f"learn: --apply: {added} entr{'y' if added == 1 else 'ies'} added to {stack_file}",
            file=sys.stderr,
        )
    if stats.errors:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
