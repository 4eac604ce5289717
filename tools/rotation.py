"""Is this change of the mesh CA config a safe rotation step? (docs/pki.md, "Rotating the root")

    python -m tools.rotation --stack prod [--against REV]

Compares `Pulumi.<stack>.yaml` as it is now with the same file at git revision REV (default
HEAD: what is deployed, if you deploy what is committed) and prints why the change would cut
workloads off (`aimesh.builders.mesh_ca.rotation_problems`): a root trusted too late, a root
removed too early, a mode change. Exit status: 0 safe (or nothing to compare), 1 unsafe, 2 the
check could not run. Secrets play no part: the ones the file lacks are stood in for.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from aimesh import settings
from aimesh.builders import mesh_ca
from tools import offline

ROOT = Path(__file__).resolve().parent.parent


def settings_of(stack_values: Mapping[str, Any]) -> settings.Settings | None:
    """Settings of a stack file's `config:` (project defaults applied). Missing secrets and the
    like are stood in for; a missing root or intermediate CA is not (a stand-in would differ
    every time): None then, as there is no PKI to compare yet."""
    values = offline.project_defaults(ROOT / "Pulumi.yaml")
    values.update(stack_values)
    config, _ = offline.encode_config(values)
    random_pki = ("meshTrustRoots", "meshCaCertificate")
    missing = [m for m in offline.missing_values(config) if not m.key.startswith(random_pki)]
    if missing:
        config, _ = offline.encode_config(offline.stand_ins_for(values, missing))
    raw = {
        key.split(":", 1)[1]: settings.decode_value(value)
        for key, value in config.items()
        if key.startswith(f"{offline.PROJECT}:")
    }
    try:
        return settings.parse(raw)
    except settings.MissingValuesError:
        return None


def _ca_state(config: settings.Settings) -> tuple[Any, ...]:
    """What a rotation step may change: mode, issuer, trusted roots (by fingerprint), the
    issuing root."""
    return (
        config.mesh_ca,
        config.mesh_ca_issuer,
        tuple(sorted(mesh_ca.issuer_ref(config).items())),
        tuple(c.fingerprint for c in config.mesh_ca_chain),
        tuple(r.certificate.fingerprint for r in config.mesh_trust_roots),
        config.issuing_root.certificate.fingerprint if config.issuing_root else None,
    )


def committed(stack: str, revision: str) -> Mapping[str, Any] | None:
    """`config:` of Pulumi.<stack>.yaml at `revision`, None when it did not exist there."""
    shown = subprocess.run(
        ["git", "show", f"{revision}:Pulumi.{stack}.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if shown.returncode != 0:
        return None
    return (yaml.safe_load(shown.stdout) or {}).get("config") or {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.rotation", description=__doc__)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--against", default="HEAD", help="git revision (default HEAD)")
    args = parser.parse_args(argv)
    current_file = ROOT / f"Pulumi.{args.stack}.yaml"
    try:
        before_values = committed(args.stack, args.against)
        if before_values is None:
            print(f"Pulumi.{args.stack}.yaml does not exist at {args.against}: nothing to compare")
            return 0
        after_values = (yaml.safe_load(current_file.read_text()) or {}).get("config") or {}
        before, after = settings_of(before_values), settings_of(after_values)
    except (OSError, yaml.YAMLError, settings.ConfigError) as exc:
        print(f"rotation check could not run: {exc}", file=sys.stderr)
        return 2
    if before is None or after is None:
        print(f"Pulumi.{args.stack}.yaml: no trust roots configured yet: nothing to compare")
        return 0
    if _ca_state(before) == _ca_state(after):
        print(f"Pulumi.{args.stack}.yaml against {args.against}: the mesh CA does not change")
        return 0
    problems = mesh_ca.rotation_problems(before, after)
    if not problems:
        print(
            f"Pulumi.{args.stack}.yaml against {args.against}: a safe step. Apply it, then wait "
            f"one workload certificate lifetime ({after.mesh_cert_lifetime}) before the next."
        )
        return 0
    print(f"Pulumi.{args.stack}.yaml against {args.against}: this change would cut workloads off:")
    for problem in problems:
        print(f"  - {problem}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
