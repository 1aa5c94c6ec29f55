"""Seeded random instance masks for the target tests and benchmark.

Shapes of mixed size: non-convex stars, rotated ellipses, donuts, two-part masks, thin lines,
shapes cut by the image border. Boxes are the masks' inclusive extents jittered by up to 1.5
pixels, as resized annotations are.
"""

from __future__ import annotations

import cv2
import numpy as np

SHAPE_KINDS = ('star', 'ellipse', 'donut', 'two_parts', 'line', 'border')


def random_mask(
    rng: np.random.Generator, shape: tuple[int, int], kind: str, size: float
) -> np.ndarray:
    """One (H, W) uint8 mask of ``kind`` with radius about ``size`` pixels."""
    height, width = shape
    mask = np.zeros(shape, dtype=np.uint8)
    center = rng.uniform((0, 0), (width, height))
    if kind == 'border':
        center[rng.integers(2)] = 0 if rng.random() < 0.5 else shape[::-1][0] - 1
    if kind in ('star', 'border'):
        num = int(rng.integers(5, 14))
        theta = np.sort(rng.uniform(0, 2 * np.pi, num))
        radii = size * rng.uniform(0.3, 1.0, num)
        vertices = center + np.stack((radii * np.cos(theta), radii * np.sin(theta)), axis=1)
        cv2.fillPoly(mask, [np.round(vertices).astype(np.int32)], 1)
    elif kind in ('ellipse', 'donut'):
        axes = (max(1, int(size)), max(1, int(size * rng.uniform(0.3, 1.0))))
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(mask, tuple(int(v) for v in center), axes, angle, 0, 360, 1, -1)
        if kind == 'donut':
            inner = (max(1, axes[0] // 2), max(1, axes[1] // 2))
            cv2.ellipse(mask, tuple(int(v) for v in center), inner, angle, 0, 360, 0, -1)
    elif kind == 'two_parts':
        for part_size in (size, size * rng.uniform(0.3, 1.0)):
            offset = rng.uniform(-2 * size, 2 * size, 2)
            part_center = tuple(int(v) for v in center + offset)
            cv2.circle(mask, part_center, max(1, int(part_size / 2)), 1, -1)
    elif kind == 'line':
        end = center + rng.uniform(-size, size, 2)
        start_xy = tuple(int(v) for v in center)
        end_xy = tuple(int(v) for v in end)
        cv2.line(mask, start_xy, end_xy, 1, int(rng.integers(1, 3)))
    else:
        raise ValueError(f'unknown shape kind {kind!r}: use one of {SHAPE_KINDS}')
    return mask


def box_of(rng: np.random.Generator, mask: np.ndarray, jitter: float = 1.5) -> np.ndarray:
    """Inclusive (x1, y1, x2, y2) extent of a mask, jittered, clipped to the image; float32."""
    height, width = mask.shape
    ys, xs = np.nonzero(mask)
    box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float64)
    box += rng.uniform(-jitter, jitter, 4)
    box[[0, 2]] = box[[0, 2]].clip(0, width - 1)
    box[[1, 3]] = box[[1, 3]].clip(0, height - 1)
    box[2:] = np.maximum(box[2:], box[:2])
    return box.astype(np.float32)


def random_instances(
    rng: np.random.Generator,
    shape: tuple[int, int] = (768, 1280),
    num_instances: int = 7,
    num_classes: int = 80,
    min_size: float = 6.0,
    max_size: float = 300.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random instances of one image.

    Returns:
        (G, H, W) uint8 masks, (G, 4) float32 boxes, (G,) int64 labels; every mask non-empty.
    """
    masks, boxes = [], []
    while len(masks) < num_instances:
        kind = SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
        size = float(np.exp(rng.uniform(np.log(min_size), np.log(max_size))))
        mask = random_mask(rng, shape, kind, size)
        if mask.any():
            masks.append(mask)
            boxes.append(box_of(rng, mask))
    labels = rng.integers(0, num_classes, num_instances)
    return np.stack(masks), np.stack(boxes), labels.astype(np.int64)
