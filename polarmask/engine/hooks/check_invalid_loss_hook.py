"""Stop training at the first NaN or infinite loss, saying where it happened."""

from __future__ import annotations

import math

import torch
from mmengine.hooks import Hook

from polarmask.registry import HOOKS


@HOOKS.register_module()
class CheckInvalidLossHook(Hook):
    """Raise ``FloatingPointError`` when a loss of a training iteration is NaN or infinite.

    mmdetection's hook of the same name, with a message that names the iteration, the epoch,
    every non-finite loss and the image paths of the batch. Its priority (NORMAL) runs it before
    the logger and the checkpoint hook, so weights updated with a non-finite loss are never
    saved.

    Args:
        interval: check every ``interval`` training iterations.
    """

    def __init__(self, interval: int = 1) -> None:
        self.interval = interval

    def after_train_iter(
        self, runner, batch_idx: int, data_batch: dict | None = None, outputs: dict | None = None
    ) -> None:
        if not outputs or not self.every_n_train_iters(runner, self.interval):
            return
        losses = {name: value for name, value in outputs.items() if 'loss' in name}
        if not losses:
            return
        values = torch.stack([torch.as_tensor(v).detach().float().sum() for v in losses.values()])
        bad = [
            f'{name}={value:g}'
            for name, value in zip(losses, values.tolist(), strict=True)
            if not math.isfinite(value)
        ]
        if not bad:
            return
        samples = (data_batch or {}).get('data_samples') or []
        images = [
            sample.metainfo.get('img_path', sample.metainfo.get('img_id', '?'))
            for sample in samples
        ]
        raise FloatingPointError(
            f'non-finite loss at iteration {runner.iter + 1} (epoch {runner.epoch + 1}): '
            f'{", ".join(bad)} (batch images: {images}). Training diverged or an annotation '
            f'is degenerate: lower the learning rate / lengthen the warmup, or check those '
            f"images' annotations."
        )
