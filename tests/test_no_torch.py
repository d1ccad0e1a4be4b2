"""The runtime's dependencies stay light: the package, its data layer and preprocessing import no torch."""

import subprocess
import sys

MODULES = ["prp_deploy", "prp_deploy.data.preprocess", "prp_deploy.data.video", "prp_deploy.data.datasets",
           "prp_deploy.data.sampling", "prp_deploy.data.cache", "prp_deploy.data.clips", "prp_deploy.data.synth",
           "prp_deploy.data.tasks", "prp_deploy.cli"]


def test_light_modules_import_without_torch():
    code = "import sys\n" + "".join(f"import {m}\n" for m in MODULES) + "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
