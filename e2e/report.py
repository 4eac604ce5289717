"""The machine-readable e2e report: each step's verdict, seconds and resource counts."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ScenarioError(Exception):
    """A scenario expectation did not hold (the message says which)."""


@dataclass
class Step:
    name: str
    description: str
    status: str = "running"
    seconds: float = 0.0
    counts: dict[str, Any] = field(default_factory=dict)
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "status": self.status,
            "seconds": round(self.seconds, 2),
        }
        if self.counts:
            out["counts"] = self.counts
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass
class Report:
    """Steps in order; `step()` times one and records pass/fail; the file is rewritten after
    every step so a killed run still leaves what it got through."""

    path: Path
    meta: dict[str, Any] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def failed(self) -> bool:
        return any(s.status == "fail" for s in self.steps)

    @contextmanager
    def step(self, name: str, description: str) -> Iterator[Step]:
        step = Step(name, description)
        self.steps.append(step)
        t0 = time.monotonic()
        print(f"==> {name}: {description}", flush=True)
        try:
            yield step
        except Exception as err:
            step.status = "fail"
            text = str(err) if isinstance(err, ScenarioError) else traceback.format_exc(limit=8)
            # A failed CLI command: its Diagnostics section says why (the outputs do not).
            # The stack outputs that follow would only push the diagnostics out of the limit.
            start = text.find("Diagnostics:")
            if start >= 0:
                text = text[start:].split("\nOutputs:\n", 1)[0]
            step.detail = text[:6000]
            raise
        else:
            step.status = "pass"
        finally:
            step.seconds = time.monotonic() - t0
            print(
                f"<== {name}: {step.status} in {step.seconds:.1f}s {step.counts or ''}", flush=True
            )
            if step.status == "fail":
                print(step.detail, flush=True)
            self.write()

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            **self.meta,
            "result": "fail" if self.failed else "pass",
            "seconds": round(time.monotonic() - self.started, 1),
            "steps": [s.as_json() for s in self.steps],
        }
        self.path.write_text(json.dumps(data, indent=2) + "\n")

    def summary(self) -> str:
        lines = [f"{'step':34} {'result':6} {'seconds':>8}  counts"]
        for s in self.steps:
            counts = ", ".join(f"{k}={v}" for k, v in s.counts.items())
            lines.append(f"{s.name:34} {s.status:6} {s.seconds:8.1f}  {counts}")
        passed = sum(s.status == "pass" for s in self.steps)
        failed = sum(s.status == "fail" for s in self.steps)
        lines.append(f"{passed} passed, {failed} failed")
        return "\n".join(lines)
