"""Guardrails: the runtime guardrails (ValidatingAdmissionPolicies and their bindings).

Registered first, before any chart or model, so that every object the platform and the models
create afterwards is admitted by them (builders/guardrails.py has the what and why). They are
built-in admission: no CRD, webhook or controller to wait for.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from aimesh.builders import gateway, guardrails
from aimesh.components.manifests import child_options, register, upstream
from aimesh.settings import Settings

TYPE = "aimesh:guardrails:Guardrails"


@dataclass(frozen=True)
class GuardrailsArgs:
    """The platform's settings: the models (their namespaces, identities and batch windows)."""

    settings: Settings


class Guardrails(pulumi.ComponentResource):
    """Every guardrail policy and its binding. `ready`: what models wait for.

    A binding waits for its policy: a binding naming a missing policy is accepted but inert
    until the policy exists, so the pair counts as created only when both are."""

    ready: list[pulumi.Resource]

    def __init__(
        self, name: str, args: GuardrailsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        settings = args.settings
        waits = upstream(opts)
        chosen = guardrails.guardrails(settings, gateway.reference(settings))
        scope = guardrails.scope(settings)
        self.ready = []
        for guardrail in chosen:
            policy = register(
                f"{name}-vap-{guardrail.name}",
                guardrails.policy(guardrail),
                child_options(self, waits),
            )
            bound = register(
                f"{name}-vapb-{guardrail.name}",
                guardrails.binding(guardrail, scope.of(guardrail.scope)),
                child_options(self, waits, [policy]),
            )
            self.ready += [policy, bound]
        self.register_outputs({"guardrails": [g.name for g in chosen]})
