"""Dataset indexes read straight from the native layouts: UCF101, HMDB51, a generic folder.

An index is a list of (video path, label) for the train and test parts of one split, and
the class names. No conversion step, no files written into the dataset root. The class
always comes from the split line's folder (or the split file's name for HMDB51), never
from the video's file name: UCF101's `HandstandPushups/` holds `v_HandStandPushups_*`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PRPError

# Containers OpenCV's FFmpeg backend decodes (an animated GIF too, as UCF101's GIF previews are).
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".gif")
DATASETS = ("ucf101", "hmdb51", "folder")


@dataclass(frozen=True)
class Video:
    path: Path
    label: int


@dataclass(frozen=True)
class VideoIndex:
    name: str  # "ucf101" | "hmdb51" | "folder"
    root: Path
    split: int
    classes: tuple[str, ...]
    train: tuple[Video, ...]
    test: tuple[Video, ...]
    notes: tuple[str, ...] = field(default=())  # what the reader decided (e.g. a seeded split)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty lines with 1-based line numbers."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise PRPError(f"{path}: cannot read ({e.strerror})") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _find_subdir(root: Path, name: str) -> Path:
    """`root/name`, or `root` itself when the user pointed inside it."""
    if (root / name).is_dir():
        return root / name
    if root.name == name and root.is_dir():
        return root
    raise PRPError(f"{root}: no {name}/ folder here")


def _check_split(split: int, allowed=(1, 2, 3)) -> None:
    if split not in allowed:
        raise PRPError(f"split must be one of {', '.join(map(str, allowed))}, got {split}")


def _check_root(root: Path) -> Path:
    root = Path(root)
    if not root.exists():
        raise PRPError(f"{root}: no such folder")
    if not root.is_dir():
        raise PRPError(f"{root}: not a folder")
    return root


def _nonempty_classes(name: str, classes: list[str], train: list[Video], test: list[Video], where: Path) -> None:
    counts = [0] * len(classes)
    for v in train + test:
        counts[v.label] += 1
    empty = [c for c, n in zip(classes, counts) if n == 0]
    if empty:
        raise PRPError(f"{where}: class {empty[0]!r} has no videos in split files" + (f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""))


def ucf101_index(root: Path, split: int = 1) -> VideoIndex:
    """`ROOT/UCF-101/<Class>/*.avi` + `ROOT/ucfTrainTestlist/{classInd,trainlistNN,testlistNN}.txt`."""
    root = _check_root(root)
    _check_split(split)
    videos_dir = _find_subdir(root, "UCF-101")
    lists = _find_subdir(root, "ucfTrainTestlist") if (root / "ucfTrainTestlist").is_dir() else _find_subdir(root.parent, "ucfTrainTestlist")
    class_file = lists / "classInd.txt"
    classes: list[str] = []
    for n, line in _read_lines(class_file):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise PRPError(f"{class_file}:{n}: expected '<number> <ClassName>', got {line!r}")
        if int(parts[0]) != len(classes) + 1:
            raise PRPError(f"{class_file}:{n}: class numbers must run 1, 2, 3, ...; got {parts[0]}")
        classes.append(parts[1])
    if not classes:
        raise PRPError(f"{class_file}: no classes")
    by_name = {c: i for i, c in enumerate(classes)}

    def read_list(file: Path, with_label: bool) -> list[Video]:
        out = []
        for n, line in _read_lines(file):
            parts = line.split()
            rel = parts[0]
            folder = rel.split("/")[0] if "/" in rel else None
            if folder is None:
                raise PRPError(f"{file}:{n}: expected '<Class>/<file>', got {line!r}")
            if folder not in by_name:
                raise PRPError(f"{file}:{n}: unknown class {folder!r} (not in {class_file.name})")
            label = by_name[folder]
            if with_label and len(parts) > 1 and parts[1].isdigit() and int(parts[1]) != label + 1:
                raise PRPError(f"{file}:{n}: label {parts[1]} contradicts class {folder!r} (number {label + 1} in {class_file.name})")
            path = videos_dir / rel
            if not path.is_file():
                raise PRPError(f"{file}:{n}: video {rel} is not in {videos_dir}")
            out.append(Video(path, label))
        return out

    train = read_list(lists / f"trainlist{split:02d}.txt", True)
    test = read_list(lists / f"testlist{split:02d}.txt", False)
    _nonempty_classes("ucf101", classes, train, test, lists)
    return VideoIndex("ucf101", root, split, tuple(classes), tuple(train), tuple(test))


def hmdb51_index(root: Path, split: int = 1) -> VideoIndex:
    """`ROOT/hmdb51_org/<class>/*.avi` + `ROOT/testTrainMulti_7030_splits/<class>_test_splitN.txt`.

    Each split file line is "<file>.avi <0|1|2>": 1 train, 2 test, 0 unused in this split.
    """
    root = _check_root(root)
    _check_split(split)
    videos_dir = _find_subdir(root, "hmdb51_org")
    lists = _find_subdir(root, "testTrainMulti_7030_splits") if (root / "testTrainMulti_7030_splits").is_dir() else _find_subdir(root.parent, "testTrainMulti_7030_splits")
    suffix = f"_test_split{split}.txt"
    split_files = sorted(p for p in lists.iterdir() if p.name.endswith(suffix))
    if not split_files:
        raise PRPError(f"{lists}: no *{suffix} files")
    classes = [p.name[: -len(suffix)] for p in split_files]
    train: list[Video] = []
    test: list[Video] = []
    for label, (cls, file) in enumerate(zip(classes, split_files)):
        if not (videos_dir / cls).is_dir():
            raise PRPError(f"{file}: class folder {cls}/ is not in {videos_dir}")
        for n, line in _read_lines(file):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise PRPError(f"{file}:{n}: expected '<file> 0|1|2', got {line!r}")
            if parts[1] == "0":
                continue
            path = videos_dir / cls / parts[0]
            if not path.is_file():
                raise PRPError(f"{file}:{n}: video {parts[0]} is not in {videos_dir / cls}")
            (train if parts[1] == "1" else test).append(Video(path, label))
    _nonempty_classes("hmdb51", classes, train, test, lists)
    return VideoIndex("hmdb51", root, split, tuple(classes), tuple(train), tuple(test))


def folder_index(root: Path, split: int = 1, test_fraction: float = 0.3, seed: int = 0) -> VideoIndex:
    """`ROOT/<class>/*.avi|mp4|mkv|webm`, classes sorted by name.

    The split is explicit when `ROOT/trainlist.txt` and `ROOT/testlist.txt` exist (lines
    "<class>/<file>"), else seeded and deterministic: each class's sorted files shuffled by
    (seed, split, class) and the first ⌈test_fraction·n⌉ held out for test (at least one
    video stays in train).
    """
    root = _check_root(root)
    if not 0.0 <= test_fraction < 1.0:
        raise PRPError(f"test fraction must be in [0, 1), got {test_fraction}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise PRPError(f"{root}: no class folders (expected ROOT/<class>/<video>.avi|mp4|mkv|webm)")
    files = {c: sorted(p for p in (root / c).iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()) for c in classes}
    for c in classes:
        if not files[c]:
            raise PRPError(f"{root / c}: class {c!r} has no videos ({'|'.join(VIDEO_EXTENSIONS)})")
    by_name = {c: i for i, c in enumerate(classes)}
    train_list, test_list = root / "trainlist.txt", root / "testlist.txt"
    if train_list.exists() or test_list.exists():
        if not (train_list.exists() and test_list.exists()):
            raise PRPError(f"{root}: an explicit split needs both trainlist.txt and testlist.txt")

        def read_list(file: Path) -> list[Video]:
            out = []
            for n, line in _read_lines(file):
                rel = line.split()[0]
                folder = rel.split("/")[0] if "/" in rel else None
                if folder not in by_name:
                    raise PRPError(f"{file}:{n}: unknown class {folder!r} in {rel!r}")
                if not (root / rel).is_file():
                    raise PRPError(f"{file}:{n}: video {rel} is not in {root}")
                out.append(Video(root / rel, by_name[folder]))
            return out

        train, test = read_list(train_list), read_list(test_list)
        notes = ("explicit split from trainlist.txt / testlist.txt",)
    else:
        train, test = [], []
        for c in classes:
            order = list(files[c])
            random.Random(f"{seed}/{split}/{c}").shuffle(order)
            n_test = min(len(order) - 1, int(-(-test_fraction * len(order) // 1)))
            test += [Video(p, by_name[c]) for p in sorted(order[:n_test])]
            train += [Video(p, by_name[c]) for p in sorted(order[n_test:])]
        notes = (f"seeded split: seed={seed} split={split} test_fraction={test_fraction}",)
    _nonempty_classes("folder", classes, train, test, root)
    return VideoIndex("folder", root, split, tuple(classes), tuple(train), tuple(test), notes)


def load_index(root: Path, dataset: str, split: int = 1, **folder_options) -> VideoIndex:
    """The index for `dataset` (one of DATASETS) at `root`."""
    if dataset == "ucf101":
        return ucf101_index(root, split)
    if dataset == "hmdb51":
        return hmdb51_index(root, split)
    if dataset == "folder":
        return folder_index(root, split, **folder_options)
    raise PRPError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
