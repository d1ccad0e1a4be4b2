"""PRP losses: cross-entropy on the playback rate (DP), motion-attention MSE (GP), their sum (DG-P).

The motion-attention map M itself is computed from raw frames in the data workers
(`prp_deploy.data.sampling.motion_attention`), next to the target it weights; here it
arrives as a (N, 1, T·r, H, W) tensor, or is absent for plain MSE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def motion_mse(reconstruction: torch.Tensor, target: torch.Tensor, motion: torch.Tensor | None = None, real: torch.Tensor | None = None) -> torch.Tensor:
    """Lg = (1/N) Σ M ⊙ (Y − G)² over the pixels that count.

    reconstruction, target: (N, 3, T·r, H, W); motion: (N, 1, T·r, H, W) or None (all ones:
    plain MSE); real: (N, T·r) bool or None. With `real`, interpolated target frames are
    left out of both the sum and N (the reference code's choice).
    """
    err = (reconstruction.float() - target.float()) ** 2  # (N, 3, T·r, H, W)
    if motion is not None:
        err = err * motion
    if real is None:
        return err.mean()
    keep = real[:, None, :, None, None].to(err.dtype)  # (N, 1, T·r, 1, 1)
    n = keep.sum() * err.shape[1] * err.shape[3] * err.shape[4]
    return (err * keep).sum() / n.clamp_min(1)


def prp_loss(outputs: dict, batch: dict, lambda_d: float, lambda_g: float, use_real_only: bool) -> tuple[torch.Tensor, dict]:
    """λd·CE + λg·m-MSE for whichever heads the model has; returns (loss, parts for logging)."""
    parts: dict[str, torch.Tensor] = {}
    loss = torch.zeros((), device=batch["clip"].device)
    if "rate_logits" in outputs:
        ce = F.cross_entropy(outputs["rate_logits"].float(), batch["rate_label"])
        parts["ce"] = ce.detach()
        # DP alone is trained on CE itself; the λd weight only balances it against Lg in DG-P.
        loss = loss + (lambda_d * ce if "reconstruction" in outputs else ce)
    if "reconstruction" in outputs:
        mse = motion_mse(outputs["reconstruction"], batch["target"], batch.get("motion"), batch["target_real"] if use_real_only else None)
        parts["mse"] = mse.detach()
        loss = loss + (lambda_g * mse if "rate_logits" in outputs else mse)
    return loss, parts
