"""Output checks: never over an input, never over an existing file unless asked, writable before any work."""

import os

import pytest

from ACELib.io.outputs import check_outputs


def test_output_equal_to_an_input_is_refused_even_with_overwrite(tmp_path):
    t1 = tmp_path / "t1.nii.gz"
    t1.write_bytes(b"x")
    for same in (t1, tmp_path / "sub" / ".." / "t1.nii.gz"):
        with pytest.raises(ValueError, match=r"output .*t1.nii.gz' is the input .*t1.nii.gz': it would be destroyed"):
            check_outputs([same], [t1], overwrite=True)
    os.link(t1, tmp_path / "hard.nii.gz")
    with pytest.raises(ValueError, match="it would be destroyed"):
        check_outputs([tmp_path / "hard.nii.gz"], [t1], overwrite=True)
    assert t1.read_bytes() == b"x"


@pytest.mark.parametrize("kind, error, message", [
    ("exists", FileExistsError, r"out.csv' exists; pass overwrite=True \(--overwrite\)"),
    ("parent_is_file", NotADirectoryError, r"out.csv': .*blocker' is a file, not a folder"),
    ("read_only", PermissionError, r"out.csv': the folder .*ro' is not writable"),
    ("is_folder", IsADirectoryError, r"out.csv' is a folder; expected a file path"),
])
def test_unwritable_outputs_are_named(tmp_path, kind, error, message):
    out = tmp_path / "out.csv"
    if kind == "exists":
        out.write_text("keep")
    elif kind == "parent_is_file":
        (tmp_path / "blocker").write_text("")
        out = tmp_path / "blocker" / "deeper" / "out.csv"
    elif kind == "read_only":
        if os.geteuid() == 0:
            pytest.skip("root can write into read-only folders")
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o500)
        out = tmp_path / "ro" / "out.csv"
    else:
        out.mkdir()
    with pytest.raises(error, match=message):
        check_outputs([out], [])
    if kind == "exists":
        assert out.read_text() == "keep"
