"""`python -m tools.learn`: generated access logs with known callers in, the config patch and the
summary out; malformed lines counted with file:line and never fatal; the patch applied to a
copy of the stack file changes the policies the program builds, and nothing else."""

from __future__ import annotations

import datetime
import gzip
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aimesh.builders import access
from tools import access_matrix, accesslog, learn, offline

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "docs" / "examples" / "access-log.jsonl"
TD = "spiffe://cluster.local"
FRAUD_PREDICT = "/v1/models/fraud-detector:predict"
CHURN_INFER = "/v2/models/churn-scorer/infer"
PARTNER = "https://login.partner-acme.example"


def record(namespace: str, principal: str | None, method: str, path: str, **extra: Any) -> str:
    fields: dict[str, Any] = {
        "start_time": extra.pop("start_time", "2026-12-01T10:00:00.000Z"),
        "namespace": namespace,
        "source_principal": f"{TD}/{principal}" if principal else None,
        "method": method,
        "path": path,
        "response_code": 200,
        "upstream_cluster": "inbound|8080||",
        "authority": None,
    }
    fields.update(extra)
    return json.dumps(fields)


def fraud(principal: str, method: str = "POST", path: str = FRAUD_PREDICT, **extra: Any) -> str:
    return record("fraud-detector", principal, method, path, **extra)


def churn(principal: str, method: str = "POST", path: str = CHURN_INFER, **extra: Any) -> str:
    return record("churn-scorer", principal, method, path, **extra)


def gateway(host: str, sub: str | None, issuer: str | None = PARTNER, **extra: Any) -> str:
    return record(
        "istio-ingress",
        None,
        extra.pop("method", "POST"),
        extra.pop("path", CHURN_INFER),
        authority=host,
        upstream_cluster="outbound|80||churn-scorer-predictor.churn-scorer.svc.cluster.local",
        request_principal_issuer=issuer,
        request_principal_subject=sub,
        **extra,
    )


def known_log() -> Iterator[str]:
    """The dev stack's traffic with known callers (see the assertions below)."""
    for _ in range(20):  # configured invoke caller: allowed
        yield fraud("ns/payments/sa/checkout")
    for _ in range(4):  # a new caller: would be denied -> proposed as invoke
        yield fraud("ns/risk/sa/risk-engine")
    yield fraud("ns/risk/sa/risk-engine", "GET", "/v1/models/fraud-detector")
    for _ in range(2):  # a new read-only caller -> proposed as read
        yield fraud("ns/dashboards/sa/grafana", "GET", "/v1/models/fraud-detector")
    # the configured read-only prober calling predict: denied, never widened automatically
    yield fraud("ns/observability-probes/sa/prober", response_code_details="rbac_access_denied")
    # a new caller of the operator endpoints -> proposed as admin
    yield fraud("ns/ml-platform/sa/trainer", "POST", "/v2/repository/models/x/load")
    # a caller from another trust domain: reported, never proposed
    yield record(
        "fraud-detector",
        None,
        "POST",
        FRAUD_PREDICT,
        source_principal="spiffe://other.td/ns/a/sa/b",
    )
    # churn-scorer, model in audit mode: configured backend and an unknown job (shadow denied)
    for _ in range(3):
        yield churn("ns/crm/sa/crm-backend", shadow_allow_result="allowed")
    for _ in range(3):
        yield churn("ns/marketing/sa/campaign", shadow_allow_result="denied")
    # the partner integration through the gateway, and its record again at the model
    for _ in range(5):
        yield gateway("churn-scorer.models.aimesh.local:443", "scoring-client")
        yield churn("ns/istio-ingress/sa/aimesh-ingressgateway")
    yield gateway("churn-scorer.models.aimesh.local", "someone-else")  # subject not configured
    yield gateway("churn-scorer.models.aimesh.local", "x", issuer="https://idp.unknown.example")
    yield gateway("nothing.models.aimesh.local", "scoring-client")  # not a model of the stack
    # a client-side record (counted at the model, not twice)
    yield record(
        "payments",
        None,
        "POST",
        FRAUD_PREDICT,
        authority="fraud-detector-predictor.fraud-detector.svc.cluster.local:80",
        upstream_cluster="outbound|80||fraud-detector-predictor.fraud-detector.svc.cluster.local",
    )
    yield record("shop", "ns/shop/sa/frontend", "GET", "/cart", authority="cart.shop")


MALFORMED = [
    "2026-12-01T13:00:00Z info xdsproxy connected",  # Envoy/pilot-agent text line
    '{"method": "POST", "path": "/v1/mod',  # truncated record
    "[1, 2, 3]",  # JSON, not an object
    '{"namespace": "fraud-detector", "start_time": "2026-12-01T10:00:00Z"}',  # no method/path
]


