"""Pack a pipeline's results into the model's input: an image tensor and a ``DetDataSample``.

Naming convention for shapes: G instances, K contour points, H x W the input image.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import InstanceData

from polarmask.registry import TRANSFORMS
from polarmask.structures import DetDataSample

DEFAULT_META_KEYS = (
    'img_id',
    'img_path',
    'ori_shape',
    'img_shape',
    'scale_factor',
    'flip',
    'flip_direction',
    'pad_shape',
)


@TRANSFORMS.register_module()
class PackPolarInputs(BaseTransform):
    """Pack ``results`` into ``dict(inputs, data_samples)``.

    ``inputs`` is the (3, H, W) uint8 image tensor, channels as loaded (BGR). ``data_samples`` is a
    :class:`DetDataSample` whose ``gt_instances`` hold the non-crowd instances (``bboxes`` float32
    (G, 4), ``labels`` int64 (G,), and after ``PolarContours`` ``contours`` (list of G float32
    (K, 2) tensors) and ``centers`` float32 (G, 2); ``masks`` uint8 (G, H, W) when still present)
    and whose ``ignored_instances`` hold the crowd ``bboxes`` and ``labels``. Test pipelines
    without annotations get empty instance data.

    Missing meta keys take defaults: ``scale_factor`` (1.0, 1.0), ``flip`` False,
    ``flip_direction`` None and ``pad_shape`` = ``img_shape``.

    Args:
        meta_keys: Keys of ``results`` copied into the data sample's metainfo.
    """

    keeps_annotations_aligned = True

    def __init__(self, meta_keys: tuple[str, ...] = DEFAULT_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        img = results['img']
        # cv2.split is the fastest HWC -> CHW copy here (2.5 ms vs 20 ms for torch at 1280x768)
        channels = cv2.split(img) if img.ndim == 3 else [img]
        inputs = torch.from_numpy(np.stack(channels))

        results.setdefault('scale_factor', (1.0, 1.0))
        results.setdefault('flip', False)
        results.setdefault('flip_direction', None)
        results.setdefault('pad_shape', results['img_shape'])
        data_sample = DetDataSample(
            metainfo={k: results[k] for k in self.meta_keys if k in results}
        )

        gt_instances, ignored_instances = InstanceData(), InstanceData()
        if 'gt_bboxes' in results:
            ignore = results.get('gt_ignore_flags', np.zeros(len(results['gt_bboxes']), bool))
            keep = np.flatnonzero(~ignore)
            crowd = np.flatnonzero(ignore)
            gt_instances.bboxes = torch.from_numpy(results['gt_bboxes'][keep]).float()
            ignored_instances.bboxes = torch.from_numpy(results['gt_bboxes'][crowd]).float()
            if 'gt_bboxes_labels' in results:
                labels = results['gt_bboxes_labels']
                gt_instances.labels = torch.from_numpy(labels[keep]).long()
                ignored_instances.labels = torch.from_numpy(labels[crowd]).long()
            if 'gt_contours' in results:
                gt_instances.contours = [
                    torch.from_numpy(results['gt_contours'][i]).float() for i in keep
                ]
                gt_instances.centers = torch.from_numpy(results['gt_centers'][keep]).float()
            if 'gt_masks' in results:
                gt_instances.masks = torch.from_numpy(results['gt_masks'][keep])
        data_sample.gt_instances = gt_instances
        data_sample.ignored_instances = ignored_instances
        return dict(inputs=inputs, data_samples=data_sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
