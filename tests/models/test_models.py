import pytest
import torch

from prp_deploy.models import ActionRecognizer, EncoderConfig, PRPModel, build_encoder, check_input_shape
from prp_deploy.models.resnet3d import midplanes
from prp_deploy.errors import PRPError

BACKBONES = [("c3d", 10), ("r3d", 10), ("r3d", 18), ("r21d", 10), ("r21d", 18)]


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
        check_input_shape(12, 112)


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
