"""Losses against hand-computed values."""

import math

import pytest
import torch

from polarmask.models.losses import (
    CrossEntropyLoss,
    FocalLoss,
    IoULoss,
    PolarIoULoss,
    aligned_box_iou,
    polar_iou_loss,
)


def test_box_iou_uses_plus_one_areas():
    boxes1 = torch.tensor([[0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 0.0, 0.0]])
    boxes2 = torch.tensor([[5.0, 5.0, 14.0, 14.0], [0.0, 0.0, 0.0, 0.0]])
    # 10x10 boxes overlapping in 5x5 pixels; a single pixel box overlaps itself fully
    torch.testing.assert_close(aligned_box_iou(boxes1, boxes2), torch.tensor([25 / 175, 1.0]))


def test_iou_loss_hand_computed_and_weighted():
    pred = torch.tensor([[0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 9.0, 9.0]])
    target = torch.tensor([[5.0, 5.0, 14.0, 14.0], [100.0, 100.0, 110.0, 110.0]])
    loss = IoULoss(reduction='none')(pred, target)
    torch.testing.assert_close(loss, torch.tensor([math.log(7), -math.log(1e-6)]))
    weight = torch.tensor([0.5, 0.25])
    weighted = IoULoss(loss_weight=2.0)(pred, target, weight=weight, avg_factor=weight.sum())
    expected = 2.0 * (0.5 * math.log(7) - 0.25 * math.log(1e-6)) / 0.75
    assert weighted.item() == pytest.approx(expected, rel=1e-6)


def test_polar_iou_loss_hand_computed():
    pred = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    target = torch.tensor([[2.0, 2.0, 2.0, 2.0]])
    assert polar_iou_loss(pred, target).item() == pytest.approx(math.log(11 / 7))
    assert polar_iou_loss(pred, target, squared=True).item() == pytest.approx(math.log(33 / 13))
    assert polar_iou_loss(target, target).item() == 0


def test_polar_iou_loss_module_weighting():
    pred = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]])
    target = torch.tensor([[2.0, 2.0, 2.0, 2.0], [2.0, 2.0, 2.0, 2.0]])
    weight = torch.tensor([0.8, 0.2])
    loss = PolarIoULoss()(pred, target, weight=weight, avg_factor=weight.sum())
    expected = (0.8 * math.log(11 / 7) + 0.2 * math.log(2)) / 1.0
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    squared = PolarIoULoss(squared=True, reduction='sum')(pred, target)
    assert squared.item() == pytest.approx(math.log(33 / 13) + math.log(4), rel=1e-6)


def test_focal_loss_hand_computed():
    logits = torch.zeros(2, 3)
    labels = torch.tensor([1, 3])  # image point 0 is class 1; point 1 is background (C = 3)
    loss = FocalLoss(reduction='none')(logits, labels)
    positive = 0.25 * 0.5**2 * math.log(2)
    negative = 0.75 * 0.5**2 * math.log(2)
    expected = torch.tensor([[negative, positive, negative], [negative] * 3])
    torch.testing.assert_close(loss, expected)
    normalised = FocalLoss()(logits, labels, avg_factor=1 + 2)
    assert normalised.item() == pytest.approx((positive + 5 * negative) / 3, rel=1e-6)


def test_focal_loss_is_small_for_confident_correct_predictions():
    labels = torch.tensor([0, 2])
    good = torch.tensor([[8.0, -8.0], [-8.0, -8.0]])
    bad = -good
    focal = FocalLoss(reduction='sum')
    assert focal(good, labels) < 1e-3 < focal(bad, labels)


def test_centerness_bce_mean():
    loss = CrossEntropyLoss(use_sigmoid=True)(torch.zeros(4), torch.full((4,), 0.5))
    assert loss.item() == pytest.approx(math.log(2))
    logits = torch.tensor([2.0, -1.0])
    targets = torch.tensor([1.0, 0.0])
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    assert CrossEntropyLoss()(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_zero_avg_factor_does_not_give_nan():
    pred = torch.tensor([[1.0, 2.0]])
    loss = PolarIoULoss()(pred, pred * 2, weight=torch.zeros(1), avg_factor=torch.tensor(0.0))
    assert loss.item() == 0


def test_unsupported_options_are_rejected():
    with pytest.raises(ValueError, match='use_sigmoid'):
        FocalLoss(use_sigmoid=False)
    with pytest.raises(ValueError, match='use_sigmoid'):
        CrossEntropyLoss(use_sigmoid=False)
    with pytest.raises(ValueError, match='reduction'):
        IoULoss(reduction='max')
