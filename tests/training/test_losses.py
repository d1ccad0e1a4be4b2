import pytest
import torch

from prp_deploy.training.losses import motion_mse, prp_loss


def test_motion_mse_is_plain_mse_with_unit_weights():
    y, g = torch.rand(2, 3, 8, 4, 4), torch.rand(2, 3, 8, 4, 4)
    assert torch.allclose(motion_mse(y, g), ((y - g) ** 2).mean())
    assert torch.allclose(motion_mse(y, g, torch.ones(2, 1, 8, 4, 4)), ((y - g) ** 2).mean())


def test_motion_weights_scale_the_error_where_things_move():
    y, g = torch.zeros(1, 3, 4, 2, 2), torch.ones(1, 3, 4, 2, 2)
    m = torch.full((1, 1, 4, 2, 2), 0.8)
    m[..., 0, 0] = 2.0
    assert motion_mse(y, g, m).item() == pytest.approx((2.0 + 3 * 0.8) / 4)


def test_real_mask_leaves_interpolated_frames_out():
    y = torch.zeros(1, 3, 4, 2, 2)
    g = torch.zeros(1, 3, 4, 2, 2)
    g[:, :, 1] = 1.0  # only frame 1 is wrong, and it is an interpolated one
    real = torch.tensor([[True, False, True, False]])
    assert motion_mse(y, g, real=real).item() == 0.0
    assert motion_mse(y, g).item() == pytest.approx(0.25)


def test_prp_loss_weights_only_when_both_heads():
    batch = {"clip": torch.zeros(2), "rate_label": torch.tensor([0, 1]), "target": torch.ones(2, 3, 2, 2, 2), "target_real": torch.ones(2, 2, dtype=torch.bool)}
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    rec = torch.zeros(2, 3, 2, 2, 2)
    ce = torch.nn.functional.cross_entropy(logits, batch["rate_label"])
    dp, _ = prp_loss({"rate_logits": logits}, batch, 0.1, 1.0, False)
    gp, _ = prp_loss({"reconstruction": rec}, batch, 0.1, 1.0, False)
    dgp, parts = prp_loss({"rate_logits": logits, "reconstruction": rec}, batch, 0.1, 1.0, False)
    assert dp.item() == pytest.approx(ce.item()) and gp.item() == pytest.approx(1.0)
    assert dgp.item() == pytest.approx(0.1 * ce.item() + 1.0)
    assert set(parts) == {"ce", "mse"}
