"""The data sample that flows from the pipeline through the model to the metric."""

from __future__ import annotations

from mmengine.structures import BaseDataElement, InstanceData


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
