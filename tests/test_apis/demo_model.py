"""A checkpoint of the demo model whose predictions are known without training.

The predictor convolutions are zeroed, so every point predicts the same constants: class
probability ``sigmoid(CLS_LOGIT)`` for every class and rays of ``RAY_LENGTH`` pixels (circles in
the network input); the demo head has no box branch, so the boxes are the polygons' tight boxes,
``BOX_SIDE`` pixels square with 36 rays (rays point straight up, down, left and right). Only the
centerness stays random, which orders the scores.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from mmengine.config import Config

from polarmask.apis import init_detector
from polarmask.datasets.shapes_generator import SHAPES_CLASSES

CONFIG = 'configs/polarmask/demo/polar_shapes_r18.py'
INPUT_SIZE = tuple(Config.fromfile(CONFIG).test_dataloader.dataset.pipeline[1].scale)  # (W, H)
CLS_LOGIT = 2.0
RAY_LENGTH = 20.0
BOX_SIDE = 2 * RAY_LENGTH


def demo_state_dict(num_classes: int = 6, num_rays: int = 36) -> dict[str, torch.Tensor]:
    """Weights of the demo model with constant predictions (see the module docstring)."""
    torch.manual_seed(0)
    options = {'model.bbox_head.num_classes': num_classes, 'model.bbox_head.num_rays': num_rays}
    model = init_detector(CONFIG, cfg_options=options)
    head = model.bbox_head
    with torch.no_grad():
        for conv, bias in ((head.polar_cls, CLS_LOGIT), (head.polar_mask, math.log(RAY_LENGTH))):
            conv.weight.zero_()
            conv.bias.fill_(bias)
    return model.state_dict()


def write_demo_checkpoint(path: Path, num_classes: int = 6, num_rays: int = 36) -> Path:
    """Save :func:`demo_state_dict` as a runner checkpoint with the shapes class names."""
    classes = tuple(SHAPES_CLASSES[:num_classes]) + tuple(
        f'extra{i}' for i in range(num_classes - len(SHAPES_CLASSES))
    )
    torch.save(
        {
            'state_dict': demo_state_dict(num_classes, num_rays),
            'meta': {'dataset_meta': {'classes': classes}},
        },
        path,
    )
    return path
