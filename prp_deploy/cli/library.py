"""The video library: `index` (sources → the library's windows) and `search` (by example)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..clitypes import TimePoint
from ..errors import PRPError
from ..runtime.artifacts import ENGINES, PRECISIONS

from .common import check_new_file, say


@click.command("index")
@click.argument("sources", nargs=-1, required=True)
@click.option("--out", "library", type=click.Path(path_type=Path), required=True, help="The library folder (made, or added to).")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Export folder, .onnx or .plan (default: the library's own model, else the newest export under runs/).")
@click.option("--backend", type=click.Choice(["auto", *ENGINES]), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(PRECISIONS), default=None, help="Which artefact of the export.")
@click.option("--stride", type=click.IntRange(1), default=None, help="Source frames between window starts (default: half a window).")
@click.option("--batch", type=click.IntRange(1), default=8, show_default=True, help="Windows per engine call.")
@click.option("--topk", type=click.IntRange(1), default=5, show_default=True, help="Labels kept per window and video (a recognizer).")
@click.option("--max-open", type=click.IntRange(1), default=None, help="Sources decoded at once (default: twice the cores).")
@click.option("--commit-every", type=click.IntRange(1), default=64, show_default=True,
              help="Sources per Parquet part: what an interrupted job can lose.")
@click.option("--index", "index_kind", type=click.Choice(["auto", "exact", "ivf"]), default="auto", show_default=True,
              help="FAISS index: auto = exact below 100,000 vectors, IVF above.")
@click.option("--nprobe", type=click.IntRange(1), default=None, help="IVF cells scanned a query (default: those holding about 25,000 vectors).")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS|local",
              help="Run on a Ray cluster: 'local' starts one here, else its address (auto, or HOST:PORT).")
@click.option("--actors", type=click.IntRange(1), default=None, help="Ray: engines (actors) at once (default: the cluster's CPUs / --cpus-per-actor).")
@click.option("--cpus-per-actor", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True)
@click.option("--gpus-per-actor", type=click.FloatRange(0), default=0.0, show_default=True)
@click.option("--sources-per-task", type=click.IntRange(1), default=8, show_default=True,
              help="Ray: sources a task embeds (they share engine batches; an actor that dies redoes at most these).")
@click.option("--allow-unverified", is_flag=True, help="Use a model file that parity did not pass.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--start", type=TimePoint(), default=None, help="Index each file from this time on (seconds or HH:MM:SS), by a seek.")
@click.option("--end", type=TimePoint(), default=None, help="Index each file up to this time.")
def index_cmd(sources, library, model, backend, precision, stride, batch, topk, max_open, commit_every, index_kind, nprobe, ray_address,
              actors, cpus_per_actor, gpus_per_actor, sources_per_task, allow_unverified, quiet, start, end):
    """Embed SOURCES (files, folders, globs, @LIST.txt, URLs) into the video library --out: a row per
    window and per video in Parquet, and FAISS indexes. Run again with more sources: only the new
    ones are embedded. Exit 1 when a source failed (it is recorded with its reason)."""
    from ..library import IndexOptions, Library
    from ..runtime.run import DEFAULT_MAX_OPEN

    opts = IndexOptions(backend=backend, precision=precision, allow_unverified=allow_unverified, stride=stride, batch=batch, topk=topk,
                        max_open=max_open or DEFAULT_MAX_OPEN, commit_every=commit_every, index=index_kind, nprobe=nprobe,
                        ray=ray_address, actors=actors, cpus_per_actor=cpus_per_actor, gpus_per_actor=gpus_per_actor,
                        sources_per_task=sources_per_task, start=start, end=end,
                        progress=not quiet and sys.stderr.isatty())
    lib = Library(library)
    report = lib.add(list(sources), model, opts, say=say)
    say(report.line())
    say(f"library: {library} ({lib.meta['counts']['videos']} videos, {lib.meta['counts']['windows']} windows; "
         f"index: {lib.meta['index']['videos']})")
    if report.failed:
        raise PRPError(f"{len(report.failed)} source(s) failed and are listed in the library with their reasons "
                       f"(first: {report.failed[0][0]}: {report.failed[0][1]})")


@click.command("search")
@click.argument("query")
@click.option("--library", type=click.Path(path_type=Path), required=True, help="A library made by `prp-deploy index`.")
@click.option("--topk", type=click.IntRange(1), default=10, show_default=True)
@click.option("--by", type=click.Choice(["video", "window"]), default="video", show_default=True,
              help="Rank whole videos, or windows (time spans) of them.")
@click.option("--where", default=None, help="Only hits whose source path (or file name) matches this glob.")
@click.option("--include-self", is_flag=True, help="Keep the query's own source (video) or its overlapping windows among the hits.")
@click.option("--format", "fmt", type=click.Choice(["auto", "text", "jsonl"]), default="auto", show_default=True,
              help="auto = short lines on a terminal, JSONL in a pipe.")
@click.option("--html", "html_page", type=click.Path(path_type=Path), default=None,
              help="Also write one self-contained page: a thumbnail strip of each hit beside the query's.")
def search_cmd(query, library, topk, by, where, include_self, fmt, html_page):
    """The videos (or windows) of --library nearest to QUERY: a video file, a span of one
    (clip.mp4@12.5-15.0, in seconds), or a source already in the library."""
    from ..library import Library
    from ..library.page import write_page

    from ..library import parse_query

    check_new_file(html_page, "--html", (".html", ".htm"), [parse_query(query)[0], library])
    lib = Library(library)
    hits = lib.search(query, topk, by, where, include_self, say=say)
    text = fmt == "text" or (fmt == "auto" and sys.stdout.isatty())
    for h in hits:
        if text:
            span = f"{h.start_s:7.2f}-{h.end_s:7.2f} s" if h.start_s is not None else " " * 17
            label = f"  {h.labels[0][0]} {h.labels[0][1]:.2f}" if h.labels else ""
            click.echo(f"{h.rank:3d}  {h.score:.3f}  {span}  {h.source}{label}")
        else:
            click.echo(json.dumps(h.as_dict()))
    if not hits:
        say("no hits (the library is empty, or --where matched nothing)")
    if html_page is not None:
        write_page(html_page, lib, query, hits, by)
        say(f"wrote {html_page}")
