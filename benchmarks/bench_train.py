"""Training throughput on synthetic batches already on the device: DP and DG-P side by side.

No dataset, no loader: this measures the model step alone (forward, loss, backward, SGD),
with the same settings `prp-deploy train` uses on that device (bf16 autocast and
channels_last_3d on CUDA). FLOPs per step are counted once with torch's FlopCounterMode.

    python benchmarks/bench_train.py --backbone r21d --batch 32 --frames 16 --crop 112   # the paper's input, on a GPU
    python benchmarks/bench_train.py --width 0.25 --frames 8 --crop 32 --batch 16          # the tiny CPU preset
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from prp_deploy.models import BACKBONES, EncoderConfig, PRPModel, build_encoder


def make_step(model, optimizer, batch, amp_dtype):
    def step():
        with torch.autocast(batch["clip"].device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = model(batch["clip"])
            loss = F.cross_entropy(out["rate_logits"].float(), batch["rate_label"])
            if "reconstruction" in out:
                loss = 0.1 * loss + ((out["reconstruction"].float() - batch["target"]) ** 2 * batch["motion"]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def bench(objective: str, args, device: torch.device) -> dict:
    torch.manual_seed(0)
    cfg = EncoderConfig(args.backbone, args.depth, args.width)
    rec = 2 if objective == "dgp" else None
    model = PRPModel(build_encoder(cfg), num_rates=4, rec_rate=rec, width=args.width).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last_3d)
    n, t, c = args.batch, args.frames, args.crop
    batch = {"clip": torch.rand(n, 3, t, c, c, device=device), "rate_label": torch.randint(0, 4, (n,), device=device)}
    if cuda:
        batch["clip"] = batch["clip"].contiguous(memory_format=torch.channels_last_3d)
    if rec:
        batch["target"] = torch.rand(n, 3, t * rec, c, c, device=device)
        batch["motion"] = torch.rand(n, 1, t * rec, c, c, device=device) + 0.8
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    step = make_step(model, opt, batch, torch.bfloat16 if cuda else None)
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    if cuda:
        torch.cuda.synchronize()  # the steps are queued asynchronously; time them all
    dt = (time.perf_counter() - t0) / args.steps
    return {"objective": objective, "steps_per_s": 1 / dt, "clips_per_s": n / dt, "tflops": flops / dt / 1e12, "gflop_per_clip": flops / n / 1e9}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="r21d", choices=list(BACKBONES))
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--crop", type=int, default=112)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = ap.parse_args(argv)
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels once
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {name}; {args.backbone}-{args.depth} width {args.width}, batch {args.batch} × 3×{args.frames}×{args.crop}×{args.crop}")
    rows = [bench(o, args, device) for o in ("dp", "dgp")]
    print(f"{'objective':10s} {'steps/s':>9s} {'clips/s':>9s} {'GFLOP/clip':>11s} {'TFLOP/s':>9s} {'x DP':>6s}")
    for r in rows:
        print(f"{r['objective']:10s} {r['steps_per_s']:9.2f} {r['clips_per_s']:9.1f} {r['gflop_per_clip']:11.2f} {r['tflops']:9.3f} {r['clips_per_s'] / rows[0]['clips_per_s']:6.2f}")


if __name__ == "__main__":
    main()