def write(path: Path, lines: list[str], *, gz: bool = False) -> Path:
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def run(
    *args: str, stdin: bytes | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.learn", *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        check=False,
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )


def proposals(patch: str) -> dict[str, dict[str, list[dict[str, str]]]]:
    document = yaml.safe_load(patch)
    out: dict[str, dict[str, list[dict[str, str]]]] = {}
    for model in (document.get("config") or {}).get("aimesh:models") or []:
        entries = {k: v for k, v in model.items() if k != "name"}
        if entries:  # a model listed only for its comments proposes nothing
            out[model["name"]] = entries
    return out


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    directory = tmp_path_factory.mktemp("logs")
    lines = list(known_log())
    plain = write(directory / "model.log", [*lines[:10], *MALFORMED[:2], *lines[10:20]])
    zipped = write(directory / "more.log.gz", [*lines[20:], *MALFORMED[2:]], gz=True)
    return run("--stack", "dev", str(plain), str(zipped))


def test_known_callers_become_the_patch(learned: subprocess.CompletedProcess[str]) -> None:
    assert learned.returncode == 0, learned.stderr
    assert proposals(learned.stdout) == {
        "fraud-detector": {
            "callers": [
                {"namespace": "risk", "serviceAccount": "risk-engine", "role": "invoke"},
                {"namespace": "dashboards", "serviceAccount": "grafana", "role": "read"},
                {"namespace": "ml-platform", "serviceAccount": "trainer", "role": "admin"},
            ]
        },
        "churn-scorer": {
            "callers": [{"namespace": "marketing", "serviceAccount": "campaign", "role": "invoke"}]
        },
    }
    # Counts and routes are comments next to each entry.
    assert "# 5 requests" in learned.stdout
    assert f"POST {FRAUD_PREDICT} 4" in learned.stdout


def test_summary_names_what_enforcing_would_break(
    learned: subprocess.CompletedProcess[str],
) -> None:
    err = learned.stderr
    deny = err.split("would DENY", 1)[1]
    for label in (
        "risk/risk-engine",
        "dashboards/grafana",
        "ml-platform/trainer",
        "observability-probes/prober",
    ):
        assert f"    {label}: " in deny
    assert "marketing/campaign: 3 of 3 requests" in err
    assert "shadow-denied 3" in err
    assert "payments/checkout:" not in deny.split("model churn-scorer", 1)[0]
    assert "refused (403) 1" in err  # the prober's real 403
    assert "sub=someone-else" in err
    assert "is not in the subjects of partner-acme" in err
    assert "no integration has this issuer" in err
    assert "not a workload of trust domain cluster.local" in err


def test_summary_lists_unseen_callers_and_other_traffic(
    learned: subprocess.CompletedProcess[str],
) -> None:
    err = learned.stderr
    unseen = err.split("never seen (candidates to remove): ", 1)[1].splitlines()[0]
    assert unseen == "ml-platform/model-operator (admin), batch/nightly-scoring (invoke)"
    assert "gateway: host nothing.models.aimesh.local" in err
    assert "shop -> cart.shop" in err
    assert "5 gateway-forwarded (counted at the gateway)" in err
    assert "1 client-side records" in err


def test_malformed_lines_are_counted_with_file_and_line(
    learned: subprocess.CompletedProcess[str],
) -> None:
    err = learned.stderr
    assert "4 malformed" in err
    assert "model.log:11: not JSON" in err
    assert "model.log:12: not JSON" in err
    assert "more.log.gz:" in err
    assert "a JSON list, not an access-log record" in err
    assert "no method or path" in err


def test_stdin_otlp_batches_and_min_requests() -> None:
    batch = {
        "resourceLogs": [
            {
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "attributes": [
                                    {
                                        "key": "namespace",
                                        "value": {"stringValue": "fraud-detector"},
                                    },
                                    {
                                        "key": "source_principal",
                                        "value": {"stringValue": f"{TD}/ns/x/sa/y"},
                                    },
                                    {"key": "method", "value": {"stringValue": "POST"}},
                                    {"key": "path", "value": {"stringValue": FRAUD_PREDICT}},
                                    {"key": "response_code", "value": {"intValue": "403"}},
                                    {
                                        "key": "upstream_cluster",
                                        "value": {"stringValue": "inbound|8080||"},
                                    },
                                ]
                            }
                        ]
                        * 3
                    }
                ]
            }
        ]
    }
    lines = [json.dumps(batch), fraud("ns/z/sa/once")]
    proc = run(
        "--stack", "dev", "--min-requests", "2", "-", stdin=gzip.compress("\n".join(lines).encode())
    )
    assert proc.returncode == 0, proc.stderr
    assert proposals(proc.stdout) == {
        "fraud-detector": {"callers": [{"namespace": "x", "serviceAccount": "y", "role": "invoke"}]}
    }
    assert "below --min-requests 2: z/once (1)" in proc.stderr
    assert "<stdin>" not in proc.stderr  # nothing malformed


