"""What `prp-deploy run` shows while it works: progress bars on stderr (only when it is a
terminal), and stdout's lines without --out: a short human line per window or segment on
a terminal, JSONL otherwise (so pipes keep getting records)."""

from __future__ import annotations

import json
import sys
import time

from tqdm import tqdm


def _span(r: dict) -> str:
    return f"{r['start_s']:.2f}-{r['end_s']:.2f} s".rjust(18)


def window_line(r: dict, prefix: str) -> str:
    span = _span(r)
    if "top" not in r:
        return f"{prefix}{span} window {r['window']} (features)"
    best = r["top"][0]
    return f"{prefix}{span} {best['label']:24s} {best['score']:.2f}"


def segment_line(r: dict, prefix: str) -> str:
    return f"{prefix}{_span(r)} {r['label']:24s} {r['score']:.2f}  (segment {r['segment']})"


class Progress:
    """An overall bar for several sources (done / total, ETA) and a bar per open file source
    (frames done / total, windows/s). Bars update at most ~5 times a second."""

    def __init__(self, total: int, many: bool, enabled: bool):
        self.enabled = enabled
        self.overall = tqdm(total=total, unit="src", desc="sources", position=0, file=sys.stderr, dynamic_ncols=True) if enabled and many else None
        self.bars: dict[int, tuple[tqdm, float]] = {}
        self.free_slots: list[int] = []
        self.next_slot = 1 if self.overall is not None else 0

    def say(self, say):
        """Messages go above the bars instead of through them."""
        if not self.enabled:
            return say
        return lambda msg: tqdm.write(msg, file=sys.stderr)

    def echo(self, fmt: str, many: bool):
        """stdout for window and segment records, in `fmt` ("text" or "jsonl")."""
        def emit(kind: str, r: dict, stem: str) -> None:
            if fmt == "jsonl":
                line = json.dumps(r)
            else:
                prefix = f"{stem}  " if many else ""
                line = window_line(r, prefix) if kind == "window" else segment_line(r, prefix)
            if self.enabled:
                tqdm.write(line, file=sys.stdout)
            else:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()

        return emit

    def opened(self, src) -> None:
        if not self.enabled or src.reader is None or src.reader.spec.kind != "file":
            return
        slot = self.free_slots.pop() if self.free_slots else self.next_slot
        self.next_slot = max(self.next_slot, slot + 1)
        bar = tqdm(total=src.reader.total_frames, unit="frame", desc=src.stem or str(src.name)[-24:], position=slot, leave=False,
                   file=sys.stderr, dynamic_ncols=True, mininterval=0.2)
        self.bars[id(src)] = (bar, slot)

    def windows(self, src) -> None:
        if id(src) in self.bars:
            bar, _ = self.bars[id(src)]
            bar.n = src.reader.frames
            elapsed = time.perf_counter() - src.started
            bar.set_postfix_str(f"{src.stats.windows / max(elapsed, 1e-9):.1f} windows/s", refresh=False)
            if time.perf_counter() - bar.last_print_t > 0.2:
                bar.refresh()

    def closed(self, src) -> None:
        if id(src) in self.bars:
            bar, slot = self.bars.pop(id(src))
            bar.close()
            self.free_slots.append(slot)
        if self.overall is not None:
            self.overall.update(1)

    def close(self) -> None:
        for bar, _ in self.bars.values():
            bar.close()
        if self.overall is not None:
            self.overall.close()
