"""Soak a live source: `prp-deploy run` on a live RTSP stream (the tests' GStreamer server, a real
process) whose server is killed and restarted again and again, the run's memory sampled all along
and its Prometheus metrics scraped. What a camera pipeline must survive for days, in hours.

    python scripts/soak_live.py EXPORT --minutes 30 --up 60 --down 10   # one row of docs/results.md's table
    python scripts/soak_live.py EXPORT --outages 10 --up 8 --down 1      # accelerated (tests/runtime/test_soak.py)

Needs GStreamer's RTSP server for the system Python (see .ci/run). Prints a Markdown row: hours,
outages (made, counted by the run's metrics, gaps in its windows), windows, memory start/end after
warm-up and its growth, wall_time monotonic, and the exit status after SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.rtsp import RtspServer, free_port, wait_for  # noqa: E402  (the tests' server driver)

HEADER = ("| hours | outages made / counted / gaps | windows | RSS after warm-up → end (MiB) | growth | wall_time monotonic | exit |\n"
          "|---|---|---|---|---|---|---|")


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Sampler(threading.Thread):
    """The run's resident memory every `every_s` seconds: [(monotonic time, MiB)]."""

    def __init__(self, pid: int, every_s: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.every_s, self.samples, self.done = pid, every_s, [], threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            mib = rss_mib(self.pid)
            if mib is not None:
                self.samples.append((time.monotonic(), mib))


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")] if path.exists() else []


def _outages_counted(port: int) -> float | None:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    return next((s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == "prp_source_outages_total"), None)


def soak(export: Path, out: Path, outages: int, up_s: float, down_s: float, warmup_outages: int = 2, say=print) -> dict:
    """Run a live source through `outages` server kills (`up_s` up, `down_s` down, each) and measure."""
    out, export = out.resolve(), export.resolve()  # the run's cwd is the repository (its own prp_deploy)
    out.mkdir(parents=True, exist_ok=True)
    windows_file, port = out / "w.jsonl", free_port()
    server = RtspServer().start()
    with open(out / "run.log", "w") as log:
        run = subprocess.Popen([sys.executable, "-m", "prp_deploy", "run", server.url("live"), "--model", str(export), "--out",
                                str(windows_file), "--metrics", str(port), "--reconnect-wait", "0.2", "--reconnect-max-wait", "1",
                                "--stall-timeout", "2"], stderr=log, cwd=REPO)
    sampler = Sampler(run.pid)
    sampler.start()
    t0, warm_from, counted = time.monotonic(), None, None
    try:
        if not wait_for(lambda: len(_records(windows_file)) >= 2 or run.poll() is not None, 60):
            raise RuntimeError(f"no windows from the live stream in 60 s; see {out / 'run.log'}")
        for i in range(outages):
            time.sleep(up_s)
            server.kill()
            time.sleep(down_s)
            server.start()
            if i + 1 == warmup_outages:
                warm_from = time.monotonic() + up_s / 2  # the run is back and has settled
            if (i + 1) % max(1, outages // 10) == 0:
                say(f"soak: {i + 1}/{outages} outages, {time.monotonic() - t0:.0f} s, RSS {rss_mib(run.pid)} MiB")
        time.sleep(up_s)
        counted = _outages_counted(port)
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=60)
    finally:
        sampler.done.set()
        run.kill()
        server.kill()
    return _measure(_records(windows_file), sampler.samples, warm_from, outages, counted, run.returncode, time.monotonic() - t0)


def _measure(records: list[dict], samples: list, warm_from: float | None, outages: int, counted, rc: int, took_s: float) -> dict:
    starts = [r["start_s"] for r in records]
    steps = [b - a for a, b in zip(starts, starts[1:])]
    usual = statistics.median(steps) if steps else 0.0
    gaps = sum(s > max(0.5, 5 * usual) for s in steps)  # a window's time step beyond the usual: an outage, or windows lost
    walls = [r["wall_time"] for r in records]
    warm = [m for t, m in samples if warm_from is not None and t >= warm_from] or [m for _, m in samples]
    start_mib, end_mib = statistics.median(warm[:10]), statistics.median(warm[-10:])
    return {"hours": took_s / 3600, "outages": outages, "outages_counted": counted, "gaps": gaps, "windows": len(records),
            "numbered_on": [r["window"] for r in records] == list(range(len(records))), "wall_time_monotonic": walls == sorted(walls),
            "rss_start_mib": start_mib, "rss_end_mib": end_mib, "rss_growth": end_mib / start_mib - 1, "rss_peak_mib": max(warm),
            "exit": rc}


def row(m: dict) -> str:
    return (f"| {m['hours']:.2f} | {m['outages']} / {m['outages_counted']:.0f} / {m['gaps']} | {m['windows']} | "
            f"{m['rss_start_mib']:.0f} → {m['rss_end_mib']:.0f} (peak {m['rss_peak_mib']:.0f}) | {m['rss_growth']:+.1%} | "
            f"{'yes' if m['wall_time_monotonic'] else 'NO'} | {m['exit']} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("export", type=Path, help="an export folder (runs/NAME/export)")
    p.add_argument("--outages", type=int, default=None, help="server kills (default: as many as --minutes holds)")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--up", type=float, default=60.0, help="seconds the server stays up between kills")
    p.add_argument("--down", type=float, default=10.0, help="seconds each outage lasts")
    p.add_argument("--out", type=Path, default=Path("soak-out"))
    a = p.parse_args()
    outages = a.outages if a.outages is not None else max(1, int(a.minutes * 60 // (a.up + a.down)))
    m = soak(a.export, a.out, outages, a.up, a.down)
    (a.out / "soak.json").write_text(json.dumps(m, indent=2))
    print(HEADER)
    print(row(m))


if __name__ == "__main__":
    main()
