"""Where a chart is installed from: upstream, a local directory or a mirror (`aimesh:chartSource`).

Every source serves the same chart at the same pinned version (versions.py); only the place
changes. A directory holds what `helm pull <chart> --version <v>` writes (`<chart>-<v>.tgz`) or an
unpacked `<chart>/` folder whose Chart.yaml says that version; a mirror is one https Helm
repository or one oci:// registry base holding every chart under its upstream name.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimesh.settings import ConfigError, Settings


@dataclass(frozen=True)
class ChartLocation:
    """What Helm is given: a chart reference and, for Helm repositories, the repository URL."""

    chart: str
    repo: str | None


def chart_name(chart: str) -> str:
    """The chart's own name: `oci://ghcr.io/kserve/charts/kserve-crd` -> `kserve-crd`."""
    return chart.rstrip("/").rsplit("/", 1)[-1]


def locate(settings: Settings, chart: str, version: str, repo: str | None) -> ChartLocation:
    """Where to install `chart` at `version` from, for this stack's chart source.

    Raises ConfigError naming `aimesh:chartDirectory` when the directory lacks the chart at the
    pinned version (never falls back to another version or to the internet)."""
    name = chart_name(chart)
    if settings.chart_source == "mirror":
        mirror = (settings.chart_mirror or "").rstrip("/")
        if mirror.startswith("oci://"):
            return ChartLocation(f"{mirror}/{name}", None)
        return ChartLocation(name, mirror)
    if settings.chart_source == "directory":
        return ChartLocation(
            str(_in_directory(Path(settings.chart_directory or ""), name, version)), None
        )
    return ChartLocation(chart, repo)


def _in_directory(directory: Path, name: str, version: str) -> Path:
    archive = directory / f"{name}-{version}.tgz"
    if archive.is_file():
        return archive.resolve()
    folder = directory / name
    chart_yaml = folder / "Chart.yaml"
    if chart_yaml.is_file():
        found = re.search(r"^version:\s*['\"]?([^'\"\s]+)", chart_yaml.read_text(), flags=re.M)
        if found and found.group(1) == version:
            return folder.resolve()
        raise ConfigError(
            f"aimesh:chartDirectory: {chart_yaml} is version "
            f"{found.group(1) if found else '(none)'}, aimesh pins {name} {version}; put "
            f"{name}-{version}.tgz (`helm pull ... --version {version}`) there instead"
        )
    raise ConfigError(
        f"aimesh:chartDirectory: {directory} has neither {archive.name} nor {name}/Chart.yaml; "
        f"`helm pull <repo>/{name} --version {version} -d {directory}` puts it there "
        "(or list the component under aimesh:bringYourOwn if the cluster already runs it)"
    )


# The annotation a Release's mirror stamps on every object it renders: "<namespace>/<release>
# sha256:<digest of the chart inputs>". The policy pack computes the same digest from the
# Release's own inputs (policy-pack/aimesh_policies/visibility.py, its own code: the pack never
# imports the program), so a Release counts as judged only when objects rendered from exactly
# its chart, version, repository, CRD switch and values are in the stack.
RENDERED_FROM = "aimesh.io/rendered-from"


def _canonical(value: Any) -> Any:
    """Chart inputs as the engine hands them to the pack: nulls dropped (Helm treats a null as
    "remove", and the provider drops them from a Release's inputs, list items included) and
    whole numbers as integers (every number arrives as a float)."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value if v is not None]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def rendered_from(
    *,
    release: str,
    namespace: str,
    where: ChartLocation,
    version: str,
    skip_crds: bool,
    values: Mapping[str, Any],
) -> str:
    """The `RENDERED_FROM` stamp of the chart inputs a Release is installed with."""
    inputs: dict[str, Any] = {
        "name": release,
        "namespace": namespace,
        "chart": where.chart,
        "version": version,
        "repo": where.repo,
        "skipCrds": skip_crds,
        "values": dict(values),
        "valueYamlFiles": [],
    }
    text = json.dumps(_canonical(inputs), sort_keys=True, separators=(",", ":"))
    return f"{namespace}/{release} sha256:{hashlib.sha256(text.encode()).hexdigest()}"
