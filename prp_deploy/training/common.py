"""What every training stage needs: device and process group, a resumable sampler, loaders,
metrics (JSONL + TensorBoard), and a Ctrl-C that stops after saving."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler

from ..data.loader import collate_skipping
from ..errors import PRPError


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def channels_last(self) -> bool:
        # Channels-last 3D on every device: cuDNN's and oneDNN's fastest conv3d kernels take
        # NDHWC. Measured on this workplace's 2-core AVX-512 CPU: the tiny preset's DG-P step
        # 1.3-1.5× faster (docs/results.md), same float32 math.
        return True

    @property
    def amp_dtype(self) -> torch.dtype | None:
        # bf16 autocast on GPUs: no loss scaling needed, and Ampere/Hopper run it on tensor cores.
        return torch.bfloat16 if self.device.type == "cuda" else None


def setup_runtime(device: str) -> Runtime:
    """Pick the device; under torchrun (WORLD_SIZE > 1) join the process group, one GPU per rank."""
    if device == "cuda" and not torch.cuda.is_available():
        raise PRPError("--device cuda: no CUDA GPU is visible to torch (torch.cuda.is_available() is False)")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")
        dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(dev)
        return Runtime(dev, rank, world)
    return Runtime(torch.device("cuda") if use_cuda else torch.device("cpu"))


def all_reduce_sum(values: list[float], rt: Runtime) -> list[float]:
    if rt.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=rt.device)
    dist.all_reduce(t)
    return t.tolist()


class EpochSampler(Sampler[int]):
    """Order as a pure function of (seed, epoch): shuffled or not, sharded over ranks, and able
    to start mid-epoch. Resuming at (epoch, position) therefore replays exactly the batches
    an uninterrupted run would have seen."""

    def __init__(self, n: int, seed: int, shuffle: bool, rank: int = 0, world: int = 1):
        self.n, self.seed, self.shuffle, self.rank, self.world = n, seed, shuffle, rank, world
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def _order(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        per_rank = math.ceil(self.n / self.world)
        order += order[: per_rank * self.world - self.n]  # equal shards: DDP steps in lockstep
        return order[self.rank :: self.world]

    def __iter__(self):
        return iter(self._order()[self.skip :])

    def __len__(self) -> int:
        return max(0, math.ceil(self.n / self.world) - self.skip)


def make_loader(dataset, batch_size: int, sampler: Sampler | None, workers: int, device: torch.device, drop_last: bool = False) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_skipping,
        pin_memory=device.type == "cuda",
        drop_last=drop_last,
        persistent_workers=False,  # workers are re-made each epoch so they see set_epoch
        prefetch_factor=4 if workers else None,
    )


def to_device(batch: dict, device: torch.device, channels_last: bool) -> dict:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if channels_last and v.dim() == 5 and k == "clip":
                v = v.contiguous(memory_format=torch.channels_last_3d)
        out[k] = v
    return out


class MetricsLog:
    """metrics.jsonl (one line per epoch and stage) and TensorBoard events, written by rank 0 only."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.enabled = enabled
        self._tb = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
        stage, epoch = record["stage"], record["epoch"]
        for k, v in record.items():
            if isinstance(v, (int, float)) and k != "epoch":
                self._tb.add_scalar(f"{stage}/{k}", v, epoch)
        self._tb.flush()

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


class StopFlag:
    """Ctrl-C sets a flag; the loop saves at the next step boundary and then stops.

    A second Ctrl-C interrupts at once (the default behaviour), for a user who means it.
    """

    def __init__(self):
        self.set = False

    @contextmanager
    def installed(self):
        if threading_main() is False:
            yield self
            return
        old = signal.getsignal(signal.SIGINT)
        owner = os.getpid()

        def handler(signum, frame):
            # A terminal's Ctrl-C reaches the whole process group, DataLoader workers too, and
            # forked workers inherit this handler: only the training process speaks and stops.
            if os.getpid() != owner:
                return
            if self.set:
                signal.signal(signal.SIGINT, old)
                raise KeyboardInterrupt
            self.set = True
            print("\nstopping after this step (Ctrl-C again to abort without saving)", file=sys.stderr)

        signal.signal(signal.SIGINT, handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, old)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
