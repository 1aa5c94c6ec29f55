"""Weighting and reduction shared by the losses."""

from __future__ import annotations

import torch
from torch import Tensor

REDUCTIONS = ('none', 'mean', 'sum')


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f'unknown reduction {reduction!r}: use one of {REDUCTIONS}')
    return reduction


def weight_reduce_loss(
    loss: Tensor,
    weight: Tensor | None = None,
    reduction: str = 'mean',
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Apply element weights, then reduce.

    With ``avg_factor`` and ``reduction='mean'`` the result is ``sum(weight * loss) / avg_factor``
    (the original's normalisation); ``avg_factor`` is clamped to float32 eps only to keep an
    all-zero normaliser from producing NaN.

    Args:
        loss: element-wise loss, any shape.
        weight: broadcastable to ``loss``.
        reduction: 'none', 'mean' or 'sum'.
        avg_factor: normaliser replacing the element count of 'mean'.

    Returns:
        Tensor: the reduced loss (scalar unless ``reduction='none'``).
    """
    check_reduction(reduction)
    if weight is not None:
        loss = loss * weight
    if avg_factor is None:
        if reduction == 'mean':
            return loss.mean()
        return loss.sum() if reduction == 'sum' else loss
    if reduction == 'mean':
        eps = torch.finfo(torch.float32).eps
        if isinstance(avg_factor, Tensor):
            return loss.sum() / avg_factor.clamp(min=eps)
        return loss.sum() / max(avg_factor, eps)
    if reduction == 'none':
        return loss
    raise ValueError('avg_factor can not be used with reduction="sum"')
