"""The runtime's dependencies stay light: the package, its data layer, preprocessing and runtime import no torch."""

import subprocess
import sys

MODULES = ["prp_deploy", "prp_deploy.data.preprocess", "prp_deploy.data.video", "prp_deploy.data.datasets",
           "prp_deploy.data.sampling", "prp_deploy.data.cache", "prp_deploy.data.clips", "prp_deploy.data.synth",
           "prp_deploy.data.tasks", "prp_deploy.cli", "prp_deploy.runtime.backends", "prp_deploy.runtime.model_info",
           "prp_deploy.runtime.sources", "prp_deploy.runtime.stream", "prp_deploy.runtime.outputs", "prp_deploy.runtime.run",
           "prp_deploy.runtime.api", "prp_deploy.runtime.bench", "prp_deploy.runtime.artifacts", "prp_deploy.rundir", "prp_deploy.files",
           "prp_deploy.models", "prp_deploy.models.registry", "prp_deploy.data.commands", "prp_deploy.library",
           "prp_deploy.library.page", "prp_deploy.library.cluster"]


def test_light_modules_import_without_torch():
    code = "import sys\n" + "".join(f"import {m}\n" for m in MODULES) + "from prp_deploy import Recognizer\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_runtime_sources_never_import_torch():
    """Not even lazily, at any indentation: the runtime must embed without torch installed."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "prp_deploy"
    # The runtime and the video library on it, and the torch-free modules they use (the newest export is found in paths.py).
    for f in [*(root / "runtime").rglob("*.py"), *(root / "library").rglob("*.py"), root / "paths.py", root / "files.py", root / "errors.py", *(root / "contracts").rglob("*.py")]:
        text = f.read_text()
        assert not re.search(r"^\s*(import torch|from torch)", text, re.M), f
        assert not re.search(r"^\s*from \.\.(training|models|export)", text, re.M), f


def test_stages_import_one_way():
    """Training never imports export, export never imports training (both use rundir.py);
    no module imports another package's private names."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "prp_deploy"
    for stage, forbidden in (("training", "export"), ("export", "training"), ("data", "training|export|runtime|models")):
        for f in (root / stage).rglob("*.py"):
            assert not re.search(rf"^\s*from \.\.({forbidden})\b", f.read_text(), re.M), f
    for f in root.rglob("*.py"):
        assert not re.search(r"^\s*from \.+[\w.]* import [^\n]*\b_[a-z]\w*", f.read_text(), re.M), f
