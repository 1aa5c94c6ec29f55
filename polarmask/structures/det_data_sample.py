"""The data sample that flows from the pipeline through the model to the metric."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from mmengine.structures import BaseDataElement, InstanceData

from polarmask.structures.mask import polygons_to_rles, to_numpy


class DetDataSample(BaseDataElement):
    """Annotations and predictions of one image.

    Fields:
        gt_instances: ``bboxes`` (G, 4) x1y1x2y2 in input pixels (inclusive, the ``+1``
            convention), ``labels`` (G,) in 0..C-1, ``contours`` (list of G float32 (K, 2)
            xy tensors), ``centers`` (G, 2) truncated mass centres; optionally ``masks``.
        ignored_instances: crowd regions, ``bboxes`` only.
        pred_instances: ``bboxes`` (n, 4), ``scores`` (n,), ``labels`` (n,),
            ``polygons`` (n, R, 2), in original-image pixels when rescaled.

    Metainfo: ``img_id``, ``img_path``, ``ori_shape`` (H, W), ``img_shape`` (H, W) after resize,
    ``scale_factor`` (w_scale, h_scale), ``flip``, ``flip_direction``, ``pad_shape`` and
    ``batch_input_shape`` (H, W) set by the data preprocessor.
    """

    @property
    def gt_instances(self) -> InstanceData:
        return self._gt_instances

    @gt_instances.setter
    def gt_instances(self, value: InstanceData) -> None:
        self.set_field(value, '_gt_instances', dtype=InstanceData)

    @gt_instances.deleter
    def gt_instances(self) -> None:
        del self._gt_instances

    @property
    def ignored_instances(self) -> InstanceData:
        return self._ignored_instances

    @ignored_instances.setter
    def ignored_instances(self, value: InstanceData) -> None:
        self.set_field(value, '_ignored_instances', dtype=InstanceData)

    @ignored_instances.deleter
    def ignored_instances(self) -> None:
        del self._ignored_instances

    @property
    def pred_instances(self) -> InstanceData:
        return self._pred_instances

    @pred_instances.setter
    def pred_instances(self, value: InstanceData) -> None:
        self.set_field(value, '_pred_instances', dtype=InstanceData)

    @pred_instances.deleter
    def pred_instances(self) -> None:
        del self._pred_instances


SampleList = list[DetDataSample]


def pred_instances_to_numpy(
    pred_instances: InstanceData | Mapping[str, Any], ori_shape: tuple[int, int]
) -> dict[str, Any]:
    """The predictions of one image as numpy arrays plus RLE masks, in original-image pixels.

    The one conversion behind the inference API, :class:`~polarmask.evaluation.CocoMetric` and
    :class:`~polarmask.evaluation.DumpDetResults`.

    Args:
        pred_instances: ``bboxes`` (n, 4), ``scores`` (n,), ``labels`` (n,) and optionally
            ``polygons`` (n, R, 2), tensors on any device or arrays (an ``InstanceData`` or the
            dict a data sample becomes in a metric).
        ori_shape: (H, W) of the original image, the canvas of the masks.

    Returns:
        dict: ``bboxes`` float32 (n, 4) x1y1x2y2, ``scores`` float32 (n,), ``labels`` int64 (n,)
        and, with polygons, ``polygons`` float32 (n, R, 2) and ``masks`` (n compressed RLEs
        ``dict(size=[H, W], counts=str)`` of the polygons rasterised the original's way).
    """
    result = dict(
        bboxes=to_numpy(pred_instances['bboxes']).astype(np.float32).reshape(-1, 4),
        scores=to_numpy(pred_instances['scores']).astype(np.float32).reshape(-1),
        labels=to_numpy(pred_instances['labels']).astype(np.int64).reshape(-1),
    )
    if 'polygons' in pred_instances:
        result['polygons'] = to_numpy(pred_instances['polygons']).astype(np.float32)
        result['masks'] = polygons_to_rles(result['polygons'], tuple(ori_shape))
    return result
