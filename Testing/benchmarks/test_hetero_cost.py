"""benchmarks/hetero_cost.py counts the passes a hetero-modal model runs: two with label sources, one distilled."""

from __future__ import annotations

import pytest
from factory import load_benchmark

from ACELib.inference import create_model


@pytest.fixture(scope="module")
def script():
    return load_benchmark("hetero_cost")


def test_label_sources_cost_a_t1_pass_more_and_one_pass_does_not(script):
    kw = {"base_channels": 4, "depth": 2, "seed": 0}
    mods = script.MODS

    def flops(passes, names):
        model = script.with_passes(create_model(script.LABELS, mods, hetero=True, **kw), passes)
        return len(script.passes_of(model, names)), script.flops_per_voxel(model, names, side=8)

    n_two, two = flops("sources", mods)
    n_one, one = flops("one", mods)
    _, t1 = flops("one", mods[:1])
    assert (n_two, n_one) == (2, 1)
    assert two == pytest.approx(one + t1)  # the T1 pass comes on top of the pass over all four
    assert flops("sources", mods[:1]) == (1, t1)  # T1 alone is one pass either way
