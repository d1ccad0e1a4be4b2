"""`prp-deploy bench`: one run, everything side by side (machines here are noisy).

- per backend and batch size: clips/s (from the median latency), latency p50/p95, the same
  random clips for all, backends timed in interleaved rounds so a slow spell hits all;
- the model's GFLOPs per clip (from model.json, counted at export) and the GFLOP/s each
  backend achieves against a float32 matmul peak measured on this machine just before;
- end-to-end `run` throughput on a video against pure inference of the same windows
  (pipeline efficiency: how much decoding and windowing cost once overlapped); with
  `--streams N`, N copies of it at once through the scheduler (aggregate windows/s, and
  latency p50/p95 per stream).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import PRPError
from .artifacts import ARTIFACTS
from .artifacts import UnverifiedModel
from .backends import open_artifact
from .model_info import read_model_info
from .options import RunOptions
from .scheduler import Source, schedule


def matmul_peak_gflops(n: int = 1024, seconds: float = 1.0) -> float:
    """float32 GEMM GFLOP/s of numpy's BLAS here: the machine's practical peak to compare against."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.copy()
    a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def _backends(model: Path, wanted: list[str], extra: dict, allow_unverified: bool = False, say=lambda s: None):
    """The artefact table's rows asked for (auto: every artefact in the folder), then the caller's extras."""
    auto = wanted == ["auto"]
    unknown = [w for w in wanted if w != "auto" and w not in ARTIFACTS and w not in extra]
    if unknown:
        raise PRPError(f"unknown backend {unknown[0]!r}; expected auto or a comma list of {', '.join([*ARTIFACTS, *extra])}")
    for a in ARTIFACTS.values():
        if (auto and (model / a.file).exists()) or a.name in wanted:
            yield a.name, lambda a=a: open_artifact(model / a.file, a, allow_unverified=allow_unverified, say=say)
    for name, make in extra.items():  # e.g. torch, brought by the caller (the runtime imports no torch)
        if auto or name in wanted:
            yield name, make


ROUNDS = 3  # each backend is timed in this many interleaved rounds: a slow spell of a noisy machine hits all of them


def _latencies(backend, clips: np.ndarray, iters: int) -> list[float]:
    backend.run(clips)  # warm-up: first-call allocation and kernel selection are not steady state
    lat = []
    for _ in range(iters):
        t0 = time.perf_counter()
        backend.run(clips)
        lat.append(time.perf_counter() - t0)
    return lat


def _row(lat: list[float], batch: int) -> dict:
    """clips/s from the median latency (robust to a few slow calls), p50 and p95."""
    lat = np.array(lat)
    return {"clips_per_s": batch / float(np.median(lat)), "p50_ms": 1e3 * float(np.percentile(lat, 50)), "p95_ms": 1e3 * float(np.percentile(lat, 95))}


