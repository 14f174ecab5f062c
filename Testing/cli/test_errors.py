"""Every user-facing failure of `ace` is one line naming what went wrong; --debug adds the traceback."""

import importlib.util

import pytest

from ACELib.cli import main as cli_main
from ACELib.cli.main import describe_error, main


@pytest.mark.parametrize("error, expected", [
    (PermissionError(13, "Permission denied", "/data/out/seg.nii.gz"), "'/data/out/seg.nii.gz': Permission denied"),
    (NotADirectoryError(20, "Not a directory", "/data/file/x"), "'/data/file/x': Not a directory"),
    (EOFError("Compressed file ended before the end-of-stream marker was reached"),
     "a file ended early (truncated or damaged): Compressed file ended"),
    (FloatingPointError("joint: the loss diverged"), "joint: the loss diverged"),
    (KeyError("channel_names"), "missing entry 'channel_names'"),
    (TypeError("unsupported operand"), "unsupported operand (TypeError; run with --debug for the traceback)"),
    (RuntimeError(""), "RuntimeError (RuntimeError; run with --debug"),
    (ImportError("pip install ace-segmentation[bench]"), "pip install ace-segmentation[bench]"),
])
def test_each_error_class_is_one_line(monkeypatch, capsys, error, expected):
    def fail(args):
        raise error

    assert describe_error(error).startswith(expected)
    monkeypatch.setattr(cli_main, "_commands", lambda: iter([_FakeCommand(fail)]))
    assert main(["boom"]) == 2
    err = capsys.readouterr().err
    assert err == f"ace boom: error: {describe_error(error)}\n"
    assert main(["--debug", "boom"]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err


class _FakeCommand:
    NAME, HELP = "boom", "fails"

    def __init__(self, fn):
        self.run = fn

    @staticmethod
    def add_arguments(parser):
        pass


@pytest.mark.parametrize("command", [["demo", "--output"], ["benchmark", "--scenario", "wmh", "--out"]])
def test_missing_extra_names_the_install_and_leaves_no_folder(monkeypatch, tmp_path, capsys, command):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nilearn" else real(name, *a))
    out = tmp_path / "out"
    assert main([*command, str(out)]) == 2
    err = capsys.readouterr().err
    assert "pip install ace-segmentation[bench]" in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_predict_into_a_folder_that_is_a_file_fails_before_inference(tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    image = tmp_path / "t1.nii.gz"
    image.write_bytes(b"")
    code = main(["predict", "--model", str(tmp_path / "missing.safetensors"), "--images", str(image),
                 "--out", str(blocker / "seg.nii.gz")])
    assert code == 2
    assert "blocker' is a file, not a folder" in capsys.readouterr().err
