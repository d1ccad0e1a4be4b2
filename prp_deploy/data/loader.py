"""Batching for the torch DataLoader: drop unreadable videos, count them, fail past a limit.

The only module of `data/` that touches torch, and only inside the functions.
"""

from __future__ import annotations

from ..errors import PRPError


def collate_skipping(batch: list):
    """default_collate over the items that are not None; returns (batch or None, skipped count)."""
    from torch.utils.data import default_collate

    kept = [b for b in batch if b is not None]
    return (default_collate(kept) if kept else None), len(batch) - len(kept)


class SkipCounter:
    """Counts unreadable videos met during training; more than `max_fraction` of those seen is an error."""

    def __init__(self, max_fraction: float = 0.05):
        self.max_fraction, self.seen, self.skipped = max_fraction, 0, 0

    def add(self, batch_size: int, skipped: int) -> None:
        self.seen += batch_size
        self.skipped += skipped

    def check(self) -> None:
        """Called at the end of an epoch, so one bad video in the first batch is not judged alone."""
        if self.skipped and self.skipped > self.max_fraction * self.seen:
            raise PRPError(
                f"{self.skipped} of {self.seen} videos could not be read (more than {self.max_fraction:.0%}); "
                "run `prp-deploy data info` to list them"
            )
