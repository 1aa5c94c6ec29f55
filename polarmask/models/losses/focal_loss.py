"""Sigmoid focal loss (Lin et al. 2017), pure PyTorch."""

from __future__ import annotations

import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from polarmask.registry import MODELS

from .utils import check_reduction, weight_reduce_loss


def labels_to_one_hot(labels: Tensor, num_classes: int) -> Tensor:
    """(n,) labels in 0..C (C = background) -> (n, C) float one-hot, background all zeros."""
    one_hot = F.one_hot(labels.long(), num_classes + 1)[:, :num_classes]
    return one_hot.float()


def sigmoid_focal_loss(
    pred: Tensor, target: Tensor, gamma: float = 2.0, alpha: float = 0.25
) -> Tensor:
    """Element-wise sigmoid focal loss.

    ``FL = -alpha_t * (1 - p_t)**gamma * log(p_t)`` per class, as the CUDA op of mmdet v1.

    Args:
        pred: (n, C) logits.
        target: (n, C) binary targets (float).
        gamma: focusing exponent.
        alpha: weight of the positive class.

    Returns:
        Tensor: (n, C) losses.
    """
    prob = pred.sigmoid()
    target = target.type_as(pred)
    one_minus_pt = (1 - prob) * target + prob * (1 - target)
    focal_weight = (alpha * target + (1 - alpha) * (1 - target)) * one_minus_pt.pow(gamma)
    return F.binary_cross_entropy_with_logits(pred, target, reduction='none') * focal_weight


@MODELS.register_module()
class FocalLoss(nn.Module):
    """Sigmoid focal loss module.

    Args:
        use_sigmoid: must be True (the softmax variant is not implemented).
        gamma: focusing exponent.
        alpha: weight of the positive class.
        reduction: 'none', 'mean' or 'sum'.
        loss_weight: multiplier of the loss.
    """

    def __init__(
        self,
        use_sigmoid: bool = True,
        gamma: float = 2.0,
        alpha: float = 0.25,
        reduction: str = 'mean',
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if not use_sigmoid:
            raise ValueError('FocalLoss only implements use_sigmoid=True')
        self.gamma = gamma
        self.alpha = alpha
        self.reduction = check_reduction(reduction)
        self.loss_weight = loss_weight

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
        reduction_override: str | None = None,
    ) -> Tensor:
        """Args:
        pred: (n, C) logits.
        target: (n,) labels in 0..C with C = background, or (n, C) binary targets.
        weight: (n,) or (n, C) element weights.
        avg_factor: normaliser of the summed loss (e.g. num_pos + num_imgs).
        reduction_override: replaces ``reduction`` for this call.
        """
        if target.dim() == 1:
            target = labels_to_one_hot(target, pred.shape[-1])
        if weight is not None and weight.dim() == 1:
            weight = weight[:, None]
        loss = sigmoid_focal_loss(pred, target, self.gamma, self.alpha)
        reduction = reduction_override or self.reduction
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
