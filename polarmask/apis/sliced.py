"""Sliced inference: a large image as overlapping tiles, merged by class-wise NMS.

The rule for tiles and for instances cut by them:

* Tiles are ``patch_size`` pixels (by default the test pipeline's input size, so a tile reaches
  the network without resampling), and neighbours overlap by ``overlap`` = ``overlap_ratio`` x
  ``patch_size`` pixels. The last tile of a row or column is moved back to end at the image
  border, so every tile has the full size; in a direction where the image is smaller than a
  patch, its one tile is the image's extent.
* A detection whose box comes within ``border_margin`` pixels of a tile edge that lies inside
  the image is an instance cut by that edge, and is dropped. An instance at most
  ``overlap - 2 * border_margin - 1`` pixels wide and high lies farther than ``border_margin``
  from the inner edges of at least one tile, which sees it whole; a larger one can be cut in
  every tile and lost, so choose the overlap larger than the largest instance.
* The detections of all tiles, shifted by their tile's origin (boxes and polygons), are merged
  by class-wise NMS with the model's ``test_cfg.nms`` (on the polygons' boxes with
  ``mask_nms``): an instance seen whole by two tiles is kept once, with its higher score. Masks
  are the RLEs of the shifted polygons on the whole image.

Naming convention for shapes: T tiles, n detections, R rays, H x W the whole image.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from polarmask.apis.det_result import DetectionResult
from polarmask.apis.inference import ImageInput, inference_detector, read_image
from polarmask.ops import batched_nms
from polarmask.structures.mask import polygons_to_rles
from polarmask.structures.polar import polygons_to_bboxes
from polarmask.utils.config import config_input_shape, config_name

DEFAULT_BORDER_MARGIN = 2
"""Pixels from an inner tile edge within which a detection counts as cut (see the module)."""


def _starts(size: int, patch: int, overlap: int) -> list[int]:
    if size <= patch:
        return [0]
    last = size - patch
    return list(range(0, last, patch - overlap)) + [last]


def slice_windows(
    img_shape: tuple[int, int], patch_size: tuple[int, int], overlap: tuple[int, int]
) -> np.ndarray:
    """The tiles of an image, row by row.

    Args:
        img_shape: (H, W) of the image.
        patch_size: (h, w) of a tile in pixels, each >= 1.
        overlap: (vertical, horizontal) overlap of neighbouring tiles in pixels, each in
            [0, patch).

    Returns:
        np.ndarray: (T, 4) int64 x0, y0, x1, y1 of each tile (x1, y1 exclusive).

    Raises:
        ValueError: a patch side is < 1 or an overlap outside [0, patch).
    """
    for patch, lap in zip(patch_size, overlap, strict=True):
        if patch < 1 or not 0 <= lap < patch:
            raise ValueError(
                f'tiles of {patch_size} pixels overlapping by {overlap}: every patch side must be '
                '>= 1 and every overlap in [0, patch side)'
            )
    height, width = img_shape
    rows = [(y, min(y + patch_size[0], height)) for y in _starts(height, patch_size[0], overlap[0])]
    cols = [(x, min(x + patch_size[1], width)) for x in _starts(width, patch_size[1], overlap[1])]
    return np.array([(x0, y0, x1, y1) for y0, y1 in rows for x0, x1 in cols], dtype=np.int64)


def uncut_detections(
    bboxes: np.ndarray, window: np.ndarray, img_shape: tuple[int, int], border_margin: float
) -> np.ndarray:
    """Which detections of a tile are not cut by one of its edges inside the image.

    Args:
        bboxes: (n, 4) x1, y1, x2, y2 in pixels of the tile (inclusive ``+1`` convention).
        window: x0, y0, x1, y1 of the tile in the image (x1, y1 exclusive).
        img_shape: (H, W) of the image.
        border_margin: pixels from an inner edge within which a box counts as cut.

    Returns:
        np.ndarray: (n,) bool, True for the detections to keep.
    """
    x0, y0, x1, y1 = (int(v) for v in window)
    height, width = img_shape
    last_x, last_y = x1 - x0 - 1, y1 - y0 - 1
    cut = np.zeros(len(bboxes), dtype=bool)
    if x0 > 0:
        cut |= bboxes[:, 0] <= border_margin
    if y0 > 0:
        cut |= bboxes[:, 1] <= border_margin
    if x1 < width:
        cut |= bboxes[:, 2] >= last_x - border_margin
    if y1 < height:
        cut |= bboxes[:, 3] >= last_y - border_margin
    return ~cut


def merge_tile_results(
    results: list[DetectionResult],
    windows: np.ndarray,
    img_shape: tuple[int, int],
    nms_cfg: dict,
    mask_nms: bool = False,
    border_margin: float = DEFAULT_BORDER_MARGIN,
    img_path: str | None = None,
) -> DetectionResult:
    """The detections of the whole image from those of its tiles (see the module's rule).

    Args:
        results: the T tiles' results, in pixels of each tile.
        windows: (T, 4) x0, y0, x1, y1 of the tiles (:func:`slice_windows`).
        img_shape: (H, W) of the whole image.
        nms_cfg: ``iou_threshold`` and ``offset`` (0 or 1) of the class-wise NMS.
        mask_nms: run NMS on the polygons' tight boxes instead of the predicted boxes.
        border_margin: see :func:`uncut_detections`.
        img_path: the image file, or None for an array.

    Returns:
        DetectionResult: in pixels of the whole image, by decreasing score.
    """
    kept = [
        result.subset(uncut_detections(result.bboxes, window, img_shape, border_margin))
        for result, window in zip(results, windows, strict=True)
    ]
    origins = [window[:2].astype(np.float32) for window in windows]
    bboxes = np.concatenate([r.bboxes + np.tile(o, 2) for r, o in zip(kept, origins, strict=True)])
    polygons = np.concatenate([r.polygons + o for r, o in zip(kept, origins, strict=True)])
    scores = np.concatenate([r.scores for r in kept])
    labels = np.concatenate([r.labels for r in kept])
    nms_boxes = torch.from_numpy(bboxes)
    if mask_nms:
        nms_boxes = polygons_to_bboxes(torch.from_numpy(polygons))
    keep = batched_nms(
        nms_boxes,
        torch.from_numpy(scores),
        torch.from_numpy(labels),
        nms_cfg['iou_threshold'],
        nms_cfg.get('offset', 1),
    ).numpy()
    return DetectionResult(
        bboxes=bboxes[keep],
        scores=scores[keep],
        labels=labels[keep],
        polygons=polygons[keep],
        masks=polygons_to_rles(polygons[keep], img_shape),
        classes=results[0].classes,
        ori_shape=img_shape,
        img_path=img_path,
    )


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    height, width = value
    return int(height), int(width)


def inference_sliced(
    model: nn.Module,
    img: ImageInput,
    patch_size: int | tuple[int, int] | None = None,
    overlap_ratio: float = 0.25,
    batch_size: int = 1,
    border_margin: float = DEFAULT_BORDER_MARGIN,
) -> DetectionResult:
    """Detect instances in a large image tile by tile (the rule is in the module's docstring).

    Args:
        model: a detector from :func:`~polarmask.apis.init_detector`.
        img: an image file path or an (H, W, 3) uint8 BGR array.
        patch_size: tile side, or (h, w), in pixels of the image; None takes the (H, W) of the
            test pipeline's ``Resize``.
        overlap_ratio: overlap of neighbouring tiles as a fraction of the patch, in [0, 1).
        batch_size: tiles per forward pass.
        border_margin: pixels from an inner tile edge within which a detection counts as cut.

    Returns:
        DetectionResult: boxes, polygons and masks in pixels of the whole image.

    Raises:
        ValueError: no patch size given and the config has no fixed test scale, or a bad
            overlap ratio or batch size.
    """
    if patch_size is None:
        patch_size = config_input_shape(model.cfg)
        if patch_size is None:
            raise ValueError(
                f'config {config_name(model.cfg)} has no fixed test scale to take the tile size '
                'from: pass patch_size (--patch-size N)'
            )
    if not 0 <= overlap_ratio < 1:
        raise ValueError(f'overlap_ratio must be in [0, 1) (got {overlap_ratio})')
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1 (got {batch_size})')
    patch = _pair(patch_size)
    overlap = (round(overlap_ratio * patch[0]), round(overlap_ratio * patch[1]))
    pixels = read_image(img)
    img_shape = pixels.shape[:2]
    windows = slice_windows(img_shape, patch, overlap)
    tiles = [pixels[y0:y1, x0:x1] for x0, y0, x1, y1 in windows.tolist()]
    results: list[DetectionResult] = []
    for first in range(0, len(tiles), batch_size):
        results += inference_detector(model, tiles[first : first + batch_size])
    test_cfg = model.cfg.model.get('test_cfg') or {}
    return merge_tile_results(
        results,
        windows,
        img_shape,
        test_cfg.get('nms', dict(iou_threshold=0.5, offset=1)),
        mask_nms=test_cfg.get('mask_nms', False),
        border_margin=border_margin,
        img_path=None if isinstance(img, np.ndarray) else os.fspath(img),
    )
