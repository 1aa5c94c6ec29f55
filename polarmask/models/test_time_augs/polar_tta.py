"""Test-time augmentation: the detections of flipped and rescaled views of an image, merged.

``tools/test.py CONFIG CKPT --tta`` wraps the config's ``model`` in its ``tta_model`` (this
class) and tests on its ``tta_pipeline``: ``TestTimeAug`` producing every combination of scales
and flips, as in mmdetection 3.x. Each view is predicted as usual (original-image pixels); the
flipped views are mapped back, and the union of all views goes through class-wise NMS.

Naming convention for shapes: n detections, R rays.
"""

from __future__ import annotations

import torch
from mmengine.model import BaseTTAModel
from mmengine.structures import InstanceData
from torch import Tensor

from polarmask.models.layers import polygon_nms
from polarmask.registry import MODELS
from polarmask.structures import DetDataSample
from polarmask.structures.polar import ray_directions

FLIP_SIGNS = {'horizontal': (-1.0, 1.0), 'vertical': (1.0, -1.0), 'diagonal': (-1.0, -1.0)}
"""(x, y) sign of a ray direction under each flip."""


def flipped_ray_order(num_rays: int, direction: str, convention: str = 'current') -> Tensor:
    """Which ray of the flipped image each ray of the original image is.

    A flip mirrors ray directions: ray k of the original image points where ray ``order[k]`` of
    the flipped image does, so ``polygons[:, order]`` keeps vertex k on ray k.

    Args:
        num_rays: rays R.
        direction: 'horizontal', 'vertical' or 'diagonal'.
        convention: the head's ``angle_convention``.

    Returns:
        Tensor: (R,) int64 permutation.

    Raises:
        ValueError: the mirrored rays are not rays (e.g. a vertical flip of an odd R).
    """
    if direction not in FLIP_SIGNS:
        raise ValueError(f'flip direction must be one of {sorted(FLIP_SIGNS)} (got {direction!r})')
    rays = ray_directions(num_rays, convention, dtype=torch.float64)  # (R, 2)
    mirrored = rays * rays.new_tensor(FLIP_SIGNS[direction])
    distances, order = torch.cdist(mirrored, rays).min(dim=1)
    if distances.max() > 1e-6:
        raise ValueError(
            f'a {direction} flip does not map the {num_rays} rays onto each other; '
            f'test-time flips need a number of rays that the flip keeps (an even one)'
        )
    return order


def unflip_instances(
    instances: InstanceData, metainfo: dict, convention: str = 'current'
) -> InstanceData:
    """Detections of a flipped view mapped back onto the unflipped image.

    The view was resized to ``img_shape`` then flipped there (pixel x -> W - 1 - x), and its
    detections divided by ``scale_factor``; the inverse flip is done in those rescaled pixels,
    boxes with the inclusive ``+1`` convention of ``RandomFlip``.

    Args:
        instances: ``bboxes`` (n, 4), ``polygons`` (n, R, 2) and any other fields, in
            original-image pixels of the flipped view.
        metainfo: the view's ``flip``, ``flip_direction``, ``img_shape`` and ``scale_factor``.
        convention: the head's ``angle_convention``.

    Returns:
        InstanceData: a copy with boxes and polygons unflipped, vertex k on ray k.
    """
    if not metainfo.get('flip', False):
        return instances
    direction = metainfo['flip_direction']
    height, width = metainfo['img_shape'][:2]
    w_scale, h_scale = metainfo.get('scale_factor', (1.0, 1.0))[:2]
    axes = instances.bboxes.new_tensor([(width - 1) / w_scale, (height - 1) / h_scale])
    signs = instances.bboxes.new_tensor(FLIP_SIGNS[direction])
    mirror = signs < 0  # the axes that the flip reversed
    polygons = instances.polygons
    order = flipped_ray_order(polygons.shape[1], direction, convention).to(polygons.device)
    polygons = torch.where(mirror, axes - polygons, polygons)[:, order]
    corners = instances.bboxes.view(-1, 2, 2)  # (n, [x1y1, x2y2], 2)
    corners = torch.where(mirror, axes - corners.flip(1), corners)
    result = instances.clone()
    result.bboxes = corners.reshape(-1, 4)
    result.polygons = polygons
    return result


@MODELS.register_module()
class PolarTTAModel(BaseTTAModel):
    """Merge the detections of a PolarMask's augmented views by class-wise NMS.

    Args:
        module: the detector (config or module).
        tta_cfg: ``nms=dict(type='nms', iou_threshold=0.5, offset=1, class_agnostic=False)``
            for the union of all views (:func:`~polarmask.models.layers.polygon_nms`),
            ``max_per_img`` detections kept (100), ``mask_nms`` (False): NMS on the polygons'
            tight boxes instead of the box branch's.
        data_preprocessor: passed to mmengine's ``BaseTTAModel``.
    """

    def __init__(
        self, module: dict, tta_cfg: dict | None = None, data_preprocessor: dict | None = None
    ) -> None:
        super().__init__(module=module, data_preprocessor=data_preprocessor)
        self.tta_cfg = dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)
        self.tta_cfg.update(tta_cfg or {})
        if self.tta_cfg['nms'].get('type', 'nms') != 'nms':
            raise ValueError(
                f"tta_cfg.nms.type must be 'nms' (got {self.tta_cfg['nms']['type']!r})"
            )

    def merge_preds(self, data_samples_list: list[list[DetDataSample]]) -> list[DetDataSample]:
        """One data sample per image with the merged ``pred_instances`` of its views."""
        return [self._merge_views(views) for views in data_samples_list]

    def _merge_views(self, views: list[DetDataSample]) -> DetDataSample:
        convention = self.module.bbox_head.angle_convention
        instances = InstanceData.cat(
            [unflip_instances(view.pred_instances, view.metainfo, convention) for view in views]
        )
        nms_cfg = self.tta_cfg['nms']
        merged = polygon_nms(
            instances,
            nms_cfg.get('iou_threshold', 0.5),
            nms_cfg.get('offset', 1),
            nms_cfg.get('class_agnostic', False),
            self.tta_cfg.get('max_per_img', 100),
            self.tta_cfg.get('mask_nms', False),
        )
        # Where the head rounds its vertices, a flipped view's unflip moved them by a fraction
        # of a pixel ((W - 1) / scale is rarely whole): the merged ones are rounded again.
        merged.polygons = self.module.bbox_head.output_vertices(merged.polygons)
        unflipped = [view for view in views if not view.metainfo.get('flip', False)]
        result = (unflipped or views)[0].clone()
        result.pred_instances = merged
        return result
