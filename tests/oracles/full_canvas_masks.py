"""Reference rasterisation of polygons: every polygon filled on a canvas of the whole image.

Naming convention for shapes: n polygons, R vertices, H x W the canvas in pixels.

The way ``polarmask.structures.mask`` rasterised before it worked within each polygon's box:
truncate the vertices to int, fill the polygon with OpenCV's ``drawContours`` on an (H, W)
canvas, encode the canvases with ``pycocotools.mask.encode`` 32 at a time. Memory grows with the
image (an 8000x6000 canvas is 48 MB per detection); the tests and
``benchmarks/polygon_masks.py`` hold the box-wise code to its masks and its RLE bytes.
"""

from __future__ import annotations

import cv2
import numpy as np
from pycocotools import mask as mask_utils

CHUNK = 32


def full_canvas_masks(polygons: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(n, R, 2) float xy vertices -> (n, H, W) uint8 masks, each on a canvas of its own."""
    masks = np.zeros((len(polygons), *shape), dtype=np.uint8)
    for mask, polygon in zip(masks, polygons, strict=True):
        vertices = np.trunc(np.asarray(polygon, dtype=np.float64)).astype(np.int32)
        cv2.drawContours(mask, [vertices.reshape(-1, 1, 2)], -1, 1, -1)
    return masks


def full_canvas_rles(polygons: np.ndarray, shape: tuple[int, int]) -> list[dict]:
    """n compressed RLEs (``counts`` str) of :func:`full_canvas_masks`, 32 canvases at a time."""
    rles = []
    for start in range(0, len(polygons), CHUNK):
        masks = full_canvas_masks(polygons[start : start + CHUNK], shape)
        for rle in mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0))):
            rles.append(dict(size=rle['size'], counts=rle['counts'].decode()))
    return rles
