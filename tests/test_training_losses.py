"""The paper's loss BCE + 0.3·(1 − J) against a hand computation, for both Jaccard forms."""

from __future__ import annotations

import math

import pytest
import torch

from m2unet.training.losses import BCEJaccardLoss, max_pooled, pooled_loss, soft_jaccard

# sigmoid(logits) = 0.5, 0.75, 0.25, 0.8 ; labels 1, 1, 0, 0
LOGITS = torch.tensor([0.0, math.log(3.0), -math.log(3.0), math.log(4.0)]).view(1, 1, 2, 2)
LABELS = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)
BCE = -(math.log(0.5) + math.log(0.75) + math.log(0.75) + math.log(0.2)) / 4


def test_global_jaccard_by_hand():
    # Σ y·p = 0.5 + 0.75 = 1.25 ; Σ y = 2 ; Σ p = 2.3 → J = 1.25 / (2 + 2.3 − 1.25)
    expected_j = 1.25 / 3.05
    assert soft_jaccard(torch.sigmoid(LOGITS), LABELS, "global").item() == pytest.approx(expected_j, rel=1e-5)
    loss = BCEJaccardLoss("global")(LOGITS, LABELS)
    assert loss.item() == pytest.approx(BCE + 0.3 * (1 - expected_j), rel=1e-5)


def test_eq3_jaccard_by_hand_only_rewards_vessel_pixels():
    # Eq. 3: terms y·p / (y + p − y·p) = p for y = 1 (0.5, 0.75) and 0 for y = 0 → J = 1.25 / 4 pixels
    expected_j = 1.25 / 4
    assert soft_jaccard(torch.sigmoid(LOGITS), LABELS, "eq3").item() == pytest.approx(expected_j, rel=1e-5)
    loss = BCEJaccardLoss("eq3")(LOGITS, LABELS)
    assert loss.item() == pytest.approx(BCE + 0.3 * (1 - expected_j), rel=1e-5)
    # a false positive changes the global J but not Eq. 3's
    more_positive = LOGITS.clone()
    more_positive[0, 0, 1, 1] = 5.0
    assert soft_jaccard(torch.sigmoid(more_positive), LABELS, "eq3").item() == pytest.approx(expected_j, rel=1e-5)
    assert soft_jaccard(torch.sigmoid(more_positive), LABELS, "global").item() < soft_jaccard(torch.sigmoid(LOGITS), LABELS, "global").item()


def test_perfect_prediction_and_empty_label():
    target = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    assert soft_jaccard(target, target, "global").item() == pytest.approx(1.0, abs=1e-6)
    empty = torch.zeros(1, 1, 2, 2)
    assert soft_jaccard(empty, empty, "global").item() == 0.0  # 0/0 defined as 0, no NaN
    assert soft_jaccard(empty, empty, "eq3").item() == 0.0


def test_loss_is_float32_under_bf16_logits_and_has_gradients():
    logits = LOGITS.clone().to(torch.bfloat16).requires_grad_()
    loss = BCEJaccardLoss("global")(logits, LABELS)
    assert loss.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(logits.grad.float()).all() and logits.grad.abs().sum() > 0


def test_unknown_form_is_rejected():
    with pytest.raises(ValueError, match="unknown Jaccard form"):
        BCEJaccardLoss("dice")


def test_pooled_loss_compares_max_pooled_blocks_and_only_for_the_samples_that_ask():
    criterion = BCEJaccardLoss("global")
    label = torch.zeros(1, 1, 8, 8)
    label[..., 2:4, :] = 1.0  # a vessel two pixels wide, as a coarse camera's annotator marks it at twice the grid
    thin = torch.full((1, 1, 8, 8), -8.0)
    thin[..., 2, :] = 8.0  # the model draws it one pixel wide
    logits, target = torch.cat([thin, thin]), torch.cat([label, label])
    assert pooled_loss(criterion, logits, target, None) == pooled_loss(criterion, logits, target, torch.tensor([1, 1])) == criterion(logits, target)
    pooled = pooled_loss(criterion, logits, target, torch.tensor([2, 2]))
    assert pooled == pytest.approx(criterion(max_pooled(thin, 2), max_pooled(label, 2)).item(), rel=1e-6)
    assert pooled.item() < 0.01 < criterion(thin, label).item()  # the thin vessel fills every labelled block
    mixed = pooled_loss(criterion, logits, target, torch.tensor([2, 1]))
    assert mixed.item() == pytest.approx((pooled.item() + criterion(thin, label).item()) / 2, rel=1e-5)


def test_max_pooled_keeps_a_partial_block_at_the_edge():
    plane = torch.zeros(1, 1, 5, 5)
    plane[..., 4, 4] = 1.0
    assert max_pooled(plane, 2).shape[-2:] == (3, 3) and max_pooled(plane, 2)[0, 0, 2, 2] == 1.0
    assert max_pooled(plane, 1) is plane
