"""The aimesh policy pack against a no-op pack, over the analyzer gRPC protocol, and beside checkov.

    .venv/bin/python benchmarks/policy_pack.py [--sizes 250,500,1000,2000,4000] [--repeat 3]
                                               [--checkov-sizes 250,1000] [--no-checkov]

1. Throughput. Secure generated stacks (benchmarks/stackgen.py) of growing size go through each
   pack exactly as `pulumi preview` sends them (tools.analyzer.preview: Remediate + Analyze per
   resource, one AnalyzeStack). Packs: the no-op floor (one empty resource policy, one empty stack
   policy), a no-op pack with as many empty policies as aimesh has (pulumi_policy decodes the
   properties once per policy, so this isolates SDK cost from the checks), and aimesh. Printed:
   seconds per size (best of --repeat), ratios to both floors, ms per resource and a linear fit.
2. Side by side with checkov (if installed; it is not a test dependency: see
   benchmarks/requirements.txt). Time: both tools end to end as processes on the same YAML
   (`python -m tools.check --manifests DIR` vs `checkov -d DIR --framework kubernetes`). What each
   catches: every benchmarks/manifests/bad/<category>--<case>.yaml (one weakened object each),
   together with the secure baseline benchmarks/manifests/baseline/, in one run; a case counts as
   caught when a tool reports on its object a finding it does not report on the baseline objects
   of the same kind (the workload cases weaken one field of the hardened baseline workload, so
   generic hygiene findings cancel out).

Benchmarks print figures; nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import stackgen  # type: ignore[import-not-found]  # noqa: E402
from pulumi.runtime.proto import analyzer_pb2  # noqa: E402

from tools.analyzer import (  # noqa: E402
    AnalyzerClient,
    PolicyPackProcess,
    analyze_request,
    preview,
    reconcile_policy_config,
    stack_resource,
)
from tools.check import Target, manifests_target  # noqa: E402

NOOP = ROOT / "benchmarks" / "noop_pack"
AIMESH = ROOT / "policy-pack"
CASES = ROOT / "benchmarks" / "manifests"
CHECKOV_VERSION = "3.3.30"


# --------------------------------------------------------------------------------------------
# Throughput over the protocol
# --------------------------------------------------------------------------------------------


def targets(sizes: Sequence[int], workdir: Path) -> dict[int, Target]:
    """Each size written as YAML and read back as the engine's resources (Chart children)."""
    result = {}
    for size in sizes:
        directory = workdir / f"stack-{size}"
        stackgen.write(stackgen.generate(size), directory)
        result[size] = manifests_target(directory, stack=f"bench-{size}")
    return result


def _timed_preview(
    client: AnalyzerClient,
    requests: list[analyzer_pb2.AnalyzeRequest],
    whole_stack: analyzer_pb2.AnalyzeStackRequest,
) -> tuple[float, float]:
    """Seconds for a whole preview's calls, and for its AnalyzeStack alone."""
    started = time.perf_counter()
    for request in requests:
        client.call("Remediate", request)
        client.call("Analyze", request)
    before_stack = time.perf_counter()
    client.call("AnalyzeStack", whole_stack)
    ended = time.perf_counter()
    return ended - started, ended - before_stack


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least squares y = a + b x: (a, b, r squared)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    return a, b, 1 - ss_res / ss_tot if ss_tot else 1.0


