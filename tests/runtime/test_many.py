"""Many sources through one engine, whole folders, bad files among good ones, resuming with
--skip-done, and action segments: real videos, real ONNX Runtime, real processes."""

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from prp_deploy import Recognizer, Segmenter
from prp_deploy.errors import PRPError
from prp_deploy.runtime.backends import OnnxRuntimeBackend
from prp_deploy.runtime.model_info import read_model_info
from prp_deploy.runtime.run import stream_records
from prp_deploy.runtime.options import RunOptions
from prp_deploy.runtime.scheduler import Source, schedule
from prp_deploy.runtime.source_list import expand_sources, output_stems
from prp_deploy.runtime.sources import FrameReader
from tests.conftest import index_frame, write_video
from tests.runtime.conftest import LEVELS


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "prp_deploy", *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def grey_video(path: Path, levels_and_lengths, size=(64, 48), fps=25.0) -> Path:
    """A video of flat grey stretches: [(level, frames), ...]."""
    frames = [np.full((size[1], size[0], 3), level, np.uint8) for level, n in levels_and_lengths for _ in range(n)]
    return write_video(path, frames, fps)


def test_windows_are_batched_across_sources_fairly_and_match_single_runs(exported, tmp_path):
    """Each source's records are exactly what it gives alone; engine calls mix sources; no source waits for another to end."""
    videos = [write_video(tmp_path / f"v{i}.avi", [index_frame((i * 5 + j) % 30, 80, 60) for j in range(40 + 10 * i)]) for i in range(3)]
    info = read_model_info(exported)

    class Recording:
        name, outputs, max_batch = "recording", ("logits", "features"), None

        def __init__(self):
            self.inner, self.calls = OnnxRuntimeBackend(exported / "model.onnx"), []

        def run(self, x):
            self.calls.append(len(x))
            return self.inner.run(x)

    backend = Recording()
    sources = [Source(str(v), v.stem) for v in videos]
    order = []
    records: dict[str, list] = {s.name: [] for s in sources}
    for ev in schedule(sources, info, backend, RunOptions(batch=6, live=False), max_open=3):
        if ev.kind == "windows":
            records[ev.source.name] += ev.records
            order.append((ev.source.name, len(backend.calls)))
    assert all(s.status == "ok" for s in sources) and max(backend.calls) == 6
    early = {name for name, call in order if call <= 3}
    assert len(early) == 3  # the first three engine calls served every source: none waits for another to end
    assert any(len({n for n, c in order if c == call}) > 1 for call in set(c for _, c in order))  # calls mix sources
    for v in videos:
        alone = list(stream_records(str(v), info, OnnxRuntimeBackend(exported / "model.onnx"), RunOptions(batch=1)))
        got = records[str(v)]
        assert [r["start_frame"] for r in got] == [r["start_frame"] for r in alone]
        for a, b in zip(got, alone):
            assert a["top"][0]["label"] == b["top"][0]["label"]
            assert a["top"][0]["score"] == pytest.approx(b["top"][0]["score"], abs=1e-4)


def test_max_open_bounds_the_decoders(brightness_model, tmp_path):
    folder = tmp_path / "many"
    for i in range(12):
        grey_video(folder / f"sub{i % 3}" / f"c{i:02d}.avi", [(LEVELS["mid"], 12)])
    out = tmp_path / "out"
    r = cli("run", str(folder), "--model", str(brightness_model), "--allow-unverified", "--out", str(out), "--max-open", "2", "--batch", "4", "--features", str(out))
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    t = summary["totals"]
    assert t["sources"] == 12 and t["ok"] == 12 and 1 <= t["max_open_decoders"] <= 2 and t["engine_starts"] == 1
    assert sorted(p.name for p in out.glob("*.jsonl") if p.name != "sources.jsonl" and ".features" not in p.name) == [f"c{i:02d}.jsonl" for i in range(12)]
    assert all(r["video_top1"] == "mid" for r in summary["sources"])
    feats = np.load(out / "c05.features.npy")
    assert feats.shape == (summary["sources"][5]["windows"], 1) and len((out / "c05.features.jsonl").read_text().splitlines()) == len(feats)


