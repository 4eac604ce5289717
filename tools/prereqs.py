"""Check the tools `make up` needs: a Python that can build the virtualenv, pulumi, docker
(with a daemon that answers), kind, go (the policy pack's descriptor set), kubectl.

Runs before the virtualenv exists, with whatever `python3` the machine has (macOS ships 3.9),
so it uses the standard library only and nothing that fails to import on an old Python: the
version check must be able to speak. Prints what is missing and how to install it; exits 1 if
anything is missing.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import TypeAlias

    Which: TypeAlias = Callable[[str], str | None]
    Run: TypeAlias = Callable[[Sequence[str]], int]

# pyproject.toml `requires-python`: the pinned dependencies and the program need it.
MIN_PYTHON = (3, 11)


@dataclass(frozen=True)
class Tool:
    name: str
    why: str
    linux: str
    macos: str
    docs: str


TOOLS = (
    Tool(
        "pulumi",
        "runs the program (`pulumi up` of the dev stack, local state backend)",
        "curl -fsSL https://get.pulumi.com | sh",
        "brew install pulumi/tap/pulumi",
        "https://www.pulumi.com/docs/iac/download-install/",
    ),
    Tool(
        "docker",
        "kind runs the Kubernetes node as a Docker container",
        "install Docker Engine for your distribution, then `sudo usermod -aG docker $USER`",
        "install Docker Desktop (or `brew install colima docker && colima start`)",
        "https://docs.docker.com/engine/install/",
    ),
    Tool(
        "kind",
        "the program creates and deletes the local cluster with `kind`",
        "go install sigs.k8s.io/kind@latest  (or download the release binary)",
        "brew install kind",
        "https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    ),
    Tool(
        "go",
        "builds, once, the Envoy/Istio API descriptor set the policy pack decodes EnvoyFilters "
        "and mesh config against (without it the pack cannot verify them and blocks the update)",
        "install Go >= 1.25 (https://go.dev/dl/ or your package manager)",
        "brew install go",
        "https://go.dev/doc/install",
    ),
    Tool(
        "kubectl",
        "to look at the cluster (`kubectl get pods -A`) and for the runbooks",
        "curl -LO https://dl.k8s.io/release/$(curl -Ls https://dl.k8s.io/release/stable.txt)"
        "/bin/linux/amd64/kubectl && sudo install kubectl /usr/local/bin/",
        "brew install kubectl",
        "https://kubernetes.io/docs/tasks/tools/",
    ),
)


def _run_quietly(argv: Sequence[str]) -> int:
    try:
        return subprocess.run(
            list(argv),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=20,
            check=False,
        ).returncode
    except (OSError, subprocess.TimeoutExpired):
        return 1


def _can_make_venv() -> bool:
    # Debian/Ubuntu split `venv`'s pip bootstrap into the python3-venv package.
    return importlib.util.find_spec("ensurepip") is not None


def python_problems(
    version: tuple[int, ...], can_make_venv: bool, system: str | None = None
) -> list[str]:
    """What is wrong with the Python that `make` builds .venv and policy-pack/venv with."""
    system = system or platform.system()
    found: list[str] = []
    want = ".".join(map(str, MIN_PYTHON))
    if tuple(version[:2]) < MIN_PYTHON:
        how = (
            f"brew install python@{want}"
            if system == "Darwin"
            else f"install python{want} and python{want}-venv with your package manager"
        )
        found.append(
            f"python {'.'.join(map(str, version[:2]))} is too old: aimesh needs Python >= {want}."
            f"\n    install: {how}\n    then:    make up PYTHON=python{want}"
        )
    elif not can_make_venv:
        minor = ".".join(map(str, version[:2]))
        found.append(
            "python cannot create virtualenvs (the `ensurepip` module is missing).\n"
            f"    install: sudo apt-get install python{minor}-venv"
        )
    return found


def problems(
    which: Which = shutil.which,
    run: Run = _run_quietly,
    system: str | None = None,
    version: tuple[int, ...] | None = None,
    can_make_venv: Callable[[], bool] = _can_make_venv,
) -> list[str]:
    """One message per missing prerequisite, each saying how to get it ([] when all is well)."""
    system = system or platform.system()
    found = python_problems(
        tuple(sys.version_info[:2]) if version is None else version, can_make_venv(), system
    )
    for tool in TOOLS:
        if which(tool.name) is None:
            how = tool.macos if system == "Darwin" else tool.linux
            found.append(
                f"{tool.name} is not on PATH ({tool.why}).\n    install: {how}\n"
                f"    docs:    {tool.docs}"
            )
    if which("docker") is not None and run(["docker", "info"]) != 0:
        start = (
            "start Docker Desktop (or `colima start`)"
            if system == "Darwin"
            else "`sudo systemctl start docker`; if it runs, add yourself to the docker group "
            "(`sudo usermod -aG docker $USER`, then log in again)"
        )
        found.append(
            "docker is installed but its daemon does not answer (`docker info` failed).\n"
            f"    fix: {start}"
        )
    return found


def main() -> int:
    missing = problems()
    if not missing:
        print("prerequisites: python, pulumi, docker (daemon up), kind, go, kubectl - all found")
        return 0
    print(f"make up needs {len(missing)} more thing(s):\n", file=sys.stderr)
    for message in missing:
        print(f"  - {message}\n", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
