"""The tests' tiny PolarMask: the shipped configs' models, shrunk, and a batch to feed them.

:func:`shrink_model_cfg` keeps the structure, the layer order and the parameter names of a
shipped model config and everything that is not a width or a count (depth, style, deformable
convolutions, strides, regress ranges, losses, data preprocessor, test settings), so the tests
exercise the shipped models at a size that runs in milliseconds. :func:`tiny_model_cfg` is the
R-50 base (``configs/_base_/models/polarmask_r50_fpn.py``) shrunk to a ResNet-18.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData

from polarmask.structures import DetDataSample
from polarmask.structures.polar import mask_contour

R50_BASE = Path(__file__).resolve().parents[1] / 'configs/_base_/models/polarmask_r50_fpn.py'


def r50_model_cfg() -> dict:
    """A fresh copy of the ``model`` of the shipped R-50 base config, as plain dicts."""
    return Config.fromfile(str(R50_BASE)).model.to_dict()


def shrink_model_cfg(cfg: dict, depth: int | None = None) -> dict:
    """A shipped model config shrunk in place: backbone of base width 4 (stages of 4, 8, 16, 32
    planes; a ResNeXt gets 2 groups of base width 2, its deformable convs too), an 8-channel FPN
    and head with two convolutions per tower and GroupNorm of 4 groups, 3 classes, no pretrained
    weights.

    Args:
        cfg: a ``model`` config as plain dicts (e.g. ``Config.fromfile(path).model.to_dict()``).
        depth: replaces the backbone's depth when given.

    Returns:
        dict: ``cfg``, ready for ``MODELS.build``.
    """
    backbone = cfg['backbone']
    backbone.update(base_channels=4, init_cfg=None)
    if depth is not None:
        backbone['depth'] = depth
    if backbone['type'] == 'ResNeXt':
        backbone.update(groups=2, base_width=2)
        if 'groups' in (backbone.get('dcn') or {}):
            backbone['dcn']['groups'] = 2
    expansion = 1 if backbone['depth'] in (18, 34) else 4
    cfg['neck'].update(in_channels=[4 * expansion * 2**i for i in range(4)], out_channels=8)
    cfg['bbox_head'].update(
        num_classes=3,
        in_channels=8,
        feat_channels=8,
        stacked_convs=2,
        norm_cfg=dict(type='GN', num_groups=4, requires_grad=True),
    )
    return cfg


def tiny_model_cfg(**test_cfg: object) -> dict:
    """The R-50 base model shrunk (:func:`shrink_model_cfg`) to a ResNet-18 of base width 4.

    Args:
        test_cfg: values that replace those of the shipped ``test_cfg`` (e.g. ``max_per_img``).

    Returns:
        dict: the model config, ready for ``MODELS.build``.
    """
    cfg = shrink_model_cfg(r50_model_cfg(), depth=18)
    cfg['test_cfg'].update(test_cfg)
    return cfg


def tiny_batch(num_imgs: int = 2, with_gt: tuple[bool, ...] = (True, False)) -> dict:
    """A raw batch as the pipeline packs it: uint8 BGR images of 96x128 and 80x100 (original
    images twice as tall) and data samples, image i with one 60x40 rectangle iff ``with_gt[i]``.

    Returns:
        dict: ``inputs`` (list of (3, H, W) uint8) and ``data_samples``.
    """
    generator = torch.Generator().manual_seed(0)
    shapes = [(96, 128), (80, 100)]
    inputs, samples = [], []
    for index in range(num_imgs):
        height, width = shapes[index]
        inputs.append(
            torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)
        )
        sample = DetDataSample(
            metainfo=dict(
                img_id=index,
                img_path=f'img_{index}.jpg',
                ori_shape=(height * 2, width),
                img_shape=(height, width),
                scale_factor=(1.0, 0.5),
                pad_shape=(height, width),
            )
        )
        contours, centers, boxes = [], [], []
        if with_gt[index]:
            mask = np.zeros((height, width), np.uint8)
            mask[20:60, 30:90] = 1
            contour, center = mask_contour(mask)
            contours, centers, boxes = (
                [torch.from_numpy(contour)],
                [torch.from_numpy(center)],
                [[30.0, 20.0, 89.0, 59.0]],
            )
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor(boxes).reshape(-1, 4),
            labels=torch.tensor([1] * len(boxes), dtype=torch.long),
            contours=contours,
            centers=torch.stack(centers) if centers else torch.zeros(0, 2),
        )
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)
