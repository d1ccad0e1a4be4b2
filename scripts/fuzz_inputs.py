"""Fuzzed inputs: real clips from ../shared/data/clips, damaged the ways files break (cut
short, bits flipped, another file's header, a zeroed region), through the data layer's
reader, the training and evaluation loaders, `data info`'s probe and the runtime's `run`.

Every outcome must be frames read or a one-line user error (PRPError) naming the file; any
other exception is a bug (its traceback is kept), and every case runs in a worker process
under a time limit, so a hang is caught too.

    python scripts/fuzz_inputs.py --cases 500 --json fuzz.json     # docs/results.md
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO.parent / "shared" / "data" / "clips"
CASE_TIMEOUT_S = 60


def run_case(src: str, kind: str, at: float, size: float, seed: int, other: str, export: str, work: str) -> dict:
    """One damaged file through every reader; returns {target: "ok" | "error: ..." | "bug: ..."}."""
    from prp_deploy.data.clips import DecodedFrames, EvalClips, PretrainClips
    from prp_deploy.data.corrupt import Corruption
    from prp_deploy.data.datasets import Video
    from prp_deploy.data.preprocess import Preprocess
    from prp_deploy.data.tasks import probe_one
    from prp_deploy.data.video import iter_frames, probe
    from prp_deploy.errors import PRPError
    from prp_deploy.runtime.run import RunOptions, RunOutputs, RunSettings, run

    path = Corruption(kind, at, size, seed).write(Path(src), Path(work) / f"case{Path(src).suffix}", Path(other))
    spec = Preprocess(short_side=40, crop=32, frames=8)
    targets = {
        "probe": lambda: probe(path, counts=False).frame_count,
        "read": lambda: sum(1 for _ in iter_frames(path)),
        "data_info": lambda: probe_one(str(path)),  # never raises: an unreadable file comes back with its reason
        "eval_loader": lambda: EvalClips([Video(path, 0)], spec, 2)[0] is not None,
        "train_loader": lambda: PretrainClips([Video(path, 0)], DecodedFrames(40), clip_len=8, crop=32, rec_rate=2)[0] is not None,
        # A random-init model: the readers are under test, not the model, whose parity fails as degenerate.
        "run": lambda: run(str(path), model=export, options=RunSettings(windows=RunOptions(task="recognize"), allow_unverified=True,
                                                                          outputs=RunOutputs(out=Path(work) / "w.jsonl")))["totals"]["windows"],
    }
    outcome = {}
    for name, fn in targets.items():
        try:
            fn()
            outcome[name] = "ok"
        except PRPError as e:
            one_line = "\n" not in str(e) and str(path) in str(e)
            outcome[name] = f"error: {e}" if one_line else f"bug: error not one line naming the file: {e!r}"
        except Exception:
            outcome[name] = "bug: " + traceback.format_exc(limit=4)
    return outcome


def _worker(args):
    import logging

    logging.disable(logging.WARNING)  # the loaders warn per unreadable video; the outcome says it
    with tempfile.TemporaryDirectory() as work:
        return run_case(*args, work)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=500)
    ap.add_argument("--export", type=Path, default=None, help="An export folder (default: a tiny random-init model made now).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    clips = sorted(p for p in CLIPS.rglob("*") if p.suffix in (".avi", ".mp4"))
    if not clips:
        print(f"no clips under {CLIPS}", file=sys.stderr)
        return 2
    export = args.export
    if export is None:
        from prp_deploy.export.random_model import export_random

        export = export_random("r3d", 10, 0.125, 8, 32, Path(tempfile.mkdtemp()), int8=False)
    rng = random.Random(args.seed)
    cases = [(str(rng.choice(clips)), rng.choice(("truncate", "flip", "splice", "zero")), rng.random(), rng.choice((1e-4, 1e-3, 0.01, 0.1)),
              rng.randrange(1 << 30), str(rng.choice(clips)), str(export)) for _ in range(args.cases)]
    results, hangs, t0 = [], 0, time.perf_counter()
    pool = mp.get_context("spawn").Pool(args.workers)
    pending = [(case, pool.apply_async(_worker, (case,))) for case in cases]
    for case, job in pending:
        try:
            outcome = job.get(timeout=CASE_TIMEOUT_S)
        except mp.TimeoutError:
            hangs += 1
            outcome = {"hang": f"no answer within {CASE_TIMEOUT_S} s"}
            pool.terminate()
            pool = mp.get_context("spawn").Pool(args.workers)  # the remaining jobs of the old pool are lost: stop counting them
            results.append({"case": case[:6], "outcome": outcome})
            break
        results.append({"case": case[:6], "outcome": outcome})
    pool.close()
    bugs = [r for r in results if any(v.startswith("bug") for v in r["outcome"].values())]
    tally: dict[str, dict[str, int]] = {}
    for r in results:
        for target, v in r["outcome"].items():
            tally.setdefault(target, {}).setdefault(v.split(":")[0], 0)
            tally[target][v.split(":")[0]] += 1
    summary = {"cases": len(results), "bugs": len(bugs), "hangs": hangs, "seconds": round(time.perf_counter() - t0, 1), "by_target": tally}
    print(json.dumps(summary, indent=1))
    for b in bugs[:5]:
        print(json.dumps(b, indent=1), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({**summary, "results": results}, indent=1))
    return 0 if not bugs and not hangs and len(results) == args.cases else 1


if __name__ == "__main__":
    sys.exit(main())
