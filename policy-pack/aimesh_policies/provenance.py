"""Violations in the user's language: the stack setting that generated the object, and its fix.

The pack never imports the program, so the program tells it: every object aimesh generates from
a stack setting carries the annotation `aimesh.io/setting` naming that setting
(`aimesh:models[1]`, `aimesh:outboundTrafficPolicy`). When a policy rejects such an object, the
message gains one line saying which setting to change, and how, after the Kubernetes detail.

Anyone can write that annotation on any object, so it is trusted for wording only:
- it is read after the verdict: which policies fire, at which level, on which resource, never
  depends on it (tests/policy/test_provenance.py forges it on every fixture);
- it only ever appends to a message, never replaces or removes the Kubernetes detail;
- a value that is not a plain setting path (`aimesh:<key>[<n>].<key>...`, bounded) is ignored,
  so it cannot inject text, line breaks or a fake verdict into the report.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

ANNOTATION = "aimesh.io/setting"

_PART = r"[a-z][A-Za-z0-9]{0,63}(\[[0-9]{1,4}\])?"
_SETTING = re.compile(rf"aimesh:{_PART}(\.{_PART}){{0,4}}")
_MODEL = re.compile(r"aimesh:models\[[0-9]{1,4}\]")


def setting_of(annotations: Mapping[str, object]) -> str | None:
    """The stack setting an object says it was generated from, if the value is a well-formed
    setting path; anything else (forged text, another shape) is ignored."""
    value = annotations.get(ANNOTATION)
    if isinstance(value, str) and len(value) <= 160 and _SETTING.fullmatch(value):
        return value
    return None


def _in_model(key: str, change: str) -> Callable[[str], str | None]:
    """A fix for a setting of one model: `change` with {key} = `aimesh:models[N].<key>`."""

    def fix(setting: str) -> str | None:
        model = _MODEL.match(setting)
        return change.format(key=f"{model.group(0)}.{key}") if model else None

    return fix


def _exactly(expected: str, change: str) -> Callable[[str], str | None]:
    def fix(setting: str) -> str | None:
        return change if setting == expected else None

    return fix


_EGRESS = (
    "set `aimesh:outboundTrafficPolicy: REGISTRY_ONLY` (the default) and list each external "
    "host a model needs in `aimesh:models[].egressAllowlist`"
)

# policy -> the change to the stack setting that fixes it (None: no specific advice for that
# setting, the generic sentence is used).
FIXES: Mapping[str, Callable[[str], str | None]] = {
    "kserve-inferenceservice-require-principal-allow": _in_model(
        "callers",
        "add who may call the model under `{key}` (namespace, serviceAccount, role) or grant "
        "an integration in its `integrations`; a model nobody may call should be removed",
    ),
    "istio-model-allow-require-source": _in_model(
        "callers", "name each caller by namespace and serviceAccount under `{key}`"
    ),
    "kserve-require-secure-model-storage": _in_model(
        "storageUri", "point `{key}` at gs://, s3://, https://, pvc://, hf://, oci:// or azure://"
    ),
    "istio-serviceentry-forbid-wildcard-hosts": _in_model(
        "egressAllowlist", "list exact host names in `{key}`"
    ),
    "istio-egress-forbid-allow-any": _exactly("aimesh:outboundTrafficPolicy", _EGRESS),
    "istio-mesh-require-registry-only-default": _exactly("aimesh:outboundTrafficPolicy", _EGRESS),
}


def in_user_terms(policy: str, setting: str) -> str:
    """The line appended to a violation of an object generated from `setting`."""
    advice = FIXES.get(policy)
    change = advice(setting) if advice is not None else None
    return (
        f"\nIn the stack file: this object is generated from `{setting}`; "
        + (change or "change that setting, not the object (the program regenerates it)")
        + "."
    )
