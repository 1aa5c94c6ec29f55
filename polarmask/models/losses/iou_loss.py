"""Box IoU loss (+1 area convention) and the polar IoU loss of PolarMask.

Shape legend: n positives, R rays.
"""

from __future__ import annotations

from torch import Tensor, nn

from polarmask.registry import MODELS

from .utils import check_reduction, weight_reduce_loss


def aligned_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of paired boxes with the original's inclusive ``+1`` pixel convention.

    Args:
        boxes1: (n, 4) x1y1x2y2 in pixels.
        boxes2: (n, 4) x1y1x2y2 in pixels.

    Returns:
        Tensor: (n,) IoU, area = (x2 - x1 + 1) * (y2 - y1 + 1).
    """
    top_left = boxes1[:, :2].max(boxes2[:, :2])
    bottom_right = boxes1[:, 2:].min(boxes2[:, 2:])
    overlap = (bottom_right - top_left + 1).clamp(min=0).prod(dim=-1)
    area1 = (boxes1[:, 2:] - boxes1[:, :2] + 1).prod(dim=-1)
    area2 = (boxes2[:, 2:] - boxes2[:, :2] + 1).prod(dim=-1)
    return overlap / (area1 + area2 - overlap)


def iou_loss(pred: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    """``-log(IoU)`` of paired boxes, IoU clamped at ``eps``: (n, 4), (n, 4) -> (n,)."""
    return -aligned_box_iou(pred, target).clamp(min=eps).log()


def polar_iou_loss(pred: Tensor, target: Tensor, squared: bool = False) -> Tensor:
    """Polar IoU loss ``log(sum_k max(d_k, d*_k) / sum_k min(d_k, d*_k))``.

    The original code drops the paper's squares (its ``MaskIOULoss``); ``squared=True`` gives the
    paper's area form ``log(sum max^2 / sum min^2)``. No eps, as the original.

    Args:
        pred: (n, R) predicted ray lengths (> 0).
        target: (n, R) target ray lengths.
        squared: use squared lengths.

    Returns:
        Tensor: (n,) losses.
    """
    longer = pred.max(target)
    shorter = pred.min(target)
    if squared:
        longer, shorter = longer.square(), shorter.square()
    return (longer.sum(dim=-1) / shorter.sum(dim=-1)).log()


class _PairLoss(nn.Module):
    """A loss of paired predictions and targets with ``loss_weight`` and reductions."""

    def __init__(self, reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)
        self.loss_weight = loss_weight

    def _loss(self, pred: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
        reduction_override: str | None = None,
    ) -> Tensor:
        """Args:
            pred: (n, D) predictions; target: (n, D) targets.
            weight: (n,) per-pair weights (PolarMask: the polar-centerness targets).
            avg_factor: normaliser of the weighted sum (PolarMask: the sum of those weights).
            reduction_override: replaces ``reduction`` for this call.

        Returns:
            Tensor: scalar, or (n,) with reduction 'none'.
        """
        reduction = reduction_override or self.reduction
        loss = self._loss(pred, target)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)


@MODELS.register_module()
class IoULoss(_PairLoss):
    """``-log(IoU)`` box loss with the ``+1`` area convention.

    Args:
        eps: lower clamp of the IoU.
        reduction: 'none', 'mean' or 'sum'.
        loss_weight: multiplier of the loss.
    """

    def __init__(self, eps: float = 1e-6, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(reduction, loss_weight)
        self.eps = eps

    def _loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return iou_loss(pred, target, self.eps)


@MODELS.register_module()
class PolarIoULoss(_PairLoss):
    """Polar IoU loss over ray lengths (see :func:`polar_iou_loss`).

    Args:
        squared: the paper's squared (area) form instead of the original code's linear one.
        reduction: 'none', 'mean' or 'sum'.
        loss_weight: multiplier of the loss.
    """

    def __init__(self, squared: bool = False, reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__(reduction, loss_weight)
        self.squared = squared

    def _loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return polar_iou_loss(pred, target, self.squared)
