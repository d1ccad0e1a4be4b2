"""The `prp-deploy` command: it only parses and calls plain functions that tests call directly.
A PRPError becomes one line on stderr and exit 1. One module per group of commands:
training.py (train, eval, report), export.py (export, bench), run.py (run, explain),
library.py (index, search); `data` lives with the data layer (data/commands.py)."""

from __future__ import annotations

import os

import click

from .. import __version__
from ..clitypes import OneLineErrors
from ..data.commands import data
from .export import bench_cmd, export_cmd
from .library import index_cmd, search_cmd
from .run import explain_cmd, run_cmd
from .training import eval_cmd, report_cmd, train_cmd


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="prp-deploy")
@click.option("--verbose", is_flag=True, help="Let FFmpeg's and OpenCV's own decoder messages through to stderr.")
def main(verbose):
    """PRP video models: self-supervised training, ONNX/TensorRT export, streaming inference."""
    if verbose:  # before any command imports cv2, which reads these once
        os.environ.update(OPENCV_FFMPEG_LOGLEVEL="32", OPENCV_LOG_LEVEL="INFO", PRP_DEPLOY_FFMPEG_LOG="1")


# In the order `prp-deploy --help` has always listed them.
for command in (data, train_cmd, export_cmd, run_cmd, bench_cmd, index_cmd, search_cmd, explain_cmd, report_cmd, eval_cmd):
    main.add_command(command)
