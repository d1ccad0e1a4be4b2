"""Writing files so that a crash never leaves half of one: the one `atomic_write`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write(path: str | Path, content: str | bytes | Callable[[Path], None], mode: int = 0o644) -> Path:
    """Write `content` (text, bytes, or a function that writes a given path) to a temp file
    beside `path`, then rename it over `path`: readers see the old file or the new one,
    never a part. On any failure the temp file is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if isinstance(content, str):
            tmp.write_text(content)
        elif isinstance(content, bytes):
            tmp.write_bytes(content)
        else:
            content(tmp)
        os.chmod(tmp, mode)  # mkstemp makes 0600; an artefact is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