def throughput(sizes: Sequence[int], repeat: int, workdir: Path) -> None:
    """The three packs run side by side and are timed in turn, size by size and round by round,
    so that load on the machine hits them alike; each figure is the best of `repeat` rounds.
    The protobuf requests are built once, outside the clock: what is timed is the protocol and
    the pack (Remediate + Analyze per resource, one AnalyzeStack), not this client."""
    stacks = targets(sizes, workdir)
    print(
        f"generated stacks: {', '.join(str(s) for s in sizes)} resources "
        f"(+3 engine resources each: stack, provider, chart); {stackgen.UNIT_SIZE} objects "
        "per model unit"
    )
    with PolicyPackProcess(AIMESH, stack="bench") as aimesh_pack:
        info = aimesh_pack.client.get_analyzer_info()
        resource_policies = sum(1 for p in info.policies if p.policy_type == "resource")
        stack_policies = sum(1 for p in info.policies if p.policy_type == "stack")
        matched_env = {
            "NOOP_RESOURCE_POLICIES": str(resource_policies),
            "NOOP_STACK_POLICIES": str(stack_policies),
        }
        with (
            PolicyPackProcess(NOOP, stack="bench") as floor_pack,
            PolicyPackProcess(NOOP, stack="bench", extra_env=matched_env) as matched_pack,
        ):
            packs = {"floor": floor_pack, "matched": matched_pack, "aimesh": aimesh_pack}
            for pack in packs.values():
                pack_info = pack.client.get_analyzer_info()
                pack.client.configure(reconcile_policy_config(pack_info))
                preview(pack.client, stacks[min(stacks)].resources)  # warm-up
            best: dict[str, dict[int, float]] = {name: {} for name in packs}
            best_stack: dict[str, dict[int, float]] = {name: {} for name in packs}
            violations: dict[int, int] = {}
            for size, target in stacks.items():
                requests = [analyze_request(r) for r in target.resources]
                whole_stack = analyzer_pb2.AnalyzeStackRequest(
                    resources=[stack_resource(r) for r in target.resources]
                )
                for _ in range(repeat):
                    for name, pack in packs.items():
                        total, stack_only = _timed_preview(pack.client, requests, whole_stack)
                        best[name][size] = min(best[name].get(size, total), total)
                        best_stack[name][size] = min(
                            best_stack[name].get(size, stack_only), stack_only
                        )
                violations[size] = len(
                    preview(aimesh_pack.client, target.resources).all_diagnostics
                )

    floor, matched, aimesh = best["floor"], best["matched"], best["aimesh"]
    print(
        f"\naimesh pack {info.name}: {resource_policies} resource + {stack_policies} stack "
        f"policies. Floors: no-op pack with 1+1 empty policies, and with "
        f"{resource_policies}+{stack_policies} (N+M). Best of {repeat} rounds."
    )
    header = (
        f"{'resources':>9} {'no-op 1+1':>10} {'no-op N+M':>10} {'aimesh':>8} "
        f"{'x 1+1':>6} {'x N+M':>6} {'ms/res':>7} {'stack s':>8} {'violations':>10}"
    )
    print(header)
    print("-" * len(header))
    for size in sizes:
        print(
            f"{size:>9} {floor[size]:>9.2f}s {matched[size]:>9.2f}s {aimesh[size]:>7.2f}s "
            f"{aimesh[size] / floor[size]:>5.2f}x {aimesh[size] / matched[size]:>5.2f}x "
            f"{1000 * aimesh[size] / size:>7.3f} {best_stack['aimesh'][size]:>7.3f}s "
            f"{violations[size]:>10}"
        )
    if len(sizes) >= 2:
        xs = [float(s) for s in sizes]
        for label, series in (("aimesh", aimesh), ("no-op 1+1", floor), ("no-op N+M", matched)):
            a, b, r2 = linear_fit(xs, [series[s] for s in sizes])
            per = [series[s] / s for s in sizes]
            print(
                f"linearity {label:>9}: t = {a:+.3f}s + {1000 * b:.3f}ms x resources "
                f"(R^2 {r2:.4f}); ms/resource {1000 * per[0]:.3f} at {sizes[0]} -> "
                f"{1000 * per[-1]:.3f} at {sizes[-1]} ({per[-1] / per[0]:.2f}x)"
            )
        a, b, r2 = linear_fit(xs, [best_stack["aimesh"][s] for s in sizes])
        print(
            f"linearity aimesh AnalyzeStack alone: t = {a:+.3f}s + {1000 * b:.3f}ms x resources "
            f"(R^2 {r2:.4f})"
        )


# --------------------------------------------------------------------------------------------
# Side by side with checkov
# --------------------------------------------------------------------------------------------


def find_checkov() -> tuple[str | None, str]:
    explicit = os.environ.get("CHECKOV")
    if explicit:
        return (explicit, "") if Path(explicit).exists() else (None, f"CHECKOV={explicit} missing")
    found = shutil.which("checkov")
    if found:
        return found, ""
    return None, (
        "checkov is not installed. It is not a test dependency; to compare, install it in its own "
        "virtualenv (python -m venv /tmp/ck && /tmp/ck/bin/pip install -r "
        "benchmarks/requirements.txt) and run with CHECKOV=/tmp/ck/bin/checkov"
    )


def run_checkov(checkov: str, directory: Path) -> tuple[float, list[dict[str, object]]]:
    """Seconds end to end and the failed checks (`--skip-download`: no network, fixed rules)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [
            checkov,
            "-d",
            str(directory),
            "--framework",
            "kubernetes",
            "-o",
            "json",
            "--quiet",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"checkov failed ({proc.returncode}): {proc.stderr[-2000:]}")
    data = json.loads(proc.stdout or "{}")
    reports = data if isinstance(data, list) else [data]
    failed: list[dict[str, object]] = []
    for report in reports:
        results = report.get("results") or {} if isinstance(report, dict) else {}
        failed.extend(results.get("failed_checks") or [])
    return seconds, failed


def run_aimesh(directory: Path) -> tuple[float, dict[str, object]]:
    """Seconds end to end (`python -m tools.check --manifests DIR --json`) and its report."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "tools.check", "--manifests", str(directory), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"tools.check failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report: dict[str, object] = json.loads(proc.stdout)
    return seconds, report


def _kind_of_file(path: Path) -> str:
    import yaml

    doc = next(d for d in yaml.safe_load_all(path.read_text()) if d)
    return str(doc["kind"])


