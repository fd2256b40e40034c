"""Each request check runs once per export: the precision, the verifier and the image size are
checked before anything is built, and no later layer checks them again."""

from __future__ import annotations

import contextlib
import io
from collections import Counter

import pytest

from mvit.exporters import api, cli, multisize, quantize, resolve

pytest.importorskip("onnxruntime")


@pytest.fixture()
def calls(monkeypatch):
    counted: Counter[str] = Counter()
    for module, name in ((quantize, "check_precision"), (api, "check_verifier"), (resolve, "check_size_bounds"), (multisize, "check_size_bounds")):
        original = getattr(module, name)

        def wrapped(*args, _original=original, _name=name, **kwargs):
            counted[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapped)
    return counted


def _export(tmp_path, *args: str) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as exc:
        cli.main(["--target", "onnx", "--model", "mobilevit_xxs", "--precision", "fp32", "--out", str(tmp_path), *args])
    assert exc.value.code == 0, err.getvalue()


def test_single_size_export_checks_each_request_once(tmp_path, calls):
    _export(tmp_path, "--image-size", "64")
    assert calls == {"check_precision": 1, "check_verifier": 1, "check_size_bounds": 1}
    assert (tmp_path / "mobilevit_xxs_A_64_fp32.onnx.report.json").is_file()


def test_multi_size_export_checks_precision_and_verifier_once(tmp_path, calls):
    _export(tmp_path, "--image-size", "64,128")
    assert calls["check_precision"] == 1
    assert calls["check_verifier"] == 1
    # Each size: once before any network is built, once as the size it is resolved at.
    assert calls["check_size_bounds"] == 2 * 2
    assert (tmp_path / "mobilevit_xxs_A_64-128_fp32.onnx.report.json").is_file()
