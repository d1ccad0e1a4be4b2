"""Re-measure what `export --int8` ships, on one or more trained runs: the export run as a user
runs it (a fresh folder, the export's defaults), then one table row per run from its
parity.json: the attempt kept, its INT8 layers, what the held-back judge predicted beside
what the test videos showed, clip agreement, the speed against FP32 here, the export's wall.

    python scripts/int8_report.py runs/NAME [runs/OTHER ...] [--engine nncf|ort|modelopt] [--json OUT.json]

The default run: README command one, then this on its run folder. Every engine and setting
side by side on one export: scripts/int8_engines.py. Nothing is written into the runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

def export_int8(run: Path, out: Path, engine: str | None) -> tuple[int, float, str]:
    cmd = [sys.executable, "-m", "prp_deploy", "export", str(run.resolve()), "--int8", "--out", str(out)]
    cmd += ["--int8-engine", engine] if engine else []
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)  # this checkout's code, whatever the caller's folder
    return r.returncode, time.time() - t0, r.stdout + r.stderr


def row(run: Path, parity: dict, code: int, wall: float) -> dict:
    checks = {c["output"]: c for c in parity["checks"] if c["artifact"] == "model_int8.onnx" and c["inputs"] != "random"}
    test, build = checks["video_top1"]["stats"], parity["build"]["onnxruntime-int8"]
    kept = next((a for a in build["attempts"] if a["remedy"] == build["remedy"]), {})
    held = kept.get("held_back_videos", {})
    speed = {b["batch"]: round(b["speedup"], 2) for b in parity.get("speed", {}).get("model_int8.onnx", {}).get("batches", [])}
    return {"run": str(run), "exit": code, "verdict": "PASSED" if parity["artifacts"].get("model_int8.onnx") else "FAILED",
            "kept": build["remedy"], "int8_layers": f"{build['quantised']['int8']}/{build['quantised']['of']}",
            "attempts": [(a["remedy"], a["passed"]) for a in build["attempts"]],
            "held_back": {k: held.get(k) for k in ("videos", "lost", "gained", "drop_points", "predicted_drop_points")},
            "test": {k: test[k] for k in ("videos", "lost", "gained", "accuracy_drop", "fp32_top1", "mcnemar_p")},
            "clip_agreement": checks["logits"]["stats"]["top1_agree"], "speed_vs_fp32": speed, "export_s": round(wall, 1)}


def markdown(rows: list[dict]) -> str:
    head = ("| run | FP32 top-1 | kept | INT8 layers | held-back: lost/gained, drop (predicted) | test: lost/gained of N, drop | "
            "clip agreement | × FP32 B1 / B8 | export | verdict |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        h, t, s = r["held_back"], r["test"], r["speed_vs_fp32"]
        lines.append(f"| {Path(r['run']).name} | {t['fp32_top1']:.2f} | {r['kept']} | {r['int8_layers']} | "
                     f"{h['lost']}/{h['gained']} of {h['videos']}, {h['drop_points']:+.2f} ({h['predicted_drop_points']:+.2f}) | "
                     f"{t['lost']}/{t['gained']} of {t['videos']}, {t['accuracy_drop']:+.2f} | {r['clip_agreement']:.3f} | "
                     f"{s.get(1, '–')} / {s.get(8, '–')} | {r['export_s']:.0f} s | **{r['verdict']}** |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--engine", choices=["nncf", "ort", "modelopt"], default=None, help="default: the export's own ladder")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, run in enumerate(args.runs):
            out = Path(tmp) / f"export-{i}"
            code, wall, log = export_int8(run, out, args.engine)
            if not (out / "parity.json").exists():
                sys.exit(f"{run}: export wrote no parity.json (exit {code}):\n{log[-2000:]}")
            rows.append(row(run, json.loads((out / "parity.json").read_text()), code, wall))
            print(json.dumps(rows[-1]), flush=True)
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps({"argv": sys.argv, "engine": args.engine, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