def catches(checkov: str | None, workdir: Path) -> None:
    directory = workdir / "cases"
    directory.mkdir()
    baseline_files = sorted((CASES / "baseline").glob("*.yaml"))
    case_files = sorted((CASES / "bad").glob("*.yaml"))
    for path in [*baseline_files, *case_files]:
        shutil.copy(path, directory / path.name)

    # aimesh: findings per file (policy names); kinds of the baseline objects from their URNs.
    _, report = run_aimesh(directory)
    aimesh_by_file: dict[str, set[str]] = defaultdict(set)
    aimesh_baseline: dict[str, set[str]] = defaultdict(set)
    stack_wide: set[str] = set()
    violations = report["violations"]
    assert isinstance(violations, list)
    for v in violations:
        source = str(v["source"]).split("#")[0]
        if not source:
            stack_wide.add(str(v["policy"]))
            continue
        aimesh_by_file[source].add(str(v["policy"]))
        if not source.split("/")[-1].count("--"):
            kind = str(v["urn"]).split("::")[-2].rsplit(":", 1)[-1]
            aimesh_baseline[kind].add(str(v["policy"]))

    checkov_by_file: dict[str, set[str]] = defaultdict(set)
    checkov_baseline: dict[str, set[str]] = defaultdict(set)
    if checkov:
        _, failed = run_checkov(checkov, directory)
        for check in failed:
            name = str(check.get("file_path", "")).lstrip("/")
            checkov_by_file[name].add(str(check.get("check_id")))
            if "--" not in name:
                kind = str(check.get("resource", "")).split(".")[0]
                checkov_baseline[kind].add(str(check.get("check_id")))

    print("\nwhat each catches: benchmarks/manifests/bad/* on the secure baseline")
    print(f"{'case':<48} {'aimesh':<8} {'checkov':<8}")
    per_category: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for path in case_files:
        category = path.name.split("--")[0]
        kind = _kind_of_file(path)
        new_aimesh = aimesh_by_file[path.name] - aimesh_baseline[kind]
        new_checkov = checkov_by_file[path.name] - checkov_baseline[kind]
        per_category[category][0] += 1
        per_category[category][1] += bool(new_aimesh)
        per_category[category][2] += bool(new_checkov)
        ck = ("yes" if new_checkov else "no") if checkov else "n/a"
        print(
            f"{path.stem:<48} {'yes' if new_aimesh else 'no':<8} {ck:<8}"
            + (f"  checkov: {','.join(sorted(new_checkov))}" if new_checkov else "")
        )
    print(f"\n{'category':<12} {'cases':>5} {'aimesh':>7} {'checkov':>8}")
    for category, (cases, caught_a, caught_c) in sorted(per_category.items()):
        print(f"{category:<12} {cases:>5} {caught_a:>7} {caught_c if checkov else 'n/a':>8}")
    total = [sum(v[i] for v in per_category.values()) for i in range(3)]
    print(f"{'total':<12} {total[0]:>5} {total[1]:>7} {total[2] if checkov else 'n/a':>8}")
    baseline_a = sum(len(aimesh_by_file[p.name]) for p in baseline_files)
    baseline_c = sum(len(checkov_by_file[p.name]) for p in baseline_files)
    print(
        f"findings on the secure baseline itself: aimesh {baseline_a}, "
        f"checkov {baseline_c if checkov else 'n/a'}; stack-wide aimesh findings: "
        f"{', '.join(sorted(stack_wide)) or 'none'}"
    )


def speed(checkov: str, sizes: Sequence[int], workdir: Path) -> None:
    print("\nend to end on the same secure YAML (process start to report)")
    print(
        f"{'resources':>9} {'aimesh s':>9} {'checkov s':>10} {'ratio':>6} "
        f"{'aimesh findings':>16} {'checkov findings':>17}"
    )
    for size in sizes:
        directory = workdir / f"speed-{size}"
        stackgen.write(stackgen.generate(size), directory)
        t_aimesh, report = run_aimesh(directory)
        t_checkov, failed = run_checkov(checkov, directory)
        violations = report["violations"]
        assert isinstance(violations, list)
        print(
            f"{size:>9} {t_aimesh:>9.2f} {t_checkov:>10.2f} {t_aimesh / t_checkov:>5.2f}x "
            f"{len(violations):>16} {len(failed):>17}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="250,500,1000,2000,4000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--checkov-sizes", default="250,1000")
    parser.add_argument("--no-checkov", action="store_true")
    parser.add_argument("--no-throughput", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="aimesh-bench-") as tmp:
        workdir = Path(tmp)
        if not args.no_throughput:
            throughput(sizes, args.repeat, workdir)
        if args.no_checkov:
            return 0
        checkov, why = find_checkov()
        if checkov is None:
            print(f"\ncheckov comparison skipped: {why}")
        else:
            version = subprocess.run(
                [checkov, "--version"], capture_output=True, text=True, check=False
            ).stdout.strip()
            print(
                f"\ncheckov {version} ({checkov}); benchmarks/requirements.txt pins "
                f"{CHECKOV_VERSION}"
            )
            speed(checkov, [int(s) for s in args.checkov_sizes.split(",") if s], workdir)
        catches(checkov, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
