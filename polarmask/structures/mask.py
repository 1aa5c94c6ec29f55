"""Pixels of instances: the one home of how polygons and COCO segmentations become masks and RLE.

Naming convention for shapes: n instances, R polygon vertices, H x W a canvas in pixels.

* Polygons are rasterised the original PolarMask's way (``docs/original_polarmask.md``): every
  vertex is truncated to an integer (not rounded) and the polygon is filled with OpenCV's
  ``drawContours``. The metric, the API's masks and the drawings all use :func:`truncate_vertices`.
  A head with ``test_cfg.round_vertices`` returns vertices already rounded
  (:func:`round_vertices`), which truncation keeps.
* COCO segmentations (polygon lists, uncompressed RLE, compressed RLE) are rasterised by
  pycocotools, as its ``annToMask`` does.
* RLEs are compressed COCO RLEs with ``counts`` as a ``str``, ready for json.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch import Tensor


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


def round_vertices(polygons: Tensor) -> Tensor:
    """Polygon vertices (..., 2) rounded to the nearest pixel (halves up), as float.

    A vertex at x lies in pixel ``floor(x + 0.5)`` (pixel k's centre is at k, the contours'
    convention), so rounded vertices rasterise to the pixels the polygon covers, where the
    original's truncation shifts masks up and left by half a pixel on average. Truncating a
    rounded vertex (:func:`truncate_vertices`) leaves it unchanged.
    """
    return torch.floor(polygons + 0.5)


def _clipped_box(vertices: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), exclusive ends, of (R, 1, 2) int vertices within an (H, W) canvas.

    Empty (x1 <= x0 or y1 <= y0) when the polygon lies outside the canvas.
    """
    height, width = shape
    low, high = vertices.reshape(-1, 2).min(axis=0), vertices.reshape(-1, 2).max(axis=0)
    x0, y0 = max(int(low[0]), 0), max(int(low[1]), 0)
    x1, y1 = min(int(high[0]) + 1, width), min(int(high[1]) + 1, height)
    return x0, y0, x1, y1


def _fill_in_box(
    polygon: Tensor | np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, int, int]:
    """Rasterise one polygon within its box clipped to the canvas.

    OpenCV fills a polygon the same way wherever the canvas ends, as long as it clips it where
    the full canvas would, so the crop holds exactly the pixels of the full-canvas mask.

    Returns:
        tuple: the (h, w) uint8 crop of the mask and its top-left corner (x0, y0) on the canvas.
    """
    vertices = truncate_vertices(polygon)
    if not len(vertices):
        return np.zeros((0, 0), dtype=np.uint8), 0, 0
    x0, y0, x1, y1 = _clipped_box(vertices, shape)
    crop = np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), dtype=np.uint8)
    if crop.size:
        cv2.drawContours(crop, [vertices - np.array([x0, y0], dtype=np.int32)], -1, 1, -1)
    return crop, x0, y0