def test_time_window() -> None:
    early = fraud("ns/early/sa/job", start_time="2026-11-30T23:00:00Z")
    late = fraud("ns/late/sa/job", start_time="2026-12-02T01:00:00Z")
    undated = fraud("ns/nodate/sa/job", start_time="not a time")
    proc = run(
        "--stack",
        "dev",
        "--since",
        "2026-12-01",
        "--until",
        "2026-12-02T12:00:00Z",
        "-",
        stdin="\n".join([early, late, undated]).encode(),
    )
    assert proc.returncode == 0, proc.stderr
    assert proposals(proc.stdout) == {
        "fraud-detector": {
            "callers": [{"namespace": "late", "serviceAccount": "job", "role": "invoke"}]
        }
    }
    assert "1 outside the time window" in proc.stderr
    assert "<stdin>:3: start_time 'not a time' is not a timestamp" in proc.stderr


def test_relative_window_is_from_now() -> None:
    now = datetime.datetime(2026, 12, 4, 12, tzinfo=datetime.UTC)
    assert learn.parse_time("7d", now) == datetime.datetime(2026, 11, 27, 12, tzinfo=datetime.UTC)
    assert learn.parse_time("2026-12-01", now) == datetime.datetime(
        2026, 12, 1, tzinfo=datetime.UTC
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stack", "nope", "x"], "Pulumi.nope.yaml does not exist"),
        (["--stack", "dev", "--since", "yesterday", "-"], "'yesterday' is not a time"),
        (["--stack", "dev", "--min-requests", "0", "-"], "--min-requests 0: must be 1 or more"),
        (
            ["--stack", "dev", "--since", "1h", "--until", "2h", "-"],
            "--since must be before --until",
        ),
    ],
)
def test_bad_usage_is_named(args: list[str], message: str) -> None:
    proc = run(*args, stdin=b"")
    assert proc.returncode == 2
    assert message in proc.stderr


def test_unreadable_files_are_named_and_the_others_still_read(tmp_path: Path) -> None:
    good = write(tmp_path / "good.log", [fraud("ns/risk/sa/risk-engine")])
    broken = tmp_path / "broken.log.gz"
    broken.write_bytes(gzip.compress(("\n".join(list(known_log())) + "\n").encode())[:200])
    proc = run("--stack", "dev", str(tmp_path / "missing.log"), str(broken), str(good))
    assert proc.returncode == 2
    assert f"{tmp_path / 'missing.log'}: cannot open" in proc.stderr
    assert f"{broken}:" in proc.stderr
    assert "cannot read on" in proc.stderr
    assert proposals(proc.stdout)["fraud-detector"]["callers"][0]["namespace"] == "risk"


def test_a_huge_line_is_skipped_not_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accesslog, "MAX_LINE", 64)
    path = write(tmp_path / "x.log", ["{" + "x" * 500 + "}", '{"method": "GET", "path": "/"}'])
    stats = accesslog.ReadStats()
    records = list(accesslog.read([str(path)], stats))
    assert stats.malformed == 1
    assert stats.examples == [f"{path}:1: line longer than 64 bytes"]
    assert len(records) == 1
    assert records[0].where == f"{path}:2"


def test_memory_is_bounded_by_callers_and_routes_not_lines() -> None:
    view = learn.StackView.of(access_matrix.load("dev"))
    lines = [fraud("ns/scan/sa/bot", "GET", f"/probe/{i}") for i in range(3000)]
    lines += [record("elsewhere", None, "GET", "/", authority=f"svc-{i}.x") for i in range(3000)]
    stats = accesslog.ReadStats()
    located = (accesslog.Located(json.loads(line), "mem:1") for line in lines)
    seen = learn.learn(view, located, stats)
    [bot] = seen.models["fraud-detector"].callers.values()
    assert bot.requests == 3000
    assert len(bot.routes) == learn.MAX_ROUTES_PER_CALLER + 1  # + one overflow bucket
    assert len(seen.other) == learn.MAX_OTHER + 1
    assert sum(seen.other.values()) == 3000


