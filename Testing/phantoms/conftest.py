"""Fixtures of the phantom tests: the MNI template on a tiny 8 mm grid (about 24 x 32 x 24 voxels)."""

from __future__ import annotations

import numpy as np
import pytest

TINY_SPACING = 8.0


@pytest.fixture(scope="session")
def template():
    pytest.importorskip("nilearn", reason="the phantoms' template ships with nilearn (extra 'bench')")
    from ACELib.phantoms import load_template

    return load_template(TINY_SPACING)


@pytest.fixture
def scanner():
    from ACELib.phantoms import draw_scanner

    return draw_scanner(np.random.default_rng(123), "test-scanner", thick_slice_probability=0.0)
