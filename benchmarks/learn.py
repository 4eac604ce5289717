"""Lines per second and peak memory of `python -m tools.learn`, as the logs grow.

    .venv/bin/python benchmarks/learn.py [--lines 100000,400000,1000000] [--repeat 2] [--gzip]

Generates access logs in aimesh's format for the dev stack (server-side records at the models
from configured and unknown callers, gateway records with JWT subjects, the same requests seen
again at the model and client side, traffic to other services, 0.1 % malformed lines), writes
them to a temporary file and runs the tool's pipeline on it in-process: read (tools/accesslog.py)
-> aggregate -> propose -> render. Wall time is the best of --repeat runs, CPU time (the
process's, so a busy machine does not inflate it) is the best as well; peak memory is measured
in a separate run under tracemalloc (slower, not timed). Flat memory across sizes is the point:
the tool keeps callers and routes, never lines. Nothing asserts the figures.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import access_matrix, accesslog, learn  # noqa: E402

TD = "spiffe://cluster.local"
CALLERS = [
    ("fraud-detector", "ns/payments/sa/checkout", "POST", "/v1/models/fraud-detector:predict"),
    ("fraud-detector", "ns/observability-probes/sa/prober", "GET", "/v1/models/fraud-detector"),
    ("fraud-detector", "ns/risk/sa/risk-engine", "POST", "/v1/models/fraud-detector:predict"),
    ("churn-scorer", "ns/crm/sa/crm-backend", "POST", "/v2/models/churn-scorer/infer"),
    ("churn-scorer", "ns/marketing/sa/campaign", "GET", "/v2/models/churn-scorer/versions/3/ready"),
]


def lines(count: int, seed: int = 7) -> Iterator[str]:
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    for i in range(count):
        second = i % 86400
        when = f"2026-12-01T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}.000Z"
        roll = rng.random()
        if roll < 0.001:
            yield '{"method": "POST", "path": "/v1/mod'  # truncated
            continue
        record: dict[str, object] = {
            "start_time": when,
            "response_code": 200,
            "response_flags": "-",
            "bytes_received": rng.randint(100, 4000),
            "bytes_sent": rng.randint(50, 900),
            "duration_ms": rng.randint(2, 80),
            "request_id": f"{i:016x}",
            "user_agent": "python-requests/2.32",
        }
        if roll < 0.70:
            model, principal, method, path = rng.choice(CALLERS)
            record.update(
                namespace=model,
                workload=f"{model}-predictor",
                source_principal=f"{TD}/{principal}",
                method=method,
                path=path,
                upstream_cluster="inbound|8080||",
                shadow_allow_result=rng.choice(("allowed", "denied")),
            )
        elif roll < 0.80:
            record.update(
                namespace="istio-ingress",
                workload="aimesh-ingressgateway",
                authority="churn-scorer.models.aimesh.local",
                method="POST",
                path="/v2/models/churn-scorer/infer",
                request_principal_issuer="https://login.partner-acme.example",
                request_principal_subject=f"client-{rng.randint(0, 40)}",
                upstream_cluster="outbound|80||churn-scorer-predictor.churn-scorer.svc.cluster.local",
            )
        elif roll < 0.88:
            record.update(
                namespace="churn-scorer",
                source_principal=f"{TD}/ns/istio-ingress/sa/aimesh-ingressgateway",
                method="POST",
                path="/v2/models/churn-scorer/infer",
                upstream_cluster="inbound|8080||",
            )
        elif roll < 0.95:
            record.update(
                namespace="payments",
                method="POST",
                path="/v1/models/fraud-detector:predict",
                authority="fraud-detector-predictor.fraud-detector.svc.cluster.local:80",
                upstream_cluster="outbound|80||fraud-detector-predictor.fraud-detector.svc.cluster.local",
            )
        else:
            record.update(
                namespace="shop",
                source_principal=f"{TD}/ns/shop/sa/frontend",
                method="GET",
                path=f"/cart/{rng.randint(0, 5000)}",
                authority="cart.shop.svc.cluster.local",
                upstream_cluster="inbound|8080||",
            )
        yield json.dumps(record)


def pipeline(view: learn.StackView, path: Path) -> accesslog.ReadStats:
    stats = accesslog.ReadStats()
    seen = learn.learn(view, accesslog.read([str(path)], stats), stats)
    reports = learn.propose(view, seen)
    learn.render_patch("dev", reports, seen, stats)
    learn.render_summary("dev", reports, seen, stats, 1)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", default="100000,400000,1000000")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--gzip", action="store_true", help="gzip the generated logs")
    args = parser.parse_args()
    view = learn.StackView.of(access_matrix.load("dev"))
    print(
        "| lines | log MB | wall s | lines/s (wall) | CPU s | lines/CPU-s | MB/CPU-s "
        "| peak MiB (tracemalloc) | malformed |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as directory:
        for count in (int(n) for n in args.lines.split(",")):
            path = Path(directory) / ("access.log.gz" if args.gzip else "access.log")
            raw = 0
            with gzip.open(path, "wt") if args.gzip else path.open("w") as out:
                for line in lines(count):
                    raw += len(line) + 1
                    out.write(line + "\n")
            wall = cpu = float("inf")
            stats = accesslog.ReadStats()
            for _ in range(args.repeat):
                started, started_cpu = time.perf_counter(), time.process_time()
                stats = pipeline(view, path)
                wall = min(wall, time.perf_counter() - started)
                cpu = min(cpu, time.process_time() - started_cpu)
            tracemalloc.start()
            pipeline(view, path)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(
                f"| {count:,} | {raw / 1e6:.0f} | {wall:.1f} | {count / wall:,.0f} | {cpu:.1f} | "
                f"{count / cpu:,.0f} | {raw / 1e6 / cpu:.1f} | {peak / 2**20:.2f} | "
                f"{stats.malformed:,} |"
            )


if __name__ == "__main__":
    main()
