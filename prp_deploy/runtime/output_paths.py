"""Every file one `prp-deploy run` writes, decided in one place and checked before anything
is written: no two outputs may share a path, and no output may be a source video or a file
of the model being run.

Two outputs on one path interleave their lines (a features index and the records in one
JSONL file end as a mix of both, with a broken line where two writes met), so a clash
given on the command line is a usage error naming both flags. With several sources the
names inside the folders are ours (`<stem>.jsonl`, `<stem>.features.npy`, ...): a stem
that would make a clash (a source called `sources`, or `x.features` beside `x`) gets a
numbered stem instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import UsageError

# What a name in each role looks like, for "this names a folder, not a file" checks.
FILE_SUFFIXES = (".jsonl", ".json", ".npy", ".mp4", ".avi", ".mkv", ".mov", ".webm")
SOURCE_LOG, SUMMARY = "sources.jsonl", "summary.json"


@dataclass(frozen=True)
class SourceFiles:
    """The files of one source; None where that output was not asked for."""
    records: Path | None = None  # window records, JSONL
    segments: Path | None = None  # segment records, JSONL
    features: Path | None = None  # windows × D float32 .npy
    features_index: Path | None = None  # a JSONL line per feature row: its window
    overlay: Path | None = None  # the labelled video

    def items(self):
        return [(f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None]


@dataclass
class OutputPlan:
    many: bool
    files: dict[str, SourceFiles]  # source name → its files
    stems: dict[str, str]  # source name → the stem its files are named by (several sources)
    log: Path | None = None  # DIR/sources.jsonl (several sources with --out)
    summary: Path | None = None  # DIR/summary.json


def _flag(role: str, path: Path) -> str:
    """How the user asked for the file in `role`: the flag, so a clash names what to change."""
    return {"records": f"--out {path}", "segments": f"--segments' file {path} (named after --out)",
            "features": f"--features {path}", "features_index": f"--features' row index {path} (named after --features)",
            "overlay": f"--overlay {path}", "log": f"--out's source log {path}", "summary": f"--out's {path}"}[role]


def _key(path: Path) -> str:
    """One spelling per file: absolute, symlinks resolved, case folded where the file system folds it."""
    return os.path.normcase(str(Path(path).expanduser().resolve()))


def features_index(path: Path) -> Path:
    """F.npy → F.jsonl, the line-per-row index beside the features."""
    return Path(path).with_suffix(".jsonl")


def single_files(out: Path | None, features: Path | None, overlay: Path | None, segments: bool) -> SourceFiles:
    """One source: the files are the paths given; segments go beside --out as OUT.segments.jsonl."""
    return SourceFiles(records=Path(out) if out is not None else None,
                       segments=Path(out).with_suffix(".segments.jsonl") if segments and out is not None else None,
                       features=Path(features) if features is not None else None,
                       features_index=features_index(features) if features is not None else None,
                       overlay=Path(overlay) if overlay is not None else None)


def folder_files(stem: str, out: Path | None, features: Path | None, overlay: Path | None, segments: bool) -> SourceFiles:
    """Several sources: each given output is a folder holding `<stem>.<role suffix>`."""
    return SourceFiles(records=Path(out) / f"{stem}.jsonl" if out is not None else None,
                       segments=Path(out) / f"{stem}.segments.jsonl" if segments and out is not None else None,
                       features=Path(features) / f"{stem}.features.npy" if features is not None else None,
                       features_index=Path(features) / f"{stem}.features.jsonl" if features is not None else None,
                       overlay=Path(overlay) / f"{stem}.overlay.mp4" if overlay is not None else None)


def names_folder(path: Path | None) -> bool:
    """An output the user named as a folder: written with a trailing slash, or an existing folder."""
    return path is not None and (str(path).endswith(("/", os.sep)) or Path(path).is_dir())


def plan_outputs(sources: list[str], stems: list[str], many: bool, out: Path | None, features: Path | None,
                 overlay: Path | None, segments: bool, protected: list[Path] = ()) -> OutputPlan:
    """Every output path of the run, or a UsageError naming the two flags that clash.

    `protected`: files no output may replace (the model's files); the sources themselves are
    protected too, so `--overlay video.mp4` never overwrites the video being read.
    """
    given = {"--out": out, "--features": features, "--overlay": overlay}
    if many:
        for flag, path in given.items():
            if path is not None and Path(path).exists() and not Path(path).is_dir():
                raise UsageError(f"{flag} {path}: with several sources (or a folder) this names a folder, and a file of that name exists")
            if path is not None and not names_folder(path) and Path(path).suffix.lower() in FILE_SUFFIXES:
                raise UsageError(f"{flag} {path}: names a {Path(path).suffix} file, but here each source writes its own files "
                                 "in folders (several sources, a folder or glob, or an output given as a folder): give a folder")
    else:
        for flag, path in given.items():
            if names_folder(path):
                raise UsageError(f"{flag} {path}: names a folder, but one source writes one file here (give a file name, "
                                 "or several sources to get a file per source in a folder)")

    taken: dict[str, str] = {}  # path key → who writes it
    for p in protected:
        taken[_key(p)] = f"the model's file {p}"
    for s in sources:
        if Path(s).exists():
            taken[_key(Path(s))] = f"the source video {s}"

    plan = OutputPlan(many, {}, {})
    if many and out is not None:
        plan.log, plan.summary = Path(out) / SOURCE_LOG, Path(out) / SUMMARY
        for role, path in (("log", plan.log), ("summary", plan.summary)):
            taken[_key(path)] = _flag(role, path)
    for source, stem in zip(sources, stems):
        name, number = stem, 1
        while True:
            files = folder_files(name, out, features, overlay, segments) if many else single_files(out, features, overlay, segments)
            clash = _first_clash(files, taken)
            if clash is None:
                break
            # One source: the user's own names clashed. Several: our stems clashed (with each
            # other, a source, or the run's logs), so the next number; the model's files never move.
            if not many or clash[0].startswith("the model's"):
                raise UsageError(f"{clash[1]} and {clash[0]} are the same file: give one of them another name")
            number += 1
            name = f"{stem}-{number}"
        taken.update({_key(path): _flag(role, path) for role, path in files.items()})
        plan.files[source], plan.stems[source] = files, name
    return plan


def _first_clash(files: SourceFiles, taken: dict[str, str]) -> tuple[str, str] | None:
    """(who already has it, the flag of ours) for the first of `files` that is taken, or that
    another of `files` also names; None when all are free."""
    mine: dict[str, str] = {}
    for role, path in files.items():
        other = taken.get(_key(path)) or mine.get(_key(path))
        if other is not None:
            return other, _flag(role, path)
        mine[_key(path)] = _flag(role, path)
    return None


def wants_many(args: list[str], sources: list[str], outputs: list[Path | None]) -> bool:
    """Per-source files in folders: several sources, a folder, glob or @list, or an output named as a folder."""
    if len(sources) > 1 or any(a.startswith("@") or Path(a).is_dir() or (not Path(a).exists() and any(c in a for c in "*?[")) for a in args):
        return True
    return any(names_folder(p) for p in outputs)


def model_files(model: Path) -> list[Path]:
    """What no output may replace: every file of the export folder (or the model file and its sidecars)."""
    folder = model if model.is_dir() else model.parent
    files = [p for p in folder.iterdir() if p.is_file()] if model.is_dir() else [model, folder / "model.json", folder / "parity.json"]
    return [p for p in files if p.exists()]


def done_before(out: Path) -> dict[str, dict]:
    """Sources a previous run into `out` finished (status ok in its sources.jsonl): source → its row."""
    done = {}
    log = out / "sources.jsonl"
    if log.exists():
        for line in log.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if row.get("status") == "ok" and (out / f"{row.get('output')}.jsonl").exists():
                done[row["source"]] = {**row, "skipped": True}
    return done


__all__ = ["OutputPlan", "SourceFiles", "done_before", "features_index", "model_files", "names_folder", "plan_outputs", "wants_many"]
