"""Real-engine figures: `pulumi preview` with and without the policy pack, and `pulumi up`.

Uses the `make e2e` toolchain and control plane (docs/e2e.md): the real CLI, provider and pack
against kube-apiserver on 127.0.0.1. Stacks: `e2e` (the dev stack's platform and models) and a
generated stack of N models (default 100) built from the e2e stack's first model. Prints
figures; asserts nothing about them (docs/benchmarks.md).

    .venv/bin/python benchmarks/engine.py [--models 100] [--json build/e2e/bench.json]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from e2e import aimesh_steps as steps
from e2e import toolchain
from e2e.cluster import Cluster
from e2e.engine import REPO, Engine, project_copy


def timed(fn: Callable[[], Any]) -> float:
    started = time.monotonic()
    fn()
    return round(time.monotonic() - started, 1)


class Figures(dict[str, Any]):
    """The figures, each printed as soon as it is measured (a long run stopped midway still
    leaves those it got)."""

    def __setitem__(self, key: str, value: Any) -> None:
        print(f"{key}  {value}", flush=True)
        super().__setitem__(key, value)


def many_models(project: Path, count: int) -> str:
    """Pulumi.bench<count>.yaml: the e2e stack with `count` copies of its first model."""
    config = yaml.safe_load((project / "Pulumi.e2e.yaml").read_text())
    template = config["config"]["aimesh:models"][0]
    models = []
    for i in range(count):
        model = copy.deepcopy(template)
        model["name"] = f"model-{i:03d}"
        model.pop("canary", None)
        models.append(model)
    config["config"]["aimesh:models"] = models
    name = f"bench{count}"
    (project / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    # Absolute: the inline program changes the working directory to the project copy.
    json_path = args.json.resolve() if args.json else None
    tc = toolchain.current()
    toolchain.build(tc)
    figures = Figures()
    with (
        tempfile.TemporaryDirectory(prefix="aimesh-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        base = Path(tmp)
        cluster = stack.enter_context(Cluster.start(tc, base))
        engine = Engine(base / "engine", tc, secrets.token_urlsafe(24))
        engine.prepare()
        sc = steps.Scenario(
            engine=engine,
            cluster=cluster,
            project=project_copy(base / "project"),
            launcher=engine.pack_launcher(REPO / "policy-pack"),
            pack_config=REPO / "policy-pack" / "policy-config.json",
            charts=tc.charts,
        )
        steps.bring_your_own(sc)
        # `up` waits for aimesh's issuers to be Ready: cert-manager's controller makes them so.
        steps.cert_manager_controller(sc)
        steps.create_stack(sc)
        dev = sc.the_stack()
        figures["dev preview, no pack (s)"] = timed(lambda: dev.preview(diff=False))
        figures["dev preview, with pack (s)"] = timed(sc.preview)
        figures["dev up, with pack (s)"] = timed(sc.up)
        figures["dev resources"] = len(sc.deployment().get("resources", []))
        figures["dev destroy (s)"] = timed(dev.destroy)

        name = many_models(sc.project, args.models)
        sc.stack = None
        steps.create_stack(sc, name)
        big = sc.the_stack()
        figures[f"{args.models}-model preview, no pack (s)"] = timed(
            lambda: big.preview(diff=False)
        )
        figures[f"{args.models}-model preview, with pack (s)"] = timed(sc.preview)
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:{width}}  {value}")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