def test_verdicts_follow_the_access_rows() -> None:
    settings = access_matrix.load("dev")
    view = learn.StackView.of(settings)
    fraud_model = settings.models[0]
    rows = view.rows[fraud_model.name]

    def verdict(principal: str, method: str, path: str) -> str:
        return learn.verdict(
            fraud_model, rows, learn.Caller("workload", principal=principal), method, path
        )

    assert verdict("cluster.local/ns/payments/sa/checkout", "POST", FRAUD_PREDICT) == "allow"
    assert (
        verdict("cluster.local/ns/payments/sa/checkout", "POST", "/v2/repository/index") == "deny"
    )
    assert (
        verdict("cluster.local/ns/ml-platform/sa/model-operator", "POST", "/v2/repository/index")
        == "allow"
    )
    assert verdict("cluster.local/ns/batch/sa/nightly-scoring", "POST", FRAUD_PREDICT) == "window"
    assert (
        verdict("cluster.local/ns/observability-probes/sa/prober", "POST", FRAUD_PREDICT) == "deny"
    )
    assert learn.least_role(fraud_model, [("GET", "/v1/models/fraud-detector")]) == ("read", [])
    assert learn.least_role(fraud_model, [("DELETE", "/x")]) == (None, ["DELETE /x"])


def test_the_sample_log_round_trip(tmp_path: Path) -> None:
    """README: sample log in, patch out, applied to the stack, the program builds the policy."""
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    proc = run("--stack", "dev", "--project-dir", str(tmp_path), str(SAMPLE), "--apply")
    assert proc.returncode == 0, proc.stderr
    assert proposals(proc.stdout) == {
        "fraud-detector": {
            "callers": [{"namespace": "risk", "serviceAccount": "risk-engine", "role": "invoke"}]
        },
        "churn-scorer": {
            "callers": [
                {"namespace": "marketing", "serviceAccount": "campaign-scorer", "role": "invoke"}
            ]
        },
    }
    assert "2 malformed" in proc.stderr
    assert "access-log.jsonl:41: not JSON" in proc.stderr
    assert "2 entries added" in proc.stderr

    before = (ROOT / "Pulumi.dev.yaml").read_text().splitlines()
    after = (tmp_path / "Pulumi.dev.yaml").read_text().splitlines()
    assert [line for line in after if line not in before] == [
        line
        for line in after
        if line.lstrip().startswith(("# ", "- {namespace: risk", "- {namespace: marketing"))
        and line not in before
    ]
    assert len(after) - len(before) == 6  # two entries, two comment lines each: nothing else
    config, secret_keys = offline.stack_config("dev", tmp_path)
    evaluation = offline.evaluate(config, secret_keys=secret_keys, stack="dev")
    [allow] = evaluation.find("AuthorizationPolicy", "fraud-detector-allow")
    principals = {
        p
        for rule in allow["spec"]["rules"]
        for f in rule["from"]
        for p in f["source"]["principals"]
    }
    assert "cluster.local/ns/risk/sa/risk-engine" in principals

    again = run("--stack", "dev", "--project-dir", str(tmp_path), str(SAMPLE))
    assert proposals(again.stdout) == {}
    assert (
        "risk/risk-engine" not in again.stderr.split("would DENY", 1)[-1].split("model churn", 1)[0]
    )


def test_apply_refuses_what_it_cannot_edit_safely() -> None:
    settings = access_matrix.load("dev")
    report = learn.ModelReport(settings.models[0])
    report.entries.append(
        learn.Entry("callers", {"namespace": "a", "serviceAccount": "b", "role": "read"}, [])
    )
    flow = (
        "config:\n  aimesh:models:\n"
        "    - {name: fraud-detector, callers: [{namespace: x, serviceAccount: y}]}\n"
    )
    with pytest.raises(learn.ApplyError):
        learn.apply_patch(flow, [report])
    block = "config:\n  aimesh:models:\n    - name: fraud-detector\n      format: sklearn\n"
    applied = learn.apply_patch(block, [report])
    assert yaml.safe_load(applied)["config"]["aimesh:models"][0]["callers"] == [
        {"namespace": "a", "serviceAccount": "b", "role": "read"}
    ]


def test_access_rows_agree_with_the_learned_verdicts_on_every_dev_grant() -> None:
    settings = access_matrix.load("dev")
    view = learn.StackView.of(settings)
    for model in settings.models:
        for row in view.rows[model.name]:
            if row.kind != "workload":
                continue
            caller = learn.Caller("workload", principal=row.principal)
            path = access.read_paths(model)[-1].replace("{*}", "1")
            expected = "window" if row.batch else "allow"
            assert learn.verdict(model, view.rows[model.name], caller, "GET", path) == expected


def test_reader_handles_stdin_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    data = (fraud("ns/a/sa/b") + "\n\n").encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(data))))
    stats = accesslog.ReadStats()
    assert len(list(accesslog.read(["-"], stats))) == 1
    assert stats.blank == 1
    assert stats.malformed == 0
