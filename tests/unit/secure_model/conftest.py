"""The two models of the access tests' stack, built: `alpha` (every kind of caller) and `beta`."""

from __future__ import annotations

import pytest

from aimesh.builders import secure_model
from tests.unit.test_access import GATEWAY, stack


@pytest.fixture
def alpha() -> secure_model.ModelObjects:
    settings = stack()
    return secure_model.build(settings, settings.models[0], GATEWAY)


@pytest.fixture
def beta() -> secure_model.ModelObjects:
    settings = stack()
    return secure_model.build(settings, settings.models[1], GATEWAY)
