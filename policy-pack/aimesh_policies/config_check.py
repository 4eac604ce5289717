"""The pack checks the policy config it is handed before it judges anything.

The Pulumi engine validates each policy's properties against that policy's config schema, but a
schema can only say what a known property must look like: a misspelt property
(`exemptNamespace`) or policy name passes the engine silently and is then ignored, so an intended
exemption is lost and the preview fails for a reason nobody sees. The engine forwards every entry
of `--policy-pack-config` in Configure, known or not, so the pack refuses the unknown ones there,
at its start, with the nearest valid name.

`install_configure_guard()` wraps the SDK's Configure handler (policy-pack/__main__.py calls it
before `PolicyPack(...)` starts the server). The SDK offers no hook for this, so the wrapper is on
its (private) servicer class; pulumi-policy is pinned and tests/policy/test_protocol.py drives a
real pack through the guard, so an SDK change that moves it fails a test instead of vanishing.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aimesh_policies.framework import Policy

ALL: str = "all"  # the engine's key for "every policy of the pack"


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to a misspelt `word`, if one is close enough to be meant."""
    found = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    match = nearest(word, candidates)
    return f"; did you mean `{match}`?" if match else ""


def unknown_names(config: Mapping[str, Mapping[str, Any]], policies: Sequence[Policy]) -> list[str]:
    """Problems with the names in `config` (policy name -> its properties): policies the pack
    does not have and properties a policy does not take. Each names the key path, the value
    given and, where one is close, the name that was probably meant."""
    by_name = {p.name: p for p in policies}
    problems = []
    for name, properties in config.items():
        if name == ALL:
            continue
        policy = by_name.get(name)
        if policy is None:
            problems.append(
                f"{name}: no such policy in this pack{_did_you_mean(name, by_name)} "
                "(docs/policies.md lists them)"
            )
            continue
        known = policy.config_schema()
        for key, value in properties.items():
            if key not in known:
                given = json.dumps(value, sort_keys=True, default=str)
                problems.append(
                    f"{name}.{key}: {given}: not a property of this policy"
                    f"{_did_you_mean(key, known)}"
                )
    return problems


def install_configure_guard(policies: Sequence[Policy]) -> None:
    """Make the SDK's Configure refuse config with unknown policies or properties
    (INVALID_ARGUMENT, every problem listed) instead of ignoring them."""
    import grpc
    from google.protobuf import json_format
    from pulumi_policy import policy as sdk

    servicer = sdk._PolicyAnalyzerServicer
    original: Callable[[Any, Any, Any], Any] = servicer.Configure

    def configure(self: Any, request: Any, context: Any) -> Any:
        config = {
            name: json_format.MessageToDict(entry.properties)
            for name, entry in request.policyConfig.items()
        }
        problems = unknown_names(config, policies)
        if problems:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "invalid --policy-pack-config for this pack:\n  " + "\n  ".join(problems),
            )
        return original(self, request, context)

    # Replacing the handler is the point (the SDK has no hook for config validation).
    servicer.Configure = configure  # type: ignore[method-assign]