def polygon_to_mask(polygon: Tensor | np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise one polygon the original's way: truncate vertices to int, fill with OpenCV.

    Args:
        polygon: (R, 2) vertices (x, y) in pixels of the target canvas.
        shape: (H, W) of the canvas.

    Returns:
        np.ndarray: (H, W) uint8 mask with 1 inside.
    """
    canvas = np.zeros(shape, dtype=np.uint8)
    crop, x0, y0 = _fill_in_box(polygon, shape)
    canvas[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
    return canvas


def polygons_to_masks(polygons: Tensor | np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise polygons: (n, R, 2) -> (n, H, W) uint8 masks (see :func:`polygon_to_mask`)."""
    polygons = to_numpy(polygons)
    masks = np.zeros((len(polygons), *shape), dtype=np.uint8)
    for mask, polygon in zip(masks, polygons, strict=True):
        crop, x0, y0 = _fill_in_box(polygon, shape)
        mask[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
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


def _crop_to_rle(crop: np.ndarray, x0: int, y0: int, shape: tuple[int, int]) -> dict:
    """The compressed RLE of an (H, W) canvas that is empty but for ``crop`` at (x0, y0).

    COCO RLE counts alternate runs of 0s and 1s over the canvas in column-major order. Each
    column of the crop gives the runs of 1s that start and end in it; runs that continue into
    the next column (a crop of the full height) are joined. The counts are those
    ``pycocotools.mask.encode`` finds on the full canvas, and pycocotools compresses them, so
    the result is byte-identical to encoding :func:`polygon_to_mask`'s mask, without the canvas.
    """
    height, width = shape
    padded = np.zeros((crop.shape[1], crop.shape[0] + 2), dtype=np.int8)  # (w, h + 2)
    padded[:, 1:-1] = crop.T
    steps = np.diff(padded, axis=1)  # (w, h + 1): +1 where a run of 1s starts, -1 after it
    start_columns, start_rows = np.nonzero(steps == 1)
    end_columns, end_rows = np.nonzero(steps == -1)
    starts = (x0 + start_columns.astype(np.int64)) * height + y0 + start_rows
    ends = (x0 + end_columns.astype(np.int64)) * height + y0 + end_rows
    joined = starts[1:] == ends[:-1]
    starts = starts[np.concatenate(([True], ~joined))[: len(starts)]]
    ends = ends[np.concatenate((~joined, [True]))[: len(ends)]]
    boundaries = np.concatenate(([0], np.stack((starts, ends), axis=1).ravel(), [height * width]))
    counts = np.diff(boundaries)
    if len(counts) > 1 and counts[-1] == 0:  # ends with a run of 1s: no trailing run of 0s
        counts = counts[:-1]
    rle = mask_utils.frPyObjects(dict(size=[height, width], counts=counts.tolist()), height, width)
    rle['counts'] = rle['counts'].decode()
    return rle


def polygons_to_rles(polygons: Tensor | np.ndarray, shape: tuple[int, int]) -> list[dict]:
    """Rasterise polygons (:func:`polygon_to_mask`) and encode them as COCO RLE.

    Each polygon is rasterised within its box clipped to the canvas and encoded from there, so
    time and memory follow the objects, not the canvas (an 8000x6000 image needs no 48 MB canvas
    per detection); the RLEs are byte-identical to encoding the full-canvas masks.

    Args:
        polygons: (n, R, 2) xy vertices in pixels of the ``shape`` canvas.
        shape: (H, W) canvas, the original image.

    Returns:
        list[dict]: n compressed RLEs, ``dict(size=[H, W], counts=str)``.
    """
    shape = (int(shape[0]), int(shape[1]))
    return [_crop_to_rle(*_fill_in_box(polygon, shape), shape) for polygon in to_numpy(polygons)]


def is_rle(segmentation: Any) -> bool:
    """Whether a COCO ``segmentation`` is an RLE (a dict) rather than a list of polygons."""
    return isinstance(segmentation, dict)


def polygon_defect(polygon: Any, height: int, width: int) -> str | None:
    """Why a COCO polygon cannot be rasterised safely, or None when it can.

    pycocotools walks a polygon's edges pixel by pixel at 5x scale, so a NaN, infinite or huge
    coordinate makes it allocate without bound; such polygons are refused, as are polygons
    with fewer than 3 points.

    Args:
        polygon: ``[x0, y0, x1, y1, ...]`` of a COCO ``segmentation`` list, in image pixels.
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        str | None: the defect, worded as a count label ("polygons with ..."), or None.
    """
    if not isinstance(polygon, (list, tuple)) or len(polygon) < 6 or len(polygon) % 2:
        return 'polygons with < 3 points (or an odd coordinate count)'
    bad_coordinates = 'polygons with coordinates that are NaN, infinite or not numbers'
    try:
        coordinates = np.asarray(polygon, dtype=np.float64)
    except (TypeError, ValueError):
        return bad_coordinates
    if coordinates.ndim != 1 or not np.isfinite(coordinates).all():
        return bad_coordinates
    xs, ys = coordinates[0::2], coordinates[1::2]
    if xs.min() < -width or xs.max() > 2 * width or ys.min() < -height or ys.max() > 2 * height:
        return 'polygons reaching more than an image width or height outside the image'
    return None


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
