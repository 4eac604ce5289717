"""Response masking: when the Lua filter is attached (test_masking_lua.py runs the filter)."""

from __future__ import annotations

from aimesh.builders.secure_model import masking
from tests.unit.secure_model.support import one_model


def test_masking_on_outside_production_only() -> None:
    settings, m = one_model("dev")
    assert masking.masking_filter(settings, m) is not None
    settings, m = one_model("production")
    assert masking.masking_filter(settings, m) is None
    settings, m = one_model("production", responseMasking=True)
    assert masking.masking_filter(settings, m) is not None
