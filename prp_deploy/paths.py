"""Default places on disk: the user cache (runs: `rundir.py`).

Caches (generated default dataset, frame caches, decoded-frame counts) live under the
user cache folder, never inside a dataset root: datasets are treated as read-only.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$PRP_DEPLOY_CACHE`, else `$XDG_CACHE_HOME/prp-deploy`, else `~/.cache/prp-deploy`."""
    explicit = os.environ.get("PRP_DEPLOY_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "prp-deploy"
