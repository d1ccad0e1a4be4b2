"""`prp-deploy data ...`: generate the built-in dataset, inspect one, fill the frame cache.
Torch-free, like the rest of the data layer; `prp_deploy.cli` adds this group to the command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import PRPError, UsageError


def _say(msg: str) -> None:
    click.echo(msg, err=True)


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="video", disable=None, file=sys.stderr, leave=False)


@click.group()
def data():
    """Datasets: generate the built-in one, inspect one, fill the frame cache."""


_data_option = click.option("--data", "data_root", type=click.Path(path_type=Path), default=None, help="Dataset root (default: the built-in synthetic dataset).")
_dataset_option = click.option("--dataset", type=click.Choice(["ucf101", "hmdb51", "folder"]), default=None, help="Layout of --data.")
_split_option = click.option("--split", type=click.IntRange(1, 3), default=1, show_default=True, help="Train/test split.")
_workers_option = click.option("--workers", type=click.IntRange(1), default=1, show_default=True, help="Decoding processes.")


@data.command("synth")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--classes", type=int, default=None, help="Motion classes, 2-8  [default: 8, as the built-in data]")
@click.option("--groups", type=int, default=None, help="Groups per class (a multiple of 3: one third tests each split)  [default: 6]")
@click.option("--clips-per-group", type=int, default=None, help="[default: 12]")
@click.option("--size", default=None, help="Frame size WxH  [default: 48x36, the size the tiny preset reads]")
@click.option("--frames", "frame_range", default=None, help="Frames per video, MIN:MAX  [default: 72:120]")
@click.option("--seed", type=int, default=0, show_default=True)
def data_synth(out, classes, groups, clips_per_group, size, frame_range, seed):
    """Write the synthetic motion dataset (UCF101 layout) to OUT; the defaults make the built-in dataset."""
    from dataclasses import replace

    from .synth import SynthSpec, write_synthetic

    base = SynthSpec()  # one home for the defaults: the built-in dataset's spec
    try:
        w, h = (int(v) for v in size.lower().split("x")) if size else (base.width, base.height)
        lo, hi = (int(v) for v in frame_range.split(":")) if frame_range else (base.min_frames, base.max_frames)
    except ValueError:
        raise UsageError(f"--size wants WxH and --frames MIN:MAX, got {size!r} and {frame_range!r}") from None
    given = {k: v for k, v in dict(classes=classes, groups=groups, clips_per_group=clips_per_group).items() if v is not None}
    spec = replace(base, **given, width=w, height=h, min_frames=lo, max_frames=hi, seed=seed)
    root = write_synthetic(out, spec)
    n = spec.classes * spec.groups * spec.clips_per_group
    click.echo(f"wrote {n} videos of {spec.classes} classes to {root} (use: --data {root} --dataset ucf101)")


@data.command("info")
@_data_option
@_dataset_option
@_split_option
@_workers_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def data_info(data_root, dataset, split, workers, as_json):
    """Classes, videos per split, frame counts; unreadable files named one per line."""
    from .tasks import all_videos, describe, resolve_index

    index = resolve_index(data_root, dataset, split, _say)
    with _progress(len(all_videos(index)), "decoding") as bar:
        report = describe(index, workers, lambda: bar.update(1))
    s = report.summary()
    if as_json:
        click.echo(json.dumps({**s, "unreadable": report.unreadable}, indent=2))
    else:
        click.echo(f"dataset   {s['dataset']} at {s['root']} (split {s['split']})")
        click.echo(f"classes   {s['classes']} ({s['videos_per_class_min']}-{s['videos_per_class_max']} videos each)")
        width = max(map(len, s["per_class"]), default=5)
        for name, n in s["per_class"].items():
            click.echo(f"  {name:{width}s}  {n['train']:4d} train {n['test']:4d} test" + (f"  {n['unreadable']} unreadable" if n["unreadable"] else ""))
        click.echo(f"videos    {s['train_videos']} train, {s['test_videos']} test")
        click.echo(f"frames    {s['frames_total']} in {s['readable_videos']} readable videos (min {s['frames_min']}, median {s['frames_median']}, max {s['frames_max']})")
        for note in s["notes"]:
            click.echo(f"note      {note}")
        click.echo(f"unreadable {s['unreadable_videos']}")
        for path, why in sorted(report.unreadable.items()):
            click.echo(f"  {path}: {why}")


@data.command("prepare")
@_data_option
@_dataset_option
@_split_option
@_workers_option
@click.option("--format", "fmt", type=click.Choice(["jpeg", "raw"]), default="jpeg", show_default=True, help="jpeg: small, lossy (training only); raw: uint8 arrays, large, fastest.")
@click.option("--quality", type=click.IntRange(50, 100), default=90, show_default=True, help="JPEG quality.")
@click.option("--short-side", type=click.IntRange(16), default=128, show_default=True, help="Frames are resized so their short side is this.")
def data_prepare(data_root, dataset, split, workers, fmt, quality, short_side):
    """Decode each video once into the frame cache that training reads."""
    from .cache import FrameCache
    from .tasks import all_videos, prepare, resolve_index

    index = resolve_index(data_root, dataset, split, _say)
    cache = FrameCache(short_side=short_side, fmt=fmt, quality=quality)
    with _progress(len(all_videos(index)), "caching") as bar:
        r = prepare(index, cache, workers, lambda: bar.update(1))
    click.echo(
        f"frame cache {r.cache_root}: {r.written} videos written, {r.already} already there, "
        f"{r.frames} frames, {r.bytes / 2**20:.1f} MiB, {len(r.failed)} failed"
    )
    for path, why in sorted(r.truncated.items()):
        click.echo(f"  truncated {path}: {why}")
    for path, why in sorted(r.failed.items()):
        click.echo(f"  failed {path}: {why}")
    if r.failed and not (r.written or r.already):
        raise PRPError("no video could be cached")
