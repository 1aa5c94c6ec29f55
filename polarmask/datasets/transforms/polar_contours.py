"""The contour and mass centre of each instance, the inputs of the polar targets.

Naming convention for shapes: G instances, K contour points, H x W the (padded) input.
"""

from __future__ import annotations

import logging
import os

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log

from polarmask.registry import TRANSFORMS
from polarmask.structures.polar import mask_contour

_INSTANCE_KEYS = ('gt_bboxes', 'gt_bboxes_labels', 'gt_ignore_flags', 'gt_masks')


@TRANSFORMS.register_module()
class PolarContours(BaseTransform):
    """Extract each instance's largest contour and centre from its final mask.

    Runs after all geometric transforms. For every non-crowd instance it calls
    :func:`polarmask.structures.polar.mask_contour` on ``gt_masks[g]``; instances without a contour
    (masks that vanished in the resize) are dropped from every ``gt_*`` array, and the drops are
    counted per worker and logged when the count reaches 1, 2, 4, 8, ... (the original crashed
    with ``IndexError`` on them, ``docs/original_polarmask.md#mass-centre-and-contour``). Crowd
    instances get no contour: an empty (0, 2) array and centre (-1, -1); they stay in
    ``gt_ignore_flags`` for the ignore boxes.

    Sets ``gt_contours`` (list of G float32 (K, 2) xy arrays, input pixels) and ``gt_centers``
    float32 (G, 2) xy, aligned with ``gt_bboxes``; removes ``gt_masks`` unless ``keep_masks``.

    Args:
        keep_masks: Keep ``gt_masks`` in the results (e.g. for visualisation).
    """

    keeps_annotations_aligned = True

    def __init__(self, keep_masks: bool = False) -> None:
        self.keep_masks = keep_masks
        self.num_dropped = 0

    def transform(self, results: dict) -> dict:
        if 'gt_masks' not in results:
            raise KeyError(
                'PolarContours needs gt_masks: put LoadAnnotations(with_mask=True) before it in '
                'the pipeline'
            )
        masks = results['gt_masks']
        ignore = results.get('gt_ignore_flags', np.zeros(len(masks), dtype=bool))
        contours, centers, keep = [], [], []
        for index, (mask, ignored) in enumerate(zip(masks, ignore, strict=True)):
            if ignored:
                contours.append(np.zeros((0, 2), dtype=np.float32))
                centers.append(np.full(2, -1, dtype=np.float32))
                keep.append(index)
                continue
            found = mask_contour(mask)
            if found is None:
                self._count_drop(results, index)
                continue
            contour, center = found
            contours.append(np.asarray(contour, dtype=np.float32).reshape(-1, 2))
            centers.append(np.asarray(center, dtype=np.float32))
            keep.append(index)
        if len(keep) < len(masks):
            keep_index = np.array(keep, dtype=np.int64)
            for key in _INSTANCE_KEYS:
                if key in results:
                    results[key] = results[key][keep_index]
        results['gt_contours'] = contours
        results['gt_centers'] = np.array(centers, dtype=np.float32).reshape(-1, 2)
        if not self.keep_masks:
            del results['gt_masks']
        return results

    def _count_drop(self, results: dict, index: int) -> None:
        self.num_dropped += 1
        if self.num_dropped & (self.num_dropped - 1) == 0:
            print_log(
                f'PolarContours: dropped {self.num_dropped} instance(s) without a contour so far '
                f'in this worker (latest: instance {index} of image '
                f"'{os.path.basename(str(results.get('img_path')))}'); their masks vanished "
                'after resizing: raise filter_cfg min_mask_pixels / min_ann_side to skip them',
                logger='current',
                level=logging.WARNING,
            )

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(keep_masks={self.keep_masks})'
