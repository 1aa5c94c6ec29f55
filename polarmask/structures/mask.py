"""Pixels of instances: the one home of how polygons and COCO segmentations become masks and RLE.

Naming convention for shapes: n instances, R polygon vertices, H x W a canvas in pixels.

* Polygons are rasterised the original PolarMask's way (``docs/original_polarmask.md``): every
  vertex is truncated to an integer (not rounded) and the polygon is filled with OpenCV's
  ``drawContours``. The metric, the API's masks and the drawings all use :func:`truncate_vertices`.
* COCO segmentations (polygon lists, uncompressed RLE, compressed RLE) are rasterised by
  pycocotools, as its ``annToMask`` does.
* RLEs are compressed COCO RLEs with ``counts`` as a ``str``, ready for json.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from torch import Tensor

_ENCODE_CHUNK = 32  # masks rasterised per pycocotools encode call (bounds the memory)


def to_numpy(value: Tensor | np.ndarray | list) -> np.ndarray:
    """A tensor (any device) or array-like as a numpy array."""
    if isinstance(value, Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def truncate_vertices(polygon: Tensor | np.ndarray) -> np.ndarray:
    """(R, 2) float vertices (x, y) -> (R, 1, 2) int32, truncated towards zero as the original.

    The shape is the one OpenCV's contour functions take.
    """
    return (
        np.trunc(np.asarray(to_numpy(polygon), dtype=np.float64)).astype(np.int32).reshape(-1, 1, 2)
    )


def polygon_to_mask(polygon: Tensor | np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise one polygon the original's way: truncate vertices to int, fill with OpenCV.

    Args:
        polygon: (R, 2) vertices (x, y) in pixels of the target canvas.
        shape: (H, W) of the canvas.

    Returns:
        np.ndarray: (H, W) uint8 mask with 1 inside.
    """
    canvas = np.zeros(shape, dtype=np.uint8)
    cv2.drawContours(canvas, [truncate_vertices(polygon)], -1, 1, -1)
    return canvas


def polygons_to_masks(polygons: Tensor | np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise polygons: (n, R, 2) -> (n, H, W) uint8 masks (see :func:`polygon_to_mask`)."""
    polygons = to_numpy(polygons)
    masks = np.zeros((len(polygons), *shape), dtype=np.uint8)
    for index, polygon in enumerate(polygons):
        masks[index] = polygon_to_mask(polygon, shape)
    return masks


def masks_to_rles(masks: np.ndarray) -> list[dict]:
    """Encode (n, H, W) binary masks as n compressed COCO RLEs with ``str`` counts."""
    masks = np.asarray(masks, dtype=np.uint8)
    if not len(masks):
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)))
    for rle in rles:
        rle['counts'] = rle['counts'].decode()
    return rles


def polygons_to_rles(polygons: Tensor | np.ndarray, shape: tuple[int, int]) -> list[dict]:
    """Rasterise polygons (:func:`polygon_to_mask`) and encode them as COCO RLE.

    Args:
        polygons: (n, R, 2) xy vertices in pixels of the ``shape`` canvas.
        shape: (H, W) canvas, the original image.

    Returns:
        list[dict]: n compressed RLEs, ``dict(size=[H, W], counts=str)``.
    """
    polygons = to_numpy(polygons)
    rles = []
    for start in range(0, len(polygons), _ENCODE_CHUNK):
        rles.extend(
            masks_to_rles(polygons_to_masks(polygons[start : start + _ENCODE_CHUNK], shape))
        )
    return rles


def is_rle(segmentation: Any) -> bool:
    """Whether a COCO ``segmentation`` is an RLE (a dict) rather than a list of polygons."""
    return isinstance(segmentation, dict)


def segmentations_to_rles(segmentations: list, height: int, width: int) -> list[dict]:
    """One pycocotools RLE per COCO segmentation, the parts of a polygon list merged.

    The polygons of all segmentations are converted in one pycocotools call.

    Args:
        segmentations: n polygon lists (``[[x0, y0, x1, y1, ...], ...]``), uncompressed RLEs
            (``counts`` a list) or compressed RLEs (``counts`` a string or bytes).
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        list[dict]: n RLEs as pycocotools returns them (``counts`` bytes, or as given).
    """
    polygons = [part for s in segmentations if not is_rle(s) for part in s]
    polygon_rles = iter(mask_utils.frPyObjects(polygons, height, width) if polygons else [])
    rles = []
    for segmentation in segmentations:
        if is_rle(segmentation):
            rle = segmentation
            if isinstance(rle['counts'], list):
                rle = mask_utils.frPyObjects(rle, height, width)
        else:
            parts = [next(polygon_rles) for _ in segmentation]
            rle = parts[0] if len(parts) == 1 else mask_utils.merge(parts)
        rles.append(rle)
    return rles


def segmentation_areas(segmentations: list, height: int, width: int) -> list[int]:
    """Pixel count of each rasterised COCO segmentation (see :func:`segmentations_to_rles`)."""
    return [
        int(mask_utils.area(rle)) for rle in segmentations_to_rles(segmentations, height, width)
    ]


def segmentations_to_masks(segmentations: list, height: int, width: int) -> np.ndarray:
    """Rasterise COCO segmentations with pycocotools (``annToMask``), all in one decode call.

    Args:
        segmentations: n COCO segmentations (see :func:`segmentations_to_rles`).
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        np.ndarray: (n, H, W) uint8 masks with 1 inside.
    """
    if not segmentations:
        return np.zeros((0, height, width), dtype=np.uint8)
    decoded = mask_utils.decode(segmentations_to_rles(segmentations, height, width))
    # (H, W, n) in Fortran order: mask i is stored transposed, so copy each back row-major.
    masks = np.empty((len(segmentations), height, width), dtype=np.uint8)
    for index, out in enumerate(masks):
        cv2.transpose(decoded[:, :, index].T, dst=out)
    return masks
