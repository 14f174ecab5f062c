"""Atomic writes of detached-header images (.mhd, .nhdr) leave the normal data-file name."""

import numpy as np
import pytest

from ACELib.io.image import Geometry, read_image, write_image

GEOM = Geometry((4, 3, 2), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))


@pytest.mark.parametrize("name, plain, packed", [("a.mhd", "a.raw", "a.zraw"), ("b.nhdr", "b.raw", "b.raw.gz")])
def test_sidecar_has_the_normal_name_and_the_old_one_goes(tmp_path, name, plain, packed):
    arr = np.arange(24, dtype=np.float32).reshape(GEOM.shape)
    write_image(tmp_path / name, arr, GEOM, compress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, plain])
    write_image(tmp_path / name, arr + 1, GEOM, compress=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, packed])
    assert packed in (tmp_path / name).read_text(errors="replace")
    np.testing.assert_array_equal(read_image(tmp_path / name)[0], arr + 1)
