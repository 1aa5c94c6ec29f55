"""Class-wise NMS of polygon detections, shared by the head's post-processing and TTA merging."""

from __future__ import annotations

from mmengine.structures import InstanceData

from polarmask.ops import batched_nms
from polarmask.structures.polar import polygons_to_bboxes


def polygon_nms(
    detections: InstanceData,
    iou_threshold: float,
    offset: int = 1,
    class_agnostic: bool = False,
    max_per_img: int = 100,
    mask_nms: bool = False,
) -> InstanceData:
    """The detections that NMS keeps, best first, at most ``max_per_img``.

    Args:
        detections: ``bboxes`` (n, 4) x1y1x2y2, ``scores`` (n,), ``labels`` (n,) and
            ``polygons`` (n, R, 2).
        iou_threshold: box IoU above which the lower-scored detection is dropped.
        offset: 1 for the original's ``+1`` box areas, 0 for continuous ones.
        class_agnostic: one NMS over all classes (a shape scored for two classes keeps one)
            instead of one per class.
        max_per_img: detections kept.
        mask_nms: NMS on the polygons' tight boxes, which then replace ``bboxes``.

    Returns:
        InstanceData: ``bboxes``, ``scores``, ``labels`` and ``polygons`` of the kept ones.
    """
    bboxes, labels = detections.bboxes, detections.labels
    if mask_nms:
        bboxes = polygons_to_bboxes(detections.polygons)
    groups = labels.new_zeros(labels.shape) if class_agnostic else labels
    keep = batched_nms(bboxes, detections.scores, groups, iou_threshold, offset)[:max_per_img]
    return InstanceData(
        bboxes=bboxes[keep],
        scores=detections.scores[keep],
        labels=labels[keep],
        polygons=detections.polygons[keep],
    )
