"""Assemble the aimesh policy pack (the Pulumi CLI runs this file; tests never import it).

`PolicyPack` starts the analyzer gRPC server and prints its port; the policies live in the
importable package `aimesh_policies`.
"""

from aimesh_policies import PACK_NAME, all_policies, build_pulumi_policies
from aimesh_policies.config_check import install_configure_guard
from pulumi_policy import EnforcementLevel, PolicyPack

# A misspelt policy or property in --policy-pack-config is an error, not silently ignored.
install_configure_guard(all_policies())

PolicyPack(
    name=PACK_NAME,
    policies=build_pulumi_policies(),
    # Each policy carries its own level (MANDATORY for zero-trust weakening, ADVISORY for
    # hygiene); this is only the fallback.
    enforcement_level=EnforcementLevel.MANDATORY,
)
