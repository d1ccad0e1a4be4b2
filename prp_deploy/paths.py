"""Default places on disk: the user cache, and where runs and exports are found (torch-free:
the runtime finds the newest export with these; `rundir.py` writes and reads run folders).

Caches (generated default dataset, frame caches, decoded-frame counts) live under the
user cache folder, never inside a dataset root: datasets are treated as read-only.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import PRPError

CONFIG_FILE = "config.yaml"  # a run folder's marker
MODEL_INFO_FILE = "model.json"  # an export folder's marker


def cache_dir() -> Path:
    """`$PRP_DEPLOY_CACHE`, else `$XDG_CACHE_HOME/prp-deploy`, else `~/.cache/prp-deploy`."""
    explicit = os.environ.get("PRP_DEPLOY_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "prp-deploy"


def runs_dir() -> Path:
    """Runs go to `runs/` under the working directory."""
    return Path.cwd() / "runs"


def _newest(paths) -> Path | None:
    found = sorted(paths, key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def newest_run(root: Path | None = None) -> Path:
    root = Path(root) if root else runs_dir()
    run = _newest(p for p in root.glob("*") if (p / CONFIG_FILE).exists()) if root.exists() else None
    if run is None:
        raise PRPError(f"no run under {root}: start one with `prp-deploy train`")
    return run


def newest_export(root: Path | None = None) -> Path:
    root = Path(root) if root else runs_dir()
    info = _newest(root.glob(f"*/export/{MODEL_INFO_FILE}")) if root.exists() else None
    if info is None:
        raise PRPError(f"no exported model under {root}: make one with `prp-deploy train` then `prp-deploy export`, or pass --model")
    return info.parent
