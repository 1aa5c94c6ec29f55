"""Reference implementation of the original PolarMask targets, written as plainly as possible.

Naming convention for shapes: P points, G ground-truth instances, R rays, K contour points.

This follows ``mmdet/datasets/coco_seg.py`` of the original
(``docs/original_polarmask.md#points-and-levels`` to ``docs/original_polarmask.md#ray-targets``)
step by step: a Python loop over contour vertices for the centre, the original's dense points x gts
assignment, and a Python loop over positive points for the rays, each ray searched with
``in`` tests over candidate bins. It is slow on purpose; the tests and
``benchmarks/polar_targets.py`` hold the vectorised code against it. Differences from the
original, all shared with the library code:

* float32 ``atan2`` is pinned to its correctly rounded value (see
  ``polarmask.structures.polar._degree_bins``);
* an instance whose mask has no contour is dropped instead of raising an IndexError;
* the original returns no positives at all when the first instance's centre has x == 0
  (``get_mask_sample_region``'s "no gt" test); that bug is not reproduced;
* bbox targets of negatives are 0 (the original leaves those of gt 0 there);
* the background label is ``num_classes`` (mmdet 3.x), not 0.

:func:`contour_crossings_loop` is the reference of a non-original option
(``fill_missing_rays``): the exact crossing of every ray with the contour polyline.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch import Tensor

INF = 1e8


def largest_contour_and_center(mask: np.ndarray) -> tuple[np.ndarray, list[int]] | None:
    """The original's ``get_single_centerpoint``: largest contour, truncated shoelace centre.

    Returns:
        ``((K, 2) int32 contour, [x, y])``, or None when the mask has no contour.
    """
    contours, _ = cv2.findContours(
        np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_NONE
    )
    contours = list(contours)
    if not contours:
        return None
    contours.sort(key=lambda contour: cv2.contourArea(contour), reverse=True)
    count = contours[0][:, 0, :]
    try:
        center = shoelace_center(count)
    except (ValueError, OverflowError):  # int(nan) / int(inf): zero polygon area
        x, y = count.mean(axis=0)
        center = [int(x), int(y)]
    return count, center


def shoelace_center(vertices: np.ndarray) -> list[int]:
    """The original's ``get_centerpoint``, loop and all."""
    area = 0.0
    x, y = 0.0, 0.0
    for i in range(len(vertices)):
        lat = vertices[i][0]
        lng = vertices[i][1]
        lat1 = vertices[i - 1][0]  # i == 0 takes the last vertex, as the original does
        lng1 = vertices[i - 1][1]
        fg = (lat * lng1 - lng * lat1) / 2.0
        area += fg
        x += fg * (lat + lat1) / 3.0
        y += fg * (lng + lng1) / 3.0
    with np.errstate(divide='ignore', invalid='ignore'):
        x = x / area
        y = y / area
    return [int(x), int(y)]


def degree_of(delta_x: Tensor, delta_y: Tensor) -> Tensor:
    """Integer degrees of atan2(dx, dy), float32 chain with the pinned atan2."""
    angle = torch.atan2(delta_x.double(), delta_y.double()).float() * 180 / torch.tensor(math.pi)
    angle[angle < 0] += 360
    return angle.int()


def ray_targets_loop(x: Tensor, y: Tensor, contour: Tensor, num_rays: int = 36) -> Tensor:
    """The original's ``get_36_coordinates`` for any ray count R dividing 360.

    Args:
        x, y: 0-dim float32 ray origin in pixels.
        contour: (K, 2) float32 contour points (x, y).

    Returns:
        (R,) float32 ray lengths.
    """
    step = 360 // num_rays
    delta_x = contour[:, 0] - x
    delta_y = contour[:, 1] - y
    angle = degree_of(delta_x, delta_y)
    dist = torch.sqrt(delta_x**2 + delta_y**2)
    distances = torch.zeros(num_rays)
    for k, a in enumerate(range(0, 360, step)):
        distances[k] = 1e-6
        for candidate in (a, a + 1, a - 1, a + 2, a - 2, a + 3, a - 3):
            if candidate in angle:
                distances[k] = dist[angle == candidate].max()
                break
    return distances


