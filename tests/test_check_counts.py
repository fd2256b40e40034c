"""Each request check runs once per export: the precision, the verifier and the image size are
checked before anything is built, and no later layer checks them again."""

from __future__ import annotations

import contextlib
import io
from collections import Counter

import pytest

from mvit.exporters import api, cli, multisize, quantize, recorded, resolve

pytest.importorskip("onnxruntime")


@pytest.fixture()
def calls(monkeypatch):
    counted: Counter[str] = Counter()
    for module, name in (
        (quantize, "check_precision"),
        (api, "check_verifier"),
        (resolve, "check_size_bounds"),
        (multisize, "check_size_bounds"),
        (recorded, "check_size_bounds"),
    ):
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


def test_multi_size_export_checks_each_request_once(tmp_path, calls):
    _export(tmp_path, "--image-size", "64,128")
    # Each size once, before any network is built: resolving it does not check it again.
    assert calls == {"check_precision": 1, "check_verifier": 1, "check_size_bounds": 2}
    assert (tmp_path / "mobilevit_xxs_A_64-128_fp32.onnx.report.json").is_file()


def test_multi_config_export_checks_each_size_once(tmp_path, calls):
    _export(tmp_path, "--image-size", "64,128", "--config", "A,B", "--no-verify")
    assert calls["check_precision"] == 1 and calls["check_size_bounds"] == 2  # each size once, not once per config


def test_a_size_too_large_in_a_list_is_still_refused_before_any_network_is_built(tmp_path, calls, monkeypatch):
    built: list[str] = []
    real = resolve.create_model
    monkeypatch.setattr(resolve, "create_model", lambda *a, **k: built.append(a[0]) or real(*a, **k))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exc:
        cli.main(["--target", "onnx", "--model", "mobilevit_xxs", "--precision", "fp32", "--out", str(tmp_path), "--image-size", "64,99999"])
    assert exc.value.code == 2 and "--image-size 99999 is too large" in err.getvalue(), err.getvalue()
    assert built == [] and calls["check_size_bounds"] == 2


def test_verifying_an_artefact_checks_its_recorded_size_once(tmp_path, calls):
    _export(tmp_path, "--image-size", "64", "--no-verify")
    calls.clear()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as exc:
        cli.verify_main([str(tmp_path / "mobilevit_xxs_A_64_fp32.onnx")])
    assert exc.value.code == 0, err.getvalue()
    assert calls["check_size_bounds"] == 1  # read from the artefact, checked there, not again when the model is rebuilt
