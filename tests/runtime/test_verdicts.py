"""Parity's verdict binds (issue 18): `run`, `Recognizer`, `bench` and the Triton repository
serve only a model file that parity.json lists as passed with this file's sha256. A FAILED
artefact, a file parity never judged, a changed file and a folder without parity.json are
refused in one line naming the file, its verdict and the way out; --allow-unverified runs it
anyway, warns once, and the summary says so. Real exports, real processes."""

import json
import shutil

import pytest

from prp_deploy import Recognizer
from prp_deploy.export.onnx_export import perturb_onnx_weights
from prp_deploy.runtime.artifacts import UnverifiedModel, verdict
from tests.conftest import shared_clips
from tests.runtime.test_many import cli

VIDEO = "ucf101/v_BaseballPitch_g03_c01.avi"


@pytest.fixture(scope="module")
def failed_run(exported, tmp_path_factory):
    """A copy of the exported run whose model.onnx was damaged and judged again: parity FAILED, for real."""
    run = tmp_path_factory.mktemp("failed") / "run"
    shutil.copytree(exported.parent, run)
    perturb_onnx_weights(run / "export" / "model.onnx")
    r = cli("export", str(run), "--verify-only", "--parity-clips", "8")
    assert r.returncode == 1 and "parity FAILED for model.onnx" in r.stderr, r.stderr
    return run


def _video():
    return str(shared_clips("ucf101").parent / VIDEO)


def _one_error(r, *parts):
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert r.returncode == 1 and len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert all(p in errors[0] for p in parts), errors[0]
    return errors[0]


def test_a_failed_artefact_is_refused_by_run_recognizer_and_bench(failed_run):
    export = failed_run / "export"
    line = _one_error(cli("run", _video(), "--model", str(export)), "model.onnx", "parity FAILED", "prp-deploy export RUN --verify-only")
    assert "--allow-unverified" in line
    with pytest.raises(UnverifiedModel, match="parity FAILED"):
        Recognizer(export)
    _one_error(cli("bench", "--model", str(export), "--backends", "onnxruntime", "--batch", "1", "--iters", "2"), "parity FAILED")


def test_allow_unverified_runs_it_warns_once_and_the_summary_says_so(failed_run, tmp_path):
    export = failed_run / "export"
    out = tmp_path / "res"
    r = cli("run", _video(), _video().replace("g03", "g01"), "--model", str(export), "--allow-unverified", "--out", str(out), "-q")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("warning: running an unverified model") == 1 and "parity FAILED" in r.stderr
    assert json.loads((out / "summary.json").read_text())["verified"] is False
    rec = Recognizer(export, allow_unverified=True)
    assert rec.backend.verified is False


def test_a_file_parity_never_judged_and_a_folder_without_parity_are_refused(exported, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(exported, export)
    shutil.copy(export / "model.onnx", export / "model_fp16.onnx")  # a file parity.json does not list
    _one_error(cli("run", _video(), "--model", str(export), "--precision", "fp16"), "model_fp16.onnx", "parity never judged this file")
    (export / "parity.json").unlink()
    _one_error(cli("run", _video(), "--model", str(export)), "no parity.json beside it")
    with pytest.raises(UnverifiedModel, match="no parity.json"):
        Recognizer(export / "model.onnx")


def test_a_changed_file_is_refused_and_a_passed_one_served(exported, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(exported, export)
    assert verdict(export / "model.onnx") is None and Recognizer(export).backend.verified is True
    r = cli("run", _video(), "--model", str(export), "--out", str(tmp_path / "w.jsonl"))
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    perturb_onnx_weights(export / "model.onnx")
    _one_error(cli("run", _video(), "--model", str(export)), "is not the file parity checked")


def test_the_cpp_demo_binds_to_the_same_verdict(failed_run, exported, cpp_demo, tmp_path):
    import subprocess

    def demo(export, *flags):
        return subprocess.run([str(cpp_demo), str(export), _video(), *flags], capture_output=True, text=True, timeout=300)

    r = demo(failed_run / "export")
    assert r.returncode == 1 and r.stderr.strip() == f"error: {verdict(failed_run / 'export' / 'model.onnx')}", r.stderr
    r = demo(failed_run / "export", "--allow-unverified")
    assert r.returncode == 0 and r.stderr.count("warning: running an unverified model") == 1 and r.stdout.count("\n") > 5, r.stderr
    bare = tmp_path / "export"
    shutil.copytree(exported, bare)
    (bare / "parity.json").unlink()
    r = demo(bare)
    assert r.returncode == 1 and "no parity.json beside it" in r.stderr, r.stderr
    shutil.copytree(exported, tmp_path / "changed")
    perturb_onnx_weights(tmp_path / "changed" / "model.onnx")
    r = demo(tmp_path / "changed")
    assert r.returncode == 1 and "is not the file parity checked" in r.stderr, r.stderr
    assert demo(exported).returncode == 0


def test_triton_leaves_out_what_parity_did_not_pass(failed_run):
    pytest.importorskip("tritonclient")
    r = cli("export", str(failed_run), "--verify-only", "--triton", "--parity-clips", "8")
    assert r.returncode == 1 and "triton: leaving out model.onnx: parity FAILED" in r.stderr, r.stderr
    assert not list((failed_run / "export").glob("triton/*_onnxruntime"))
