"""Run folders, shared by training, export and the runtime: where runs live, the newest run
or export, a run's recorded config, checkpoints (read and written), and the versions
written beside every result. Torch (and PyYAML) are imported only by the functions that
need them, so the runtime can use the rest without either.

RUN/
  config.yaml              the config (schema_version, config_hash, versions beside it)
  pretrain/{best,last}.pt  PRP model; best = lowest validation loss
  finetune/{best,last}.pt  action recogniser; best = highest validation accuracy
  metrics.jsonl            one line per epoch and stage (tensorboard/ beside it)
  eval.json                pretext, recognition, retrieval (percent)
  curves.png               loss / accuracy curves
  export/                  `prp-deploy export`: model.json, model.onnx, parity.json, ...
"""

from __future__ import annotations

import os
import platform
from contextlib import contextmanager
from pathlib import Path

from .errors import PRPError
from .paths import CONFIG_FILE, MODEL_INFO_FILE, newest_export, newest_run, runs_dir  # noqa: F401 - the run folder's names, re-exported

EVAL_FILE = "eval.json"
CHECKPOINT_VERSION = 2  # 2: checkpoints carry `preprocess` and `config_hash`


@contextmanager
def run_lock(run_dir: Path):
    """Hold RUN/.lock for the life of a training job: an OS file lock (flock), so a killed
    holder never leaves a stale lock; a second writer gets one line naming the holder's PID."""
    import fcntl

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    f = open(run_dir / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise PRPError(f"{run_dir}: another prp-deploy process (PID {holder}) is writing this run folder; "
                       "wait for it to finish, or use another --out") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    try:
        yield
    finally:
        f.close()  # closing the file releases the lock


def read_yaml(path: Path) -> dict:
    """A YAML mapping, or one line saying why not."""
    import yaml  # PyYAML comes with training ([train]); the runtime reads JSON only

    try:
        d = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as e:
        raise PRPError(f"{path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise PRPError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(d, dict):
        raise PRPError(f"{path}: expected a mapping at the top level")
    return d


def read_run_config(run_dir: Path) -> dict:
    """A run's config.yaml as written (the config, with config_hash and versions beside it)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise PRPError(f"{run_dir}: no {CONFIG_FILE} (not a prp-deploy run folder)")
    return read_yaml(path)


def write_run_config(run_dir: Path, config: dict, config_hash: str) -> None:
    import yaml

    from .files import atomic_write

    atomic_write(Path(run_dir) / CONFIG_FILE, yaml.safe_dump({**config, "config_hash": config_hash, "versions": versions()}, sort_keys=False))


def versions() -> dict:
    """Package and machine versions, written beside every result (torch only where installed)."""
    import cv2
    import numpy

    from . import __version__

    v = {"prp_deploy": __version__, "numpy": numpy.__version__, "opencv": cv2.__version__,
         "python": platform.python_version(), "platform": platform.platform()}
    try:
        import torch
    except ImportError:
        return v
    cuda = torch.cuda.is_available()
    return {**v, "torch": str(torch.__version__), "cuda": torch.version.cuda if cuda else None,
            "gpu": torch.cuda.get_device_name() if cuda else None}


def save_checkpoint(state: dict, path: Path) -> None:
    """torch.save, atomically: a crash never leaves half a checkpoint."""
    import torch

    from .files import atomic_write

    atomic_write(path, lambda tmp: torch.save({**state, "checkpoint_version": CHECKPOINT_VERSION}, tmp))


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Load with weights_only=True (no pickled code runs); a user error if it is not ours.

    A checkpoint rebuilds itself: encoder config, preprocessing, config and its hash travel
    with the weights, so export and finetuning need nothing else.
    """
    import torch

    path = Path(path)
    if not path.exists():
        raise PRPError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a damaged or foreign file
        raise PRPError(f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    if not isinstance(state, dict) or "model" not in state or "encoder" not in state:
        raise PRPError(f"{path}: not a prp-deploy checkpoint (no model weights and encoder config)")
    version = state.get("checkpoint_version")
    if version == 1:  # before the preprocessing spec travelled in checkpoints
        d = state.get("config", {}).get("data", {})
        state.setdefault("preprocess", {k: d[k] for k in ("short_side", "crop", "frames", "mean", "std") if k in d})
        state.setdefault("config_hash", None)
    elif version != CHECKPOINT_VERSION:
        raise PRPError(f"{path}: checkpoint version {version} is not supported (expected {CHECKPOINT_VERSION})")
    return state
