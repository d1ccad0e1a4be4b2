"""The command line's SOURCE... as one list, what each one is, and a file name for its outputs.

`expand_sources` takes files, folders, globs, @lists, webcam indexes and URLs;
`parse_source` says which kind each is (file, webcam, network) and whether it is live;
`output_stems` names each source's output files, unique within a run.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..data.datasets import VIDEO_EXTENSIONS
from ..errors import PRPError, UsageError

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # "file" | "webcam" | "network"
    target: str | int  # path, camera index, or URL
    live: bool

    @property
    def name(self) -> str:
        return mask_credentials(str(self.target))


def parse_source(source: str, live: bool | None = None) -> SourceSpec:
    """'0' → webcam 0; rtsp:// http:// ... → network; file:// or a path → file."""
    s = str(source)
    if s.isdigit():
        return SourceSpec("webcam", int(s), True if live is None else live)
    scheme = urlparse(s).scheme.lower()
    if scheme == "file":
        s = urlparse(s).path
    elif scheme in NETWORK_SCHEMES:
        return SourceSpec("network", s, (scheme not in ("http", "https")) if live is None else live)
    path = Path(s)
    if not path.exists():
        raise PRPError(f"{s}: no such file (a source is a video file, a webcam index such as 0, or an rtsp:// / http:// URL)")
    if path.is_dir():
        raise PRPError(f"{s}: is a folder, not a video")
    return SourceSpec("file", str(path), bool(live))


def mask_credentials(source: str) -> str:
    """`rtsp://user:pass@host/x` → `rtsp://user:***@host/x`: what a line, record or file may show."""
    u = urlparse(source)
    if not u.scheme or "@" not in u.netloc or ":" not in u.netloc.rsplit("@", 1)[0]:
        return source
    user, host = u.netloc.rsplit("@", 1)
    return u._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}").geturl()


def expand_sources(args: list[str]) -> list[str]:
    """Files, URLs and webcam indexes as they are; a folder → its videos (recursively, sorted);
    a glob → its matches (sorted); @FILE → one source a line (blank lines and # comments skipped,
    relative paths taken from FILE's folder). Duplicates are dropped, order kept. A missing
    file stays in the list: it fails as that source, not as the whole run."""
    out: list[str] = []
    for a in args:
        a = str(a)
        if a.startswith("@"):
            listing = Path(a[1:])
            if not listing.is_file():
                raise UsageError(f"{a}: no such list file (@FILE names a text file with one source a line)")
            lines = [l.strip() for l in listing.read_text().splitlines()]
            here = [l for l in lines if l and not l.startswith("#")]
            out += expand_sources([_relative_to(l, listing.parent) for l in here])
        elif Path(a).is_dir():
            found = sorted(str(p) for p in Path(a).rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
            if not found:
                raise UsageError(f"{a}: no videos in this folder ({'|'.join(VIDEO_EXTENSIONS)}, searched recursively)")
            out += found
        elif glob.has_magic(a) and not urlparse(a).scheme:
            found = sorted(p for p in glob.glob(a, recursive=True) if Path(p).is_file())
            if not found:
                raise UsageError(f"{a}: the pattern matches no file")
            out += found
        else:
            out.append(a)
    return list(dict.fromkeys(out))


def _relative_to(line: str, folder: Path) -> str:
    if line.isdigit() or urlparse(line).scheme in (*NETWORK_SCHEMES, "file") or Path(line).is_absolute():
        return line
    return str(folder / line)


def output_stems(sources: list[str]) -> list[str]:
    """A file-name stem per source, unique: the file's stem, with as many parent folders as it
    takes to tell two apart (a__x, b__x); webcam0; a URL's host and path."""
    def parts(s: str) -> list[str]:
        if s.isdigit():
            return [f"webcam{s}"]
        u = urlparse(s)
        if u.scheme in NETWORK_SCHEMES:
            return [re.sub(r"[^A-Za-z0-9._-]+", "_", (u.netloc + u.path).strip("/")) or u.scheme]
        p = Path(u.path if u.scheme == "file" else s)
        return [*p.parent.parts, p.stem]

    split = [parts(s) for s in sources]
    depth = [1] * len(sources)
    while True:
        names = ["__".join(p[-d:]) for p, d in zip(split, depth)]
        clash = {n for n in names if names.count(n) > 1}
        grow = [i for i, n in enumerate(names) if n in clash and depth[i] < len(split[i])]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
    seen: dict[str, int] = {}
    unique = []
    for n in names:  # the same name still (e.g. one path written two ways): number the later ones
        seen[n] = seen.get(n, 0) + 1
        unique.append(n if seen[n] == 1 else f"{n}-{seen[n]}")
    return [re.sub(r"[^A-Za-z0-9._-]+", "_", n) for n in unique]


__all__ = ["expand_sources", "output_stems"]
