"""Time and peak memory to evaluate the Pulumi program offline, per stack and as models grow.

    .venv/bin/python benchmarks/program.py [--models 1,5,10,25,50,100] [--repeat 3]

The program runs under Pulumi's mocks (tools.offline), i.e. everything `pulumi preview` asks of
the language host, without the engine and providers. Time is the best of --repeat runs without
tracing; peak memory is measured in a separate run under tracemalloc (which slows Python down, so
its time is not reported). Growth: the dev stack's config with its model list replaced by N copies
of its first model (renamed model-0 ... model-N-1). Benchmarks print figures; nothing asserts them.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import offline  # noqa: E402


def measure(run: Callable[[], offline.Evaluation], repeat: int) -> tuple[float, float, int]:
    """(best seconds, peak MiB, resources registered)."""
    best = float("inf")
    resources = 0
    for _ in range(repeat):
        started = time.perf_counter()
        evaluation = run()
        best = min(best, time.perf_counter() - started)
        resources = len(evaluation.resources)
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best, peak / 2**20, resources


def synthetic_config(models: int) -> tuple[dict[str, str], list[str]]:
    """The dev stack's config with `models` copies of its first model."""
    config, secret_keys = offline.stack_config("dev")
    stack_file = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    template: Mapping[str, Any] = stack_file["config"]["aimesh:models"][0]
    copies = []
    for i in range(models):
        model = copy.deepcopy(dict(template))
        model["name"] = f"model-{i}"
        copies.append(model)
    config["aimesh:models"] = json.dumps(copies)
    return config, secret_keys


def fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    return my - b * mx, b


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="1,5,10,25,50,100")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")

    print("\nper stack (the stack files of the project)")
    print(f"{'stack':<8} {'resources':>9} {'seconds':>8} {'ms/res':>7} {'peak MiB':>9}")
    for stack in offline.stacks():

        def evaluate(s: str = stack) -> offline.Evaluation:
            return offline.evaluate_stack(s)

        seconds, peak, resources = measure(evaluate, args.repeat)
        print(
            f"{stack:<8} {resources:>9} {seconds:>8.3f} {1000 * seconds / resources:>7.2f} "
            f"{peak:>9.1f}"
        )

    counts = [int(n) for n in args.models.split(",") if n]
    print("\ngrowth: the dev stack with N copies of its first model")
    print(f"{'models':>6} {'resources':>9} {'seconds':>8} {'ms/res':>7} {'peak MiB':>9}")
    rows = []
    for n in counts:
        config, secrets = synthetic_config(n)

        def run(c: dict[str, str] = config, s: list[str] = secrets) -> offline.Evaluation:
            return offline.evaluate(c, secret_keys=s, stack="dev")

        seconds, peak, resources = measure(run, args.repeat)
        rows.append((n, resources, seconds, peak))
        print(
            f"{n:>6} {resources:>9} {seconds:>8.3f} {1000 * seconds / resources:>7.2f} {peak:>9.1f}"
        )
    if len(rows) >= 2:
        a, b = fit([float(r[0]) for r in rows], [r[2] for r in rows])
        ma, mb = fit([float(r[0]) for r in rows], [r[3] for r in rows])
        ra, rb = fit([float(r[0]) for r in rows], [float(r[1]) for r in rows])
        print(
            f"fit: {a:.3f}s + {1000 * b:.1f}ms per model; {ma:.1f} MiB + {mb:.2f} MiB per model; "
            f"{ra:.0f} + {rb:.1f} resources per model"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
