"""Binary cross-entropy on logits (the centerness loss)."""

from __future__ import annotations

import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from polarmask.registry import MODELS

from .utils import check_reduction, weight_reduce_loss


def binary_cross_entropy(pred: Tensor, target: Tensor) -> Tensor:
    """Element-wise BCE between logits ``pred`` and soft targets ``target`` of the same shape."""
    return F.binary_cross_entropy_with_logits(pred, target.type_as(pred), reduction='none')


@MODELS.register_module()
class CrossEntropyLoss(nn.Module):
    """Sigmoid cross-entropy module (soft targets in [0, 1]).

    Args:
        use_sigmoid: must be True (the softmax variant is not implemented).
        reduction: 'none', 'mean' or 'sum'.
        loss_weight: multiplier of the loss.
    """

    def __init__(
        self, use_sigmoid: bool = True, reduction: str = 'mean', loss_weight: float = 1.0
    ) -> None:
        super().__init__()
        if not use_sigmoid:
            raise ValueError('CrossEntropyLoss only implements use_sigmoid=True')
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
        """Args: pred logits and target of the same shape (e.g. (n,)); weight broadcastable."""
        loss = binary_cross_entropy(pred, target)
        reduction = reduction_override or self.reduction
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
