"""A policy pack whose policies look at nothing: the cost of the protocol and the SDK alone.

NOOP_RESOURCE_POLICIES / NOOP_STACK_POLICIES (default 1 each) set how many empty policies it holds:
pulumi_policy decodes a resource's properties once per policy per Analyze call, so a floor with as
many policies as the measured pack separates SDK overhead from the cost of the checks themselves.
"""

import os

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)


def _nothing(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    return None


def _nothing_stack(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    return None


resource_count = int(os.environ.get("NOOP_RESOURCE_POLICIES", "1"))
stack_count = int(os.environ.get("NOOP_STACK_POLICIES", "1"))

PolicyPack(
    name="noop",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        *(
            ResourceValidationPolicy(
                name=f"noop-resource-{i}", description="Checks nothing.", validate=_nothing
            )
            for i in range(resource_count)
        ),
        *(
            StackValidationPolicy(
                name=f"noop-stack-{i}", description="Checks nothing.", validate=_nothing_stack
            )
            for i in range(stack_count)
        ),
    ],
)
