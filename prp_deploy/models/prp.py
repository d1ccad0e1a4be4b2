"""The PRP heads and the models built from an encoder.

- RateHead: discriminative perception, classifies the playback rate s from conv5.
- Decoder: generative perception, reconstructs the r× slow-down clip from conv5.
- PRPModel: encoder + either or both heads (pretraining).
- ActionRecognizer: encoder + linear classifier (finetuning, export); also gives the
  retrieval features.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import ConvBNReLU, global_avg_pool, retrieval_features, scaled


class RateHead(nn.Module):
    """Conv3d-BN-ReLU on conv5 → average pool → Linear(C, |S|). No dropout, no hidden FC (as the paper)."""

    def __init__(self, in_ch: int, num_rates: int):
        super().__init__()
        self.conv = ConvBNReLU(in_ch, in_ch)
        self.fc = nn.Linear(in_ch, num_rates)

    def forward(self, conv5: torch.Tensor) -> torch.Tensor:
        return self.fc(global_avg_pool(self.conv(conv5)))


class Decoder(nn.Module):
    """conv5 (C, T/st, H/ss, W/ss) → reconstruction (3, T·r, H, W) in [0, 1], for an encoder of
    temporal stride st and spatial stride ss (powers of 2; every backbone here: 8 and 16).

    One Conv3d-BN-ReLU, then up-blocks (ConvTranspose3d with kernel = stride, then a
    Conv3d-BN-ReLU block), as many as the larger stride needs doublings: each doubles H, W
    while the spatial stride lasts and T while the temporal one does, and the last also
    multiplies T by r, so the output is the input clip slowed down r×. At 8 and 16 that is
    the paper's four blocks, (2,2,2) three times and (r,2,2). A sigmoid ends it, since
    targets are frames in [0, 1] (the reference ended with BN + ReLU, unbounded).
    """

    def __init__(self, in_ch: int, rec_rate: int = 2, width: float = 1.0, strides: tuple[int, int] = (8, 16)):
        super().__init__()
        if rec_rate not in (1, 2, 4):
            raise ValueError(f"reconstruction rate must be 1, 2 or 4, got {rec_rate}")
        doublings = [int(s).bit_length() - 1 for s in strides]
        if any(s < 1 or 2**d != s for s, d in zip(strides, doublings)):
            raise ValueError(f"encoder strides must be powers of 2, got {strides}")
        n = max(doublings)
        channels = [scaled(max(64, 512 >> i), width) for i in range(n + 1)]  # 512, 256, 128, 64, 64, ...
        self.rec_rate = rec_rate
        self.head = ConvBNReLU(in_ch, channels[0])
        factors = [((2 if i < doublings[0] else 1) * (rec_rate if i == n - 1 else 1), 2 if i < doublings[1] else 1) for i in range(n)]
        self.up = nn.ModuleList([nn.ConvTranspose3d(channels[i], channels[i + 1], (t, s, s), stride=(t, s, s)) for i, (t, s) in enumerate(factors)])
        self.blocks = nn.ModuleList([ConvBNReLU(channels[i + 1], channels[i + 1]) for i in range(n)])
        self.out = nn.Conv3d(channels[-1], 3, 3, padding=1)

    def forward(self, conv5: torch.Tensor) -> torch.Tensor:
        x = self.head(conv5)
        for up, block in zip(self.up, self.blocks):
            x = block(up(x))
        return torch.sigmoid(self.out(x))


class PRPModel(nn.Module):
    """Encoder with the playback-rate head (DP), the decoder (GP), or both (DG-P)."""

    def __init__(self, encoder: nn.Module, num_rates: int | None = 4, rec_rate: int | None = 2, width: float = 1.0):
        super().__init__()
        if not num_rates and not rec_rate:
            raise ValueError("a PRP model needs the rate head, the decoder, or both")
        self.encoder = encoder
        self.rate_head = RateHead(encoder.out_channels, num_rates) if num_rates else None
        self.decoder = Decoder(encoder.out_channels, rec_rate, width, getattr(encoder, "strides", (8, 16))) if rec_rate else None

    def forward(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:
        conv5 = self.encoder(clip)
        out = {}
        if self.rate_head is not None:
            out["rate_logits"] = self.rate_head(conv5)  # (N, |S|)
        if self.decoder is not None:
            out["reconstruction"] = self.decoder(conv5)  # (N, 3, T·r, H, W)
        return out


class ActionRecognizer(nn.Module):
    """Encoder → average pool → (dropout) → Linear: the finetuned model that export ships.

    forward returns (logits, features): logits (N, classes) and the retrieval embedding
    (N, D) from the same conv5 pass, so one exported graph serves both tasks.
    """

    def __init__(self, encoder: nn.Module, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(encoder.out_channels, num_classes)

    def forward(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        conv5 = self.encoder(clip)
        return self.fc(self.dropout(global_avg_pool(conv5))), retrieval_features(conv5)