def polar_targets_loop(
    gt_masks: np.ndarray,
    gt_bboxes: np.ndarray,
    gt_labels: np.ndarray,
    pad_shape: tuple[int, int],
    num_classes: int,
    strides: tuple[int, ...] = (8, 16, 32, 64, 128),
    regress_ranges: tuple[tuple[float, float], ...] = (
        (-1, 64),
        (64, 128),
        (128, 256),
        (256, 512),
        (512, INF),
    ),
    radius: float = 1.5,
    num_rays: int = 36,
) -> tuple[Tensor, Tensor, Tensor]:
    """The original's ``prepare_train_img`` target part for one image.

    Returns:
        labels (P,) long (``num_classes`` = background), bbox targets (P, 4) float32 l, t, r, b,
        ray targets (P, R) float32; P points of all levels, level-major.
    """
    contours, centers, keep = [], [], []
    for index, mask in enumerate(gt_masks):
        found = largest_contour_and_center(mask)
        if found is not None:
            contours.append(torch.Tensor(found[0]).float())
            centers.append(found[1])
            keep.append(index)
    gt_bboxes = torch.as_tensor(np.asarray(gt_bboxes, dtype=np.float32)[keep]).reshape(-1, 4)
    gt_labels = torch.as_tensor(np.asarray(gt_labels, dtype=np.int64)[keep])

    all_points, all_ranges, num_points_per_level = [], [], []
    for stride, regress_range in zip(strides, regress_ranges, strict=True):
        height, width = -(-pad_shape[0] // stride), -(-pad_shape[1] // stride)
        for i in range(height):
            for j in range(width):
                all_points.append([j * stride + stride // 2, i * stride + stride // 2])
                all_ranges.append(regress_range)
        num_points_per_level.append(height * width)
    points = torch.tensor(all_points, dtype=torch.float32)
    ranges = torch.tensor(all_ranges, dtype=torch.float32)
    num_points, num_gts = points.shape[0], gt_bboxes.shape[0]

    labels = torch.full((num_points,), num_classes, dtype=torch.long)
    bbox_targets = torch.zeros(num_points, 4)
    mask_targets = torch.zeros(num_points, num_rays)
    if num_gts == 0:
        return labels, bbox_targets, mask_targets

    areas = (gt_bboxes[:, 2] - gt_bboxes[:, 0] + 1) * (gt_bboxes[:, 3] - gt_bboxes[:, 1] + 1)
    areas = areas[None].repeat(num_points, 1)
    boxes = gt_bboxes[None].expand(num_points, num_gts, 4)
    xs = points[:, 0, None].expand(num_points, num_gts)
    ys = points[:, 1, None].expand(num_points, num_gts)
    left = xs - boxes[..., 0]
    right = boxes[..., 2] - xs
    top = ys - boxes[..., 1]
    bottom = boxes[..., 3] - ys
    all_bbox_targets = torch.stack((left, top, right, bottom), -1)  # (P, G, 4)

    # get_mask_sample_region: per level, [c - radius * stride, c + radius * stride] clipped to box.
    center_x = torch.tensor([c[0] for c in centers], dtype=torch.float32)[None].expand_as(xs)
    center_y = torch.tensor([c[1] for c in centers], dtype=torch.float32)[None].expand_as(xs)
    region = torch.zeros(num_points, num_gts, 4)
    begin = 0
    for level, count in enumerate(num_points_per_level):
        end = begin + count
        reach = strides[level] * radius
        xmin = center_x[begin:end] - reach
        ymin = center_y[begin:end] - reach
        xmax = center_x[begin:end] + reach
        ymax = center_y[begin:end] + reach
        box = boxes[begin:end]
        region[begin:end, :, 0] = torch.where(xmin > box[..., 0], xmin, box[..., 0])
        region[begin:end, :, 1] = torch.where(ymin > box[..., 1], ymin, box[..., 1])
        region[begin:end, :, 2] = torch.where(xmax > box[..., 2], box[..., 2], xmax)
        region[begin:end, :, 3] = torch.where(ymax > box[..., 3], box[..., 3], ymax)
        begin = end
    inside = (
        torch.stack(
            (xs - region[..., 0], ys - region[..., 1], region[..., 2] - xs, region[..., 3] - ys), -1
        ).min(-1)[0]
        > 0
    )

    max_distance = all_bbox_targets.max(-1)[0]
    in_range = (max_distance >= ranges[:, None, 0]) & (max_distance <= ranges[:, None, 1])
    areas[~inside] = INF
    areas[~in_range] = INF
    min_area, min_area_inds = areas.min(dim=1)

    positive = min_area != INF
    labels[positive] = gt_labels[min_area_inds[positive]]
    chosen = all_bbox_targets[range(num_points), min_area_inds]
    bbox_targets[positive] = chosen[positive]
    for p in positive.nonzero().reshape(-1).tolist():
        x, y = points[p]
        mask_targets[p] = ray_targets_loop(x, y, contours[min_area_inds[p]], num_rays)
    return labels, bbox_targets, mask_targets


def contour_crossings_loop(
    x: float, y: float, contour: torch.Tensor, num_rays: int = 36
) -> torch.Tensor:
    """Farthest crossing of each exact ray with the closed contour polyline, -1 where none.

    Ray by ray and segment by segment, in float64: solve ``p + t d = a + s (b - a)`` for
    ``t >= 0`` and ``0 <= s <= 1``; a ray along a segment takes the segment's far end; a
    segment through the point itself is skipped.
    """
    points = contour.double().tolist()
    rays = []
    for k in range(num_rays):
        theta = math.radians(k * 360 / num_rays)
        dx, dy = math.sin(theta), math.cos(theta)
        farthest = -1.0
        for (ax, ay), (bx, by) in zip(points, points[1:] + points[:1], strict=True):
            ax, ay, ex, ey = ax - x, ay - y, bx - ax, by - ay
            if abs(ax * ey - ay * ex) < 1e-9 and ax * (ax + ex) + ay * (ay + ey) <= 0:
                continue  # the segment runs through the point: skipped
            denominator = dx * ey - dy * ex
            if abs(denominator) < 1e-12:
                if abs(ax * dy - ay * dx) < 1e-9:  # on the ray's line: the far end, if ahead
                    ends = [(ax, ay), (ax + ex, ay + ey)]
                    ahead = [math.hypot(u, v) for u, v in ends if u * dx + v * dy >= 0]
                    farthest = max([farthest, *ahead])
                continue
            t = (ax * ey - ay * ex) / denominator
            s = (ax * dy - ay * dx) / denominator
            if t >= 0 and -1e-9 <= s <= 1 + 1e-9:
                farthest = max(farthest, t)
        rays.append(farthest)
    return torch.tensor(rays, dtype=torch.float32)
