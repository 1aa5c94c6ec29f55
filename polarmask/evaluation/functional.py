"""Conversions between the model's predictions and COCO result records.

Naming convention for shapes: n detections of one image. Masks and RLEs are made in
``polarmask.structures.mask``.
"""

from __future__ import annotations

import numpy as np


def xyxy_to_coco_xywh(bboxes: np.ndarray) -> list[list[float]]:
    """(n, 4) x1y1x2y2 boxes with the inclusive ``+1`` convention -> COCO [x, y, w, h] lists."""
    bboxes = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
    xywh = np.stack(
        (
            bboxes[:, 0],
            bboxes[:, 1],
            bboxes[:, 2] - bboxes[:, 0] + 1,
            bboxes[:, 3] - bboxes[:, 1] + 1,
        ),
        axis=1,
    )
    return xywh.tolist()
