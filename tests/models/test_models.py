import json
import os
from pathlib import Path

import pytest
import torch

from prp_deploy.models import ActionRecognizer, EncoderConfig, PRPModel, build_encoder, check_input_shape
from prp_deploy.models.resnet3d import midplanes
from prp_deploy.errors import PRPError
from prp_deploy.models.registry import BACKBONES as REGISTRY

# Every backbone and depth the registry offers (a fixed-depth family once, at 10).
BACKBONES = [(name, d) for name, b in REGISTRY.items() for d in (b.depths or (10,))]


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("backbone,expected", [("c3d", 27.7e6), ("r3d", 14.4e6), ("r21d", 14.4e6)])
def test_paper_parameter_counts_at_full_width(backbone, expected):
    n = n_params(build_encoder(EncoderConfig(backbone, 10, 1.0)))
    assert abs(n - expected) / expected < 0.01, n


def test_r2plus1d_mid_channels_follow_the_formula():
    assert midplanes(3, 64, t=3, k=7) == 83  # the stem
    assert midplanes(64, 64) == 144
    enc = build_encoder(EncoderConfig("r21d", 10, 1.0))
    assert enc.stem[0].out_channels == 83


@pytest.mark.parametrize("backbone,depth", BACKBONES)
@pytest.mark.parametrize("r", [1, 2, 4])
def test_prp_output_shapes(backbone, depth, r):
    enc = build_encoder(EncoderConfig(backbone, depth, 0.125))
    model = PRPModel(enc, num_rates=4, rec_rate=r, width=0.125).eval()
    x = torch.rand(2, 3, 16, 64, 64)
    with torch.no_grad():
        conv5 = enc(x)
        out = model(x)
    assert conv5.shape == (2, enc.out_channels, 2, 4, 4)
    assert out["rate_logits"].shape == (2, 4)
    assert out["reconstruction"].shape == (2, 3, 16 * r, 64, 64)
    assert 0 <= out["reconstruction"].min() and out["reconstruction"].max() <= 1


@pytest.mark.parametrize("backbone,depth", BACKBONES)
def test_paper_input_conv5_and_retrieval_feature_size(backbone, depth):
    enc = build_encoder(EncoderConfig(backbone, depth, 0.125))
    model = ActionRecognizer(enc, num_classes=7).eval()
    with torch.no_grad():
        logits, feats = model(torch.rand(1, 3, 16, 112, 112))
    c = enc.out_channels
    assert logits.shape == (1, 7)
    assert feats.shape == (1, c * 2 * 3 * 3)  # conv5 c×2×7×7 → max-pool (1,2,2) → c×2×3×3 (9216 at width 1)


def test_heads_are_optional_but_not_both_absent():
    enc = build_encoder(EncoderConfig("c3d", 10, 0.125))
    assert set(PRPModel(enc, num_rates=4, rec_rate=None)(torch.rand(1, 3, 8, 32, 32))) == {"rate_logits"}
    assert set(PRPModel(enc, num_rates=None, rec_rate=2, width=0.125)(torch.rand(1, 3, 8, 32, 32))) == {"reconstruction"}
    with pytest.raises(ValueError):
        PRPModel(enc, num_rates=None, rec_rate=None)


def test_bad_configs_are_user_errors():
    with pytest.raises(PRPError, match="unknown backbone"):
        build_encoder(EncoderConfig("i3d"))
    with pytest.raises(PRPError, match="r3d depth must be one of 10, 18"):
        build_encoder(EncoderConfig("r3d", 34))
    with pytest.raises(PRPError, match="multiple of 8"):
        check_input_shape(12, 112, "r21d")


@pytest.mark.parametrize("backbone", ["c3d", "r3d", "r21d"])
def test_subtract_mean_removes_what_stays_still(backbone):
    """With subtract_mean a static image added to every frame changes nothing; without it, it does."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 32, 32)
    still = torch.rand(2, 3, 1, 32, 32)  # the same picture in every frame
    for centred in (True, False):
        enc = build_encoder(EncoderConfig(backbone, 10, 0.125, subtract_mean=centred)).eval()
        with torch.no_grad():
            same = torch.allclose(enc(x), enc(x + still), atol=1e-5)
        assert same == centred


def test_subtract_clip_mean_is_exactly_the_centred_clip():
    from prp_deploy.models.layers import subtract_clip_mean

    x = torch.rand(3, 3, 8, 5, 7)
    torch.testing.assert_close(subtract_clip_mean(x), x - x.mean(2, keepdim=True), atol=1e-6, rtol=0)


GOLDEN = Path(__file__).with_name("expected_outputs.json")


def _fixed_output(backbone: str) -> torch.Tensor:
    """conv5 of a seeded, width-0.25 encoder (depth 10) on a fixed input, in eval mode."""
    torch.manual_seed(0)
    depth = 10 if REGISTRY[backbone].depths else 0
    enc = build_encoder(EncoderConfig(backbone, depth, 0.25)).eval()
    t = torch.arange(3 * 8 * 32 * 32, dtype=torch.float32).reshape(1, 3, 8, 32, 32)
    x = 0.5 + 0.5 * torch.sin(t / 97.0)  # smooth, deterministic, in [0, 1]
    with torch.no_grad():
        return enc(x)


@pytest.mark.parametrize("backbone", list(REGISTRY))
def test_each_registered_backbone_gives_its_stored_output(backbone):
    """Every backbone in the registry, its conv5 on a fixed input against numbers stored when it
    was last checked (tests/models/expected_outputs.json): a change to a builder, its strides or
    its initialisation shows here. A new backbone without stored numbers fails, saying how to add them:
    PRP_DEPLOY_STORE_GOLDEN=1 pytest tests/models -k stored_output."""
    out = _fixed_output(backbone)
    st, ss = REGISTRY[backbone].strides
    assert out.shape[2:] == (8 // st, 32 // ss, 32 // ss)  # the strides the registry declares
    stats = {"shape": list(out.shape), "sum": float(out.sum()), "abs_sum": float(out.abs().sum()),
             "first": [float(v) for v in out.flatten()[:4]], "max": float(out.max())}
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if os.environ.get("PRP_DEPLOY_STORE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps({**golden, backbone: stats}, indent=1) + "\n")
        golden[backbone] = stats
    assert backbone in golden, f"no stored output for {backbone}: PRP_DEPLOY_STORE_GOLDEN=1 pytest tests/models -k stored_output"
    want = golden[backbone]
    assert stats["shape"] == want["shape"]
    for key in ("sum", "abs_sum", "max"):
        assert stats[key] == pytest.approx(want[key], rel=1e-3, abs=1e-4), key
    assert stats["first"] == pytest.approx(want["first"], rel=1e-3, abs=1e-4)
