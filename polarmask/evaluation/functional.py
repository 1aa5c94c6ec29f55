"""Conversions between the model's predictions and COCO result records.

Naming convention for shapes: n detections of one image, R rays, H x W the original image.
"""

from __future__ import annotations

import numpy as np
import torch
from pycocotools import mask as mask_utils

from polarmask.structures.polar import polygons_to_masks

_ENCODE_CHUNK = 32


def to_numpy(value: torch.Tensor | np.ndarray | list) -> np.ndarray:
    """A tensor (any device) or array-like as a numpy array."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def encode_polygons(polygons: torch.Tensor | np.ndarray, shape: tuple[int, int]) -> list[dict]:
    """Rasterise polygons the original's way and encode them as COCO RLE.

    Args:
        polygons: (n, R, 2) xy vertices in pixels of the ``shape`` canvas.
        shape: (H, W) canvas, the original image.

    Returns:
        list[dict]: n compressed RLEs, ``dict(size=[H, W], counts=str)``.
    """
    polygons = to_numpy(polygons)
    rles = []
    for start in range(0, len(polygons), _ENCODE_CHUNK):
        masks = polygons_to_masks(polygons[start : start + _ENCODE_CHUNK], shape)  # (n', H, W)
        rles.extend(mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0))))
    for rle in rles:
        rle['counts'] = rle['counts'].decode()
    return rles


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