def bench(model: Path, backends: list[str], batches: list[int], iters: int, video: Path | None, say: Callable[[str], None] = lambda s: None,
          extra: dict | None = None, streams: int = 1, allow_unverified: bool = False) -> dict:
    """`extra`: name → zero-argument factory of more backends to compare (the CLI adds torch)."""
    model = Path(model)
    if not model.is_dir():
        raise PRPError(f"{model}: bench wants an export folder (with model.json)")
    info = read_model_info(model)
    gflops = info.raw.get("gflops_per_clip")
    peak = matmul_peak_gflops()
    rows, engines = [], {}
    rng = np.random.default_rng(0)
    for name, make in _backends(model, backends, extra or {}, allow_unverified, say):
        try:
            engines[name] = make()
        except UnverifiedModel as e:
            if backends != ["auto"]:  # asked for by name: parity's verdict binds, as in `run`
                raise
            say(f"bench: passing over {name}: {e}")
        except (PRPError, ImportError) as e:
            say(f"bench: {name} unavailable: {e}")
    for b in batches:
        clips = rng.random((b, *info.input_shape), dtype=np.float32)  # the same clips for every backend
        fits = [n for n, e in engines.items() if not (getattr(e, "max_batch", None) and b > e.max_batch)]
        lat: dict[str, list[float]] = {n: [] for n in fits}
        for _ in range(ROUNDS):
            for name in fits:
                lat[name] += _latencies(engines[name], clips, max(1, -(-iters // ROUNDS)))
        for name in fits:
            r = {**_row(lat[name], b), "backend": name, "batch": b}
            if gflops:
                r["gflop_per_s"] = gflops * r["clips_per_s"]
                r["of_peak"] = r["gflop_per_s"] / peak
            rows.append(r)
    rows.sort(key=lambda r: (list(engines).index(r["backend"]), r["batch"]))
    if not rows:
        raise PRPError("no backend could run here")
    result = {"model": str(model), "verified": all(getattr(e, "verified", True) is not False for e in engines.values()),
              "input": list(info.input_shape), "gflops_per_clip": gflops, "matmul_peak_gflop_per_s": peak, "rows": rows}
    if video is None:  # the longest built-in synthetic video: startup costs weigh least on it
        from ..data.synth import default_dataset
        from ..data.video import probe

        video = max(sorted((default_dataset() / "UCF-101").rglob("*.avi")), key=lambda p: probe(p).frame_count)
    first = next((a for a in ARTIFACTS if a in engines), next(iter(engines)))  # the table's order: fastest first
    result["end_to_end"] = end_to_end(info, engines[first], first, Path(video), max(batches), streams)
    return result


def end_to_end(info, engine, name: str, video: Path, batch: int, streams: int = 1) -> dict:
    """`streams` copies of `video` through the scheduler at once, then pure inference of as many
    windows at the same batch, in ROUNDS alternating rounds: their ratio is what decoding,
    windowing and scheduling cost. Latencies are the last round's."""
    if streams < 1:
        raise PRPError(f"--streams must be >= 1, got {streams}")
    run_s = pure_s = 0.0
    for _ in range(ROUNDS):  # run and pure inference alternate, so a slow spell of a noisy machine hits both
        sources = [Source(str(video), f"stream{i}") for i in range(streams)]
        t0 = time.perf_counter()
        n = sum(len(ev.records) for ev in schedule(sources, info, engine, RunOptions(task="both", batch=batch), max_open=streams))
        run_s += time.perf_counter() - t0
        failed = [s.error for s in sources if s.status != "ok"]
        if failed:
            raise PRPError(f"bench video failed: {failed[0]}")
        frames = sum(s.stats.frames for s in sources)
        clips = np.random.default_rng(1).random((min(batch, n), *info.input_shape), dtype=np.float32)
        t0 = time.perf_counter()
        done = 0
        while done < n:
            engine.run(clips[: min(len(clips), n - done)])
            done += len(clips)
        pure_s += time.perf_counter() - t0
    wall, pure = run_s / ROUNDS, pure_s / ROUNDS
    per_stream = [{"p50_ms": 1e3 * float(np.percentile(s.stats.latencies, 50)), "p95_ms": 1e3 * float(np.percentile(s.stats.latencies, 95)),
                   "windows": s.stats.windows} for s in sources]
    return {"video": str(video), "backend": name, "batch": batch, "streams": streams, "windows": n, "frames": frames,
            "run_windows_per_s": n / wall, "inference_windows_per_s": n / pure, "efficiency": pure / wall,
            "run_frames_per_s": frames / wall, "per_stream": per_stream}


def format_bench(r: dict) -> str:
    g = r["gflops_per_clip"]
    peak = (f"float32 matmul peak here {r['matmul_peak_gflop_per_s']:.0f} GFLOP/s ('of peak' is against it: "
            "INT8 and FP16 rows can pass 100 %)")
    # Speed relative to one backend at the same batch, measured in the same run: torch when it
    # ran, else the first backend (model.onnx, FP32, where it is asked for).
    names = [row["backend"] for row in r["rows"]]
    base = "torch" if "torch" in names else (names[0] if names else "")
    lines = [f"model {r['model']}: clip {r['input']}, {g:.2f} GFLOP per clip (FP32 count); {peak}" if g
             else f"model {r['model']}: clip {r['input']}; {peak}",
             f"{'backend':18s} {'batch':>5s} {'clips/s':>9s} {'p50 ms':>8s} {'p95 ms':>8s} {'GFLOP/s':>9s} {'of peak':>8s} "
             f"{'x ' + base[:14]:>16s}"]
    base_rate = {row["batch"]: row["clips_per_s"] for row in r["rows"] if row["backend"] == base}
    for row in r["rows"]:
        rel = f"{row['clips_per_s'] / base_rate[row['batch']]:16.2f}" if row["batch"] in base_rate else f"{'-':>16s}"
        gf = f"{row['gflop_per_s']:9.1f} {100 * row['of_peak']:7.1f}%" if "gflop_per_s" in row else f"{'-':>9s} {'-':>8s}"
        lines.append(f"{row['backend']:18s} {row['batch']:5d} {row['clips_per_s']:9.1f} {row['p50_ms']:8.2f} {row['p95_ms']:8.2f} {gf} {rel}")
    e = r["end_to_end"]
    copies = f"{e['streams']} streams of " if e["streams"] > 1 else ""
    lines.append(f"end to end ({e['backend']}, batch {e['batch']}, {e['windows']} windows of {copies}{e['video']}): run {e['run_windows_per_s']:.1f} windows/s "
                 f"({e['run_frames_per_s']:.0f} frames/s), pure inference {e['inference_windows_per_s']:.1f} windows/s, efficiency {100 * e['efficiency']:.0f}%")
    for i, p in enumerate(e["per_stream"] if e["streams"] > 1 else []):
        lines.append(f"  stream {i}: {p['windows']} windows, latency p50 {p['p50_ms']:.0f} ms, p95 {p['p95_ms']:.0f} ms")
    return "\n".join(lines)