def test_a_folder_with_bad_files_finishes_the_good_ones_and_exits_1(brightness_model, tmp_path):
    folder = tmp_path / "videos"
    good = [grey_video(folder / f"good{i}.avi", [(LEVELS["bright"], 30)]) for i in range(3)]
    (folder / "notvideo.mp4").write_text("hello")
    (folder / "empty.avi").write_bytes(b"")
    long = grey_video(tmp_path / "long.avi", [(LEVELS["dark"], 300)])
    data = long.read_bytes()
    (folder / "truncated.avi").write_bytes(data[: len(data) // 2])  # decodes half-way, then ends early
    out = tmp_path / "out"
    r = cli("run", str(folder), "--model", str(brightness_model), "--allow-unverified", "--out", str(out))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: 3 of 6 sources failed")
    rows = {row["output"]: row for row in json.loads((out / "summary.json").read_text())["sources"]}
    assert all(rows[g.stem]["status"] == "ok" and rows[g.stem]["video_top1"] == "bright" for g in good)
    assert "cannot open" in rows["notvideo"]["reason"] and rows["empty"]["status"] == "failed"
    assert "corrupt or truncated" in rows["truncated"]["reason"]
    kept = [json.loads(l) for l in (out / "truncated.jsonl").read_text().splitlines()]
    assert len(kept) > 10 and all(k["top"][0]["label"] == "dark" for k in kept)  # what was written before it died stays


def test_skip_done_resumes_a_crashed_folder_run(brightness_model, tmp_path):
    folder = tmp_path / "videos"
    for i in range(5):
        grey_video(folder / f"v{i}.avi", [(LEVELS["dark"], 20)])
    out = tmp_path / "out"
    assert cli("run", str(folder), "--model", str(brightness_model), "--allow-unverified", "--out", str(out)).returncode == 0
    log = out / "sources.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])  # as if killed while writing the third line
    (out / "v4.jsonl").unlink()
    r = cli("run", str(folder), "--model", str(brightness_model), "--allow-unverified", "--out", str(out), "--skip-done")
    assert r.returncode == 0, r.stderr
    assert "2 of 5 sources finished before, 3 to run" in r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"]["skipped"] == 2 and summary["totals"]["ok"] == 3 and len(summary["sources"]) == 5
    assert all((out / f"v{i}.jsonl").exists() for i in range(5))


def test_segments_on_concatenated_clips_find_every_cut_within_one_stride(brightness_model, tmp_path):
    plan = [("dark", 37), ("mid", 53), ("bright", 51), ("mid", 49)]  # cuts at 37, 90, 141; not on the stride's grid
    video = grey_video(tmp_path / "cuts.avi", [(LEVELS[c], n) for c, n in plan])
    out = tmp_path / "w.jsonl"
    overlay = tmp_path / "o.mp4"
    r = cli("run", str(video), "--model", str(brightness_model), "--allow-unverified", "--out", str(out), "--segments", "--min-windows", "3", "--overlay", str(overlay))
    assert r.returncode == 0, r.stderr
    segments = [json.loads(l) for l in out.with_suffix(".segments.jsonl").read_text().splitlines()]
    stride = 4  # half of the 8-frame window
    assert [s["label"] for s in sorted(segments, key=lambda s: s["start_frame"])] == [c for c, _ in plan]
    cuts = np.cumsum([n for _, n in plan])
    starts = sorted(s["start_frame"] for s in segments)
    ends = sorted(s["end_frame"] for s in segments)
    assert starts[0] == 0 and cuts[-1] - stride <= ends[-1] <= cuts[-1]
    for cut, start, end in zip(cuts[:-1], starts[1:], ends[:-1]):
        assert abs(start - cut) <= stride and abs(end - cut) <= stride
    assert all(s["end_s"] - s["start_s"] >= 3 * stride / 25.0 for s in segments)
    assert {"source", "segment", "label", "start_s", "end_s", "start_frame", "end_frame", "score"} == set(segments[0])
    cap = cv2.VideoCapture(str(overlay))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 185)
    ok, last = cap.read()
    bar = last[-3:, : last.shape[1] // 4].reshape(-1, 3).astype(int)  # the timeline's first quarter: the dark segment, drawn in colour
    assert ok and (bar.max(1) - bar.min(1)).mean() > 60, "no coloured timeline bar at the bottom of the overlay"


def test_progress_bars_on_a_terminal_and_short_lines_on_stdout(brightness_model, tmp_path):
    """With stdout and stderr on a terminal: bars for sources and frames on stderr, a short line per window on stdout."""
    import os
    import pty

    for i in range(3):
        grey_video(tmp_path / "v" / f"v{i}.avi", [(LEVELS["bright"], 30)])
    import fcntl
    import struct
    import termios

    out_master, out_slave = pty.openpty()
    err_master, err_slave = pty.openpty()
    for fd in (out_slave, err_slave):  # a terminal 100 columns wide (a new pty is 0 × 0, and tqdm draws nothing in 0 columns)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    p = subprocess.Popen([sys.executable, "-m", "prp_deploy", "run", str(tmp_path / "v"), "--model", str(brightness_model), "--allow-unverified"],
                         stdout=out_slave, stderr=err_slave)
    os.close(out_slave)
    os.close(err_slave)

    def drain(fd):
        chunks = []
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the other end closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    import threading

    got = {}
    readers = [threading.Thread(target=lambda k=k, fd=fd: got.__setitem__(k, drain(fd))) for k, fd in (("out", out_master), ("err", err_master))]
    for t in readers:
        t.start()
    assert p.wait(timeout=120) == 0
    for t in readers:
        t.join(timeout=10)
    assert "sources" in got["err"] and "3/3" in got["err"] and "frame" in got["err"]
    lines = [l for l in got["out"].splitlines() if l.strip()]
    assert lines and all("bright" in l and not l.lstrip().startswith("{") for l in lines)
    assert {l.split()[0] for l in lines} == {"v0", "v1", "v2"}  # each line names its source


def test_segmenter_hysteresis_and_minimum_length():
    seg = Segmenter(["a", "b"], smooth=1, threshold=0.6, hysteresis=0.3, min_windows=2)
    scores = [0.9, 0.5, 0.4, 0.9, 0.2, 0.2, 0.7, 0.1, 0.1]  # class a; b gets the rest
    found = []
    for i, p in enumerate(scores):
        found += seg.push(4 * i, 4 * i + 8, 0.16 * i, 0.16 * i + 0.32, [p, 1 - p])
    found += seg.finish()
    a = [s for s in found if s.label == "a"]
    assert len(a) == 1 and a[0].start_frame == 0  # 0.5 and 0.4 stay above the hysteresis; the lone 0.7 is shorter than 2 windows
    assert a[0].end_frame == 4 * 3 + 6  # midway between window 3's centre and window 4's
    b = [s for s in found if s.label == "b"]
    # b: the lone 0.6 at window 2 is too short; from window 4 on it never falls below 0.3 and ends with the source
    assert [(s.start_frame, s.end_frame) for s in b] == [(18, 4 * 8 + 8)]
    with pytest.raises(PRPError):
        Segmenter(["a"], threshold=0.3, hysteresis=0.5)


def test_stdout_is_short_lines_on_request_and_jsonl_in_a_pipe(brightness_model, tmp_path):
    video = grey_video(tmp_path / "v.avi", [(LEVELS["dark"], 24)])
    text = cli("run", str(video), "--model", str(brightness_model), "--allow-unverified", "--format", "text")
    piped = cli("run", str(video), "--model", str(brightness_model), "--allow-unverified")
    assert text.returncode == 0 and piped.returncode == 0
    assert text.stdout.splitlines()[0].split() == ["0.00-0.28", "s", "dark", "1.00"]  # its first and last frames' times
    assert len(piped.stdout.splitlines()) == len(text.stdout.splitlines()) == 5
    assert json.loads(piped.stdout.splitlines()[0])["top"][0]["label"] == "dark"


def test_sources_from_globs_lists_and_folders(tmp_path):
    for name in ("a/x.avi", "b/x.avi", "b/y.mp4", "b/notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    listing = tmp_path / "list.txt"
    listing.write_text("# cameras\nb/y.mp4\n\n0\nrtsp://cam.local/live\n")
    got = expand_sources([str(tmp_path / "a"), str(tmp_path / "b" / "*.avi"), f"@{listing}", str(tmp_path / "a" / "x.avi")])
    assert got == [str(tmp_path / "a/x.avi"), str(tmp_path / "b/x.avi"), str(tmp_path / "b/y.mp4"), "0", "rtsp://cam.local/live"]
    assert output_stems(got) == ["a__x", "b__x", "y", "webcam0", "cam.local_live"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(PRPError, match="no videos"):
        expand_sources([str(tmp_path / "empty")])
    with pytest.raises(PRPError, match="matches no file"):
        expand_sources([str(tmp_path / "*.mkv")])


def test_recognizer_stream_many_reports_failures_and_carries_on(brightness_model, tmp_path):
    a = grey_video(tmp_path / "a.avi", [(LEVELS["dark"], 20)])
    b = grey_video(tmp_path / "b.avi", [(LEVELS["bright"], 20)])
    rec = Recognizer(brightness_model, allow_unverified=True)
    failures = []
    records = list(rec.stream_many([a, tmp_path / "missing.avi", b], on_failure=lambda name, why: failures.append((name, why))))
    labels = {r["source"]: {x["top"][0]["label"] for x in records if x["source"] == r["source"]} for r in records}
    assert labels == {str(a): {"dark"}, str(b): {"bright"}}
    assert len(failures) == 1 and "no such file" in failures[0][1]
    assert FrameReader.process_open.now == 0  # every decoder was released


def test_bench_streams_reports_aggregate_and_per_stream_latency(brightness_model, tmp_path):
    video = grey_video(tmp_path / "v.avi", [(LEVELS["mid"], 40)])
    r = cli("bench", "--model", str(brightness_model), "--allow-unverified", "--backends", "onnxruntime", "--batch", "4", "--iters", "2",
            "--video", str(video), "--streams", "3", "--json", str(tmp_path / "b.json"))
    assert r.returncode == 0, r.stderr
    e = json.loads((tmp_path / "b.json").read_text())["end_to_end"]
    assert e["streams"] == 3 and e["windows"] == 3 * 9 and len(e["per_stream"]) == 3 and "stream 2:" in r.stdout


@pytest.mark.parametrize("args,pattern", [
    (["VIDEO", "--skip-done"], "--skip-done needs --out DIR"),
    (["VIDEO", "--segments", "--threshold", "0.2", "--hysteresis", "0.4"], "--hysteresis .* must not be above"),
    (["*.nothing"], "the pattern matches no file"),
    (["@missing.txt"], "no such list file"),
    (["VIDEO", "VIDEO2", "--out", "FILE"], "with several sources .*this names a folder"),
])
def test_usage_errors_exit_2_in_one_line(args, pattern, brightness_model, tmp_path):
    subs = {"VIDEO": str(grey_video(tmp_path / "v.avi", [(LEVELS["dark"], 10)])), "VIDEO2": str(grey_video(tmp_path / "w.avi", [(LEVELS["dark"], 10)])),
            "FILE": str(tmp_path / "v.avi")}
    r = cli("run", *[subs.get(a, a) for a in args], "--model", str(brightness_model), "--allow-unverified", cwd=tmp_path)
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and re.search(pattern, errors[0]) and "Traceback" not in r.stderr, r.stderr


def test_a_source_slow_to_open_holds_up_only_itself(brightness_model, tmp_path):
    """A URL whose server accepts and never answers: the file opened before it runs to its end
    meanwhile. (OpenCV serialises the FFmpeg opens themselves, so a file listed after the URL
    would still wait for the URL's open timeout.)"""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    held = []
    threading.Thread(target=lambda: [held.append(server.accept()) for _ in range(4)], daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/never.avi"
    video = grey_video(tmp_path / "v.avi", [(LEVELS["mid"], 40)])
    info = read_model_info(brightness_model)
    sources = [Source(str(video), "v"), Source(url, "url")]
    closed = [ev.source.stem for ev in schedule(sources, info, OnnxRuntimeBackend(brightness_model / "model.onnx"), RunOptions(batch=4), 2)
              if ev.kind == "close"]
    server.close()
    assert closed == ["v", "url"]  # the file finished while the URL was still trying to open
    assert sources[0].status == "ok" and sources[1].status == "failed" and sources[1].error.endswith("never.avi: no answer within 5 s")


def test_each_source_gets_its_own_windows_features_and_segments(brightness_model, tmp_path):
    """One grey level per source, so a window routed to the wrong source shows: every record,
    feature row and segment of a source carries its own level, and equals a run of it alone."""
    videos = {level: grey_video(tmp_path / "v" / f"{level}.avi", [(LEVELS[level], 30 + 7 * i)]) for i, level in enumerate(LEVELS)}
    out = tmp_path / "together"
    r = cli("run", *map(str, videos.values()), "--model", str(brightness_model), "--allow-unverified", "--segments", "--batch", "5",
            "--out", str(out), "--features", str(out), "-q")
    assert r.returncode == 0, r.stderr
    for level, video in videos.items():
        records = [json.loads(l) for l in (out / f"{level}.jsonl").read_text().splitlines()]
        features = np.load(out / f"{level}.features.npy")
        segments = [json.loads(l) for l in (out / f"{level}.segments.jsonl").read_text().splitlines()]
        assert records and {x["source"] for x in records} == {str(video)} and {x["top"][0]["label"] for x in records} == {level}
        assert np.allclose(features, LEVELS[level] / 255, atol=0.02)  # the model's feature is the clip's mean grey level
        assert [s["label"] for s in segments] == [level] and segments[0]["source"] == str(video)
        alone = tmp_path / f"alone-{level}"
        r = cli("run", str(video), "--model", str(brightness_model), "--allow-unverified", "--out", str(alone / "w.jsonl"),
                "--features", str(alone / "f.npy"), "-q")
        assert r.returncode == 0, r.stderr
        assert [json.loads(l) for l in (alone / "w.jsonl").read_text().splitlines()] == records
        assert np.array_equal(np.load(alone / "f.npy"), features)
    assert json.loads((out / "summary.json").read_text())["totals"]["engine_starts"] == 1  # counted: one engine served all three
