"""The install layers: a bare `pip install prp-deploy` is the runtime, with no torch.

A fresh venv gets the package without extras; an export the suite made (with torch, here)
runs there through `prp-deploy run` and `Recognizer`, torch is not importable there, and a
command that needs training says which extra to install, in one line.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prp_deploy.data.synth import SynthSpec, write_synthetic
from prp_deploy.export.pipeline import ExportOptions, export
from tests.runs import make_run

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bare_install_runs_an_export_without_torch(tmp_path):
    data = write_synthetic(tmp_path / "data", SynthSpec(classes=3, groups=3, clips_per_group=2, width=64, height=48, min_frames=20, max_frames=30))
    run = make_run(tmp_path / "run", data, "r3d")
    export(run, ExportOptions(parity_clips=12), say=lambda s: None)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py, cli = venv / "bin" / "python", venv / "bin" / "prp-deploy"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", str(REPO)], capture_output=True, text=True, timeout=1200, env=env)
    assert pip.returncode == 0, pip.stderr[-2000:]

    no_torch = subprocess.run([str(py), "-c", "import torch"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr

    video = next((data / "UCF-101").rglob("*.avi"))
    r = subprocess.run([str(cli), "run", str(video), "--model", str(run / "export"), "--out", str(tmp_path / "w.jsonl")],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in (tmp_path / "w.jsonl").read_text().splitlines()]
    assert records and all(len(rec["top"]) == 3 for rec in records)

    code = (f"import sys, cv2; from prp_deploy import Recognizer; rec = Recognizer({str(run / 'export')!r}); "
            f"cap = cv2.VideoCapture({str(video)!r}); frames = [cap.read()[1] for _ in range(rec.window_frames)]; "
            "print(rec.predict(frames)[0]['label'], 'torch' in sys.modules)")
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    label, torch_loaded = r.stdout.split()
    assert label in {"SlideRight", "SlideLeft", "SlideUp"} and torch_loaded == "False"

    r = subprocess.run([str(cli), "bench", "--model", str(run / "export"), "--batch", "1", "--iters", "2", "--video", str(video)],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0 and "onnxruntime" in r.stdout and "end to end" in r.stdout, r.stderr
    assert "torch" not in r.stderr  # auto times the export's artefacts: torch only when asked (--backends ...,torch)
    r = subprocess.run([str(cli), "bench", "--model", str(run / "export"), "--batch", "1", "--iters", "2", "--video", str(video),
                        "--backends", "onnxruntime,torch"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0 and "torch unavailable" in r.stderr, r.stderr  # asked for: it needs the train extra, and says so

    # explain runs on the export's model_explain.onnx: no torch
    r = subprocess.run([str(cli), "explain", str(video), "--model", str(run / "export"), "--png", str(tmp_path / "grid.png")],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0 and (tmp_path / "grid.png").stat().st_size > 0, r.stderr
    # the library needs its extra, and says which
    r = subprocess.run([str(cli), "index", str(video), "--model", str(run / "export"), "--out", str(tmp_path / "lib")],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 1 and "pip install 'prp-deploy[search]'" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "lib").exists()  # refused before anything was embedded or written

    r = subprocess.run([str(cli), "train"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 1 and len(lines) == 1 and "pip install 'prp-deploy[train]'" in lines[0], r.stderr


def test_no_extra_pulls_modelopts_onnx_extra_and_the_dev_install_keeps_cpu_onnxruntime():
    """ModelOpt's [onnx] extra swaps onnxruntime for onnxruntime-gpu, adds cupy and downgrades
    onnx (docs/export.md): no extra of ours may ask for it, and where ModelOpt is installed (the
    dev extra, as CI installs it) ONNX Runtime is still the CPU package, with no cupy beside it."""
    import importlib.metadata as md
    import re
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for name, reqs in extras.items():
        for req in reqs:
            assert not re.match(r"nvidia-modelopt\s*\[", req) and not req.startswith("cupy"), f"[{name}] asks for {req}"
    try:
        md.version("nvidia-modelopt")
    except md.PackageNotFoundError:
        pytest.skip("ModelOpt is not installed here (the int8-trt extra)")
    installed = {d.metadata["Name"].lower() for d in md.distributions()}
    if os.environ.get("CI"):  # a GPU user may add onnxruntime-gpu themselves; CI's fresh install must not have it
        assert "onnxruntime-gpu" not in installed and not any(n.startswith("cupy") for n in installed)
    assert "onnxruntime" in installed
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout
