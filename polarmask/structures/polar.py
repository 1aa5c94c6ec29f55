"""The polar codec: the one home of PolarMask's geometric conventions.

Naming convention for shapes: N images, P points, G ground-truth instances, R rays,
K contour points, H x W an image or mask size in pixels.

Conventions kept from the original PolarMask (``docs/original_polarmask.md#angle-conventions``,
``docs/original_polarmask.md#points-and-levels``,
``docs/original_polarmask.md#rasterising-and-evaluation``):

* Points: on an FPN level of stride ``s`` the cell (i, j) sits at (x, y) = (j*s + s//2, i*s + s//2)
  in pixels of the network input; points are flattened row-major (y outer, x inner).
* Angles ('current', the default): ray k points at ``k * 360 / R`` degrees where 0 degrees points
  down (+y) and 90 degrees points right (+x); a ray of length d from (cx, cy) ends at
  ``x = cx + d*sin(t), y = cy + d*cos(t)``. This matches the targets' ``atan2(dx, dy)``.
* Angles ('legacy', the released checkpoints of 2019-10): 0 degrees points left (-x), 90 down;
  ``x = cx - d*cos(t), y = cy + d*sin(t)``.
* Polygons become pixels in ``polarmask.structures.mask`` (vertices truncated to integers, filled
  with OpenCV).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

ANGLE_CONVENTIONS = ('current', 'legacy')


def check_angle_convention(convention: str) -> None:
    """Raise a ``ValueError`` naming the choices unless ``convention`` is one of them."""
    if convention not in ANGLE_CONVENTIONS:
        raise ValueError(f'unknown angle convention {convention!r}: use one of {ANGLE_CONVENTIONS}')


def ray_step(num_rays: int) -> int:
    """Degrees between neighbouring rays; raises a ``ValueError`` unless ``num_rays`` divides 360.

    The one check of a ray count, for the head, the targets and the codec.
    """
    if num_rays <= 0 or 360 % num_rays:
        raise ValueError(f'num_rays must divide 360, e.g. 36 rays of 10 degrees (got {num_rays})')
    return 360 // num_rays


def angles(
    num_rays: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Ray angles in radians, ray k at ``k * 360 / num_rays`` degrees.

    Computed in ``dtype`` as ``degrees / 180 * pi``, the original's order of operations (its
    ``torch.range(0, 350, 10) / 180 * math.pi`` in float32); multiplying by pi first moves 7 of
    the 36 float32 angles by one ulp.

    Returns:
        Tensor: (R,) angles in radians.
    """
    degrees = torch.arange(num_rays, device=device, dtype=dtype) * ray_step(num_rays)
    return degrees / 180 * math.pi


def ray_directions(
    num_rays: int,
    convention: str = 'current',
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Unit vectors of the rays in image coordinates (x right, y down).

    Returns:
        Tensor: (R, 2) as (dx, dy) per ray.
    """
    check_angle_convention(convention)
    theta = angles(num_rays, device=device, dtype=dtype)
    if convention == 'current':
        return torch.stack((torch.sin(theta), torch.cos(theta)), dim=-1)
    return torch.stack((-torch.cos(theta), torch.sin(theta)), dim=-1)


def level_points(
    featmap_size: tuple[int, int],
    stride: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Pixel coordinates of the cells of one FPN level.

    Args:
        featmap_size: (H_l, W_l) of the level's feature map.
        stride: the level's stride in input pixels.

    Returns:
        Tensor: (H_l * W_l, 2) points as (x, y), row-major.
    """
    height, width = featmap_size
    xs = torch.arange(width, device=device, dtype=dtype) * stride + stride // 2
    ys = torch.arange(height, device=device, dtype=dtype) * stride + stride // 2
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
    return torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), dim=-1)


def featmap_sizes_for(pad_shape: tuple[int, int], strides: list[int]) -> list[tuple[int, int]]:
    """Feature-map sizes the network produces for an input of ``pad_shape`` (H, W).

    Each stride-2 stage maps a side n to ceil(n / 2), so level ``s`` has ceil(H / s) x ceil(W / s).
    """
    height, width = pad_shape
    return [(-(-height // s), -(-width // s)) for s in strides]


def clamp_to_image(xy: Tensor, max_shape: tuple[int, int]) -> Tensor:
    """Clamp (..., 2) points (x, y) to [0, W - 1] x [0, H - 1] of ``max_shape`` (H, W).

    Traceable with sizes read from a tensor's shape (ONNX export with a free image size).
    """
    height, width = max_shape
    return torch.stack((xy[..., 0].clamp(0, width - 1), xy[..., 1].clamp(0, height - 1)), dim=-1)


def distance_to_boxes(
    points: Tensor, distances: Tensor, max_shape: tuple[int, int] | None = None
) -> Tensor:
    """Boxes from points and (l, t, r, b) distances to the box sides.

    Args:
        points: (..., 2) as (x, y) in pixels.
        distances: (..., 4) distances to the left, top, right and bottom sides.
        max_shape: (H, W); when given, x is clamped to [0, W - 1] and y to [0, H - 1].

    Returns:
        Tensor: (..., 4) boxes x1y1x2y2.
    """
    corners = torch.stack((points - distances[..., :2], points + distances[..., 2:]), dim=-2)
    if max_shape is not None:
        corners = clamp_to_image(corners, max_shape)
    return corners.flatten(-2)


def rays_to_polygons(
    points: Tensor,
    rays: Tensor,
    max_shape: tuple[int, int] | None = None,
    convention: str = 'current',
) -> Tensor:
    """Decode ray lengths around points into polygons.

    Args:
        points: (P, 2) ray origins (x, y) in pixels.
        rays: (..., P, R) ray lengths in pixels (leading dimensions, e.g. images, broadcast).
        max_shape: (H, W); when given, x is clamped to [0, W - 1] and y to [0, H - 1].
        convention: 'current' or 'legacy' angle convention.

    Returns:
        Tensor: (..., P, R, 2) polygon vertices (x, y), vertex k on ray k.
    """
    directions = ray_directions(rays.shape[-1], convention, device=rays.device, dtype=rays.dtype)
    polygons = points[:, None, :].to(rays.dtype) + rays[..., None] * directions
    if max_shape is not None:
        polygons = clamp_to_image(polygons, max_shape)
    return polygons


def polygons_to_bboxes(polygons: Tensor) -> Tensor:
    """Tight boxes of polygons: (P, R, 2) -> (P, 4) as (x1, y1, x2, y2)."""
    return torch.cat((polygons.amin(dim=1), polygons.amax(dim=1)), dim=-1)


def legacy_rays_to_current(tensor: Tensor) -> Tensor:
    """Reorder ray channels (dim 0, R of them) from the legacy to the current angles.

    Legacy ray k points at ``k*360/R`` degrees from -x towards +y; current ray j at ``j*360/R``
    degrees from +y towards +x, so current ray j is legacy ray ``j + R/4``.

    Raises:
        ValueError: R is not a multiple of 4 (a quarter turn is not a whole number of rays).
    """
    num_rays = tensor.size(0)
    if num_rays % 4:
        raise ValueError(
            f'cannot roll {num_rays} legacy rays by a quarter turn ({num_rays} is not a multiple '
            f'of 4): convert with convention "current" and decode with angle_convention="legacy"'
        )
    return torch.roll(tensor, shifts=-(num_rays // 4), dims=0)


# --- Target side ---------------------------------------------------------------------------------

RAY_SEARCH_OFFSETS = (0, 1, -1, 2, -2, 3, -3)
"""Integer-degree bins tried for the ray at angle a, in priority order: a, a+1, a-1, ..., a-3."""

MISSING_RAY = 1e-6
"""Ray target when no contour point falls within +-3 degrees of the ray."""

_DEGREE_BINS = 361  # integer degrees 0..360; 360 only arises from rounding a tiny negative angle


def _shoelace_center(vertices: np.ndarray) -> np.ndarray:
    """The original's ``get_centerpoint``: shoelace centroid, each coordinate ``int()``-truncated.

    The sums run in float64 in vertex order (``np.cumsum`` is sequential), term by term as the
    original's Python loop, so the truncation sees the same rounding. A zero-area polygon falls
    back to the truncated mean of the vertices.

    Args:
        vertices: (K, 2) int32 contour points (x, y).

    Returns:
        np.ndarray: (2,) float32 centre (x, y), integral values.
    """
    current = vertices.astype(np.int64)
    previous = np.concatenate((current[-1:], current[:-1]))  # vertex i - 1, the last for i = 0
    signed = (current[:, 0] * previous[:, 1] - current[:, 1] * previous[:, 0]) / 2.0  # (K,)
    area = np.cumsum(signed)[-1]
    if area == 0:
        mean_x, mean_y = vertices.mean(axis=0)
        return np.array([int(mean_x), int(mean_y)], dtype=np.float32)
    center_x, center_y = np.cumsum(signed[:, None] * (current + previous) / 3.0, axis=0)[-1] / area
    return np.array([int(center_x), int(center_y)], dtype=np.float32)


def mask_contour(
    mask: np.ndarray, bbox: np.ndarray | Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Largest contour of a binary mask and its mass centre, as the original computes them.

    ``cv2.findContours(mask, RETR_TREE, CHAIN_APPROX_NONE)``; the contour with the largest
    ``cv2.contourArea`` wins (the first one among equal areas, as the original's stable sort
    keeps). Multi-part masks keep their biggest part; holes never win over their outer border.
    The centre is the shoelace centroid of that contour's vertices with each coordinate
    truncated by ``int()``, or the truncated mean of the vertices when the polygon has zero
    area (``docs/original_polarmask.md#mass-centre-and-contour``).

    Args:
        mask: (H, W) mask, non-zero inside (uint8 or bool), in pixels of the network input.
        bbox: optional (4,) x1, y1, x2, y2 where the mask probably lies. When the mask has no
            pixel outside it (plus a 2-pixel margin), the contours are traced on that window
            only (the same contours, about 3x faster on a 1280 x 768 image); otherwise, and
            without a box, on the whole mask.

    Returns:
        tuple | None: ``(contour, center)`` with contour (K, 2) float32 points (x, y) in pixels
        and center (2,) float32 (x, y), or None when the mask is empty (the original raised an
        IndexError there).
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f'mask_contour expects one (H, W) mask, got shape {mask.shape}')
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    window, offset = mask, (0, 0)
    if bbox is not None:
        height, width = mask.shape
        x1, y1, x2, y2 = (float(v) for v in bbox)
        left, top = max(math.floor(x1) - 2, 0), max(math.floor(y1) - 2, 0)
        right, bottom = min(math.ceil(x2) + 3, width), min(math.ceil(y2) + 3, height)
        crop = mask[top:bottom, left:right]
        if right > left and bottom > top and cv2.countNonZero(crop) == cv2.countNonZero(mask):
            # A ring of zeros around the window, as OpenCV assumes outside the image.
            window = cv2.copyMakeBorder(crop, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
            offset = (left - 1, top - 1)
    contours, _ = cv2.findContours(window, cv2.RETR_TREE, cv2.CHAIN_APPROX_NONE, offset=offset)
    if not contours:
        return None
    largest = max(contours, key=cv2.contourArea)[:, 0, :]  # (K, 2) int32
    return largest.astype(np.float32), _shoelace_center(largest)


def _degree_bins(delta_x: Tensor, delta_y: Tensor) -> Tensor:
    """Integer degrees of ``atan2(dx, dy)`` in [0, 360], the original's float32 arithmetic.

    The original computes ``torch.atan2(dx, dy) * 180 / np.pi`` in float32, adds 360 to negative
    angles and truncates with ``.int()``. torch's float32 ``atan2`` is not one function: its
    SIMD path (SLEEF), its scalar path (libm ``atan2f``, used for the tail of every vector) and
    CUDA round differently, so even a per-point loop would bin a few offsets differently
    depending on where they sit in memory. We pin ``atan2`` to the correctly rounded float32
    value (computed in float64, then rounded) and keep the rest of the float32 chain. Over all
    integer offsets within +-1280 x +-768 pixels this gives libm's bins except on 7 offsets,
    and torch's AVX2 SIMD bins except on the exact diagonal dx = dy > 0 (45 where SIMD gives 44;
    45 degrees is a ray only when R is 24 or 72); measured with glibc 2.36 and torch 2.14.
    The division is by a device tensor, not a Python scalar: CUDA turns division by a scalar into
    a multiplication by its reciprocal, which rounds differently.

    Args:
        delta_x: (M,) float32 x offsets of contour points from the ray origin, in pixels.
        delta_y: (M,) float32 y offsets.

    Returns:
        Tensor: (M,) int64 degrees, 0 = +y (down), 90 = +x (right).
    """
    radians = torch.atan2(delta_x.double(), delta_y.double()).float()
    degrees = radians * 180 / radians.new_tensor(math.pi)
    degrees = torch.where(degrees < 0, degrees + 360, degrees)
    return degrees.long()


def ray_targets_packed(
    points: Tensor,
    contours: Tensor,
    contour_lengths: Tensor,
    contour_index: Tensor,
    num_rays: int = 36,
    fill_missing: bool = False,
) -> Tensor:
    """Ray targets of many points against many contours at once.

    As the original (``docs/original_polarmask.md#ray-targets``).

    For each point, every point of its contour is binned by integer degree
    (:func:`_degree_bins`) with distance ``sqrt(dx**2 + dy**2)`` (float32); the farthest point
    per bin is kept (a scatter-max into 361 bins per point; float32 ``sqrt`` is monotonic, so
    it is taken after the max, on the chosen bins only). Ray k at angle a = k * 360 / R takes
    the first non-empty bin among a, a+1, a-1, a+2, a-2, a+3, a-3 (no wrap-around at 0/360), else
    :data:`MISSING_RAY`. A point on its contour contributes distance 0 at angle 0.

    Args:
        points: (P, 2) float32 ray origins (x, y) in pixels.
        contours: (K, 2) contour points (x, y) of all contours, concatenated.
        contour_lengths: (G,) number of points of each contour in ``contours``.
        contour_index: (P,) index in 0..G-1 of the contour each point's rays hit.
        num_rays: rays R; must divide 360.
        fill_missing: a ray that no bin answers takes its exact crossing with the contour
            (:func:`contour_crossings`) instead of :data:`MISSING_RAY` (which stays where the
            ray crosses nothing). Not the original: there, rays of points within a few pixels
            of their contour (most rays of the positives of objects under ~16 px) are 1e-6,
            which also drives their polar-centerness target, and so their loss weight, to ~0.

    Returns:
        Tensor: (P, R) float32 ray lengths in pixels, on the device of ``points``.
    """
    step = ray_step(num_rays)
    device = points.device
    num_points = points.shape[0]
    points_xy = points.float().T.contiguous()  # (2, P)
    contours_xy = contours.to(device=device, dtype=torch.float32).T.contiguous()  # (2, K)
    pair_point, pair_contour = _contour_pairs(contour_lengths, contour_index, device)
    pair_xy = contours_xy.index_select(1, pair_contour) - points_xy.index_select(1, pair_point)
    delta_x, delta_y = pair_xy  # (M,) each
    squared = delta_x * delta_x + delta_y * delta_y  # sqrt is monotonic: taken after the max
    bins = _degree_bins(delta_x, delta_y)

    # Farthest contour point per (point, integer degree); an extra last column stays empty (-1).
    width = _DEGREE_BINS + 1
    farthest = points_xy.new_full((num_points, width), -1.0)
    farthest.view(-1).scatter_reduce_(0, pair_point * width + bins, squared, reduce='amax')
    candidates = [
        a + o if 0 <= a + o < _DEGREE_BINS else _DEGREE_BINS
        for o in RAY_SEARCH_OFFSETS
        for a in range(0, 360, step)
    ]
    tries = len(RAY_SEARCH_OFFSETS)
    found = farthest.index_select(1, torch.tensor(candidates, device=device))
    found = found.view(num_points, tries, num_rays)  # (P, 7, R) in search order
    # The first bin hit has the highest priority (7 for a, 6 for a+1, ...; 0 when none is hit);
    # amax over dim 1 then the matching index, as argmax over that dim is slow on the CPU.
    priority = torch.arange(tries, 0, -1, device=device)[:, None]  # (7, 1)
    best = ((found >= 0) * priority).amax(dim=1, keepdim=True)  # (P, 1, R)
    first_hit = (tries - best).clamp(max=tries - 1)
    rays = found.gather(1, first_hit).squeeze(1)  # (P, R) squared, -1 where no bin was hit
    rays = torch.where(rays >= 0, rays.clamp(min=0).sqrt(), -1.0)
    if fill_missing:
        rows = (rays < 0).any(dim=1).nonzero().squeeze(1)
        crossings = contour_crossings(
            points.index_select(0, rows),
            contours,
            contour_lengths,
            contour_index.to(device).index_select(0, rows),
            num_rays,
        )
        binned = rays[rows]
        rays[rows] = torch.where(binned >= 0, binned, crossings)
    return torch.where(rays >= 0, rays, MISSING_RAY)


def contour_crossings(
    points: Tensor,
    contours: Tensor,
    contour_lengths: Tensor,
    contour_index: Tensor,
    num_rays: int = 36,
) -> Tensor:
    """Where each exact ray of each point leaves its contour: the farthest crossing.

    The contour is the closed polyline through its points (pixel centres, in order, the last
    joined to the first). Ray k of a point (angle ``k * 360 / R``, 'current' convention) crosses
    a segment when its angle lies within the angle the segment spans as seen from the point;
    the crossing's distance is exact (float64); segments through the point itself are skipped
    (from a point on its contour, rays that leave the shape there cross nothing). This is what
    :func:`ray_targets_packed` approximates by the farthest contour point within +-3 degrees,
    and it has an answer for every ray of a point inside the contour, also where the contour
    is so close that its points are more than 7 degrees apart (rays the binning misses).

    Args:
        points: (P, 2) ray origins (x, y) in pixels.
        contours: (K, 2) contour points (x, y) of all contours, concatenated.
        contour_lengths: (G,) number of points of each contour in ``contours``.
        contour_index: (P,) index in 0..G-1 of the contour each point's rays hit.
        num_rays: rays R; must divide 360.

    Returns:
        Tensor: (P, R) float32 distances in pixels, -1 where a ray crosses no segment (a point
        outside its contour, looking away from it), on the device of ``points``.
    """
    ray_step(num_rays)
    device = points.device
    index = contour_index.to(device=device, dtype=torch.long)
    lengths = contour_lengths.to(device=device, dtype=torch.long)
    pair_point, pair_start = _contour_pairs(lengths, index, device)
    # Each contour point's segment runs to the next point; the last point's to the first.
    pair_length = lengths.index_select(0, index).index_select(0, pair_point)
    pair_last = (torch.cumsum(lengths, 0) - 1).index_select(0, index).index_select(0, pair_point)
    pair_end = torch.where(pair_start == pair_last, pair_start - pair_length + 1, pair_start + 1)
    contours = contours.to(device=device, dtype=torch.float64)
    origins = points.to(torch.float64).index_select(0, pair_point)
    start = contours.index_select(0, pair_start) - origins  # (M, 2) segment ends from the point
    end = contours.index_select(0, pair_end) - origins
    # Angles in units of rays, 0 = +y, increasing towards +x (atan2(dx, dy)).
    turn = num_rays / (2 * math.pi)
    start_angle = torch.atan2(start[:, 0], start[:, 1]) * turn
    sweep = torch.remainder(torch.atan2(end[:, 0], end[:, 1]) * turn - start_angle, num_rays)
    sweep = torch.where(sweep > num_rays / 2, sweep - num_rays, sweep)  # signed, short way round
    low = torch.minimum(start_angle, start_angle + sweep)
    first_ray = torch.ceil(low).long()
    spans = (torch.floor(low + sweep.abs()).long() - first_ray + 1).clamp(min=0)
    # A segment through the point itself (the point on its contour) spans no defined angle.
    cross = start[:, 0] * end[:, 1] - start[:, 1] * end[:, 0]
    through_point = (cross.abs() < 1e-9) & ((start * end).sum(dim=1) <= 0)
    spans = torch.where(through_point, 0, spans)

    # One row per (segment, ray within its span).
    segment = torch.repeat_interleave(torch.arange(spans.numel(), device=device), spans)
    offsets = torch.arange(segment.numel(), device=device)
    offsets -= (torch.cumsum(spans, 0) - spans).index_select(0, segment)
    ray = torch.remainder(first_ray.index_select(0, segment) + offsets, num_rays)
    theta = ray.to(torch.float64) * (2 * math.pi / num_rays)
    direction = torch.stack((torch.sin(theta), torch.cos(theta)), dim=1)  # (S, 2)
    a, edge = start.index_select(0, segment), (end - start).index_select(0, segment)
    # origin + t * direction = a + s * edge  =>  t = cross(a, edge) / cross(direction, edge).
    denominator = direction[:, 0] * edge[:, 1] - direction[:, 1] * edge[:, 0]
    numerator = a[:, 0] * edge[:, 1] - a[:, 1] * edge[:, 0]
    parallel = denominator.abs() < 1e-12  # the ray runs along the segment: its far end
    far_end = torch.maximum(a.norm(dim=1), (a + edge).norm(dim=1))
    distance = torch.where(parallel, far_end, numerator / torch.where(parallel, 1.0, denominator))

    crossings = torch.full((points.shape[0] * num_rays,), -1.0, dtype=torch.float64, device=device)
    key = pair_point.index_select(0, segment) * num_rays + ray
    crossings.scatter_reduce_(0, key, distance.clamp(min=0), reduce='amax')
    return crossings.view(-1, num_rays).float()


def _contour_pairs(
    contour_lengths: Tensor, contour_index: Tensor, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Pair every point with each point of its contour.

    Args:
        contour_lengths: (G,) number of points of each contour, contours concatenated.
        contour_index: (P,) the contour of each point.

    Returns:
        tuple: (M,) indices, M = sum of the P points' contour lengths: the point, and its
        contour point in the concatenated contours.
    """
    lengths = contour_lengths.to(device=device, dtype=torch.long)
    index = contour_index.to(device=device, dtype=torch.long)
    counts = lengths.index_select(0, index)  # (P,)
    pair_point = torch.repeat_interleave(torch.arange(index.numel(), device=device), counts)
    shifts = (torch.cumsum(lengths, 0) - lengths).index_select(0, index)
    shifts -= torch.cumsum(counts, 0) - counts  # first contour index minus first pair index
    pair_contour = torch.arange(pair_point.numel(), device=device)
    pair_contour += shifts.index_select(0, pair_point)
    return pair_point, pair_contour


def ray_targets(
    points: Tensor, contour: Tensor | np.ndarray, num_rays: int = 36, fill_missing: bool = False
) -> Tensor:
    """Ray targets of points against one contour; see :func:`ray_targets_packed`.

    Args:
        points: (P, 2) float32 ray origins (x, y) in pixels.
        contour: (K, 2) contour points (x, y) in pixels.
        num_rays: rays R; must divide 360.
        fill_missing: see :func:`ray_targets_packed`.

    Returns:
        Tensor: (P, R) float32 ray lengths in pixels, on the device of ``points``.
    """
    contour = torch.as_tensor(contour, dtype=torch.float32, device=points.device).reshape(-1, 2)
    lengths = torch.tensor([contour.shape[0]], device=points.device)
    index = torch.zeros(points.shape[0], dtype=torch.long, device=points.device)
    return ray_targets_packed(points, contour, lengths, index, num_rays, fill_missing)


def polar_centerness(rays: Tensor) -> Tensor:
    """Polar centerness target ``sqrt(min / max)`` over the rays of each point.

    As the original (``docs/original_polarmask.md#losses``).

    Args:
        rays: (P, R) ray targets of positive points (all > 0 except a possible 0 at angle 0).

    Returns:
        Tensor: (P,) centerness in [0, 1].
    """
    return torch.sqrt(rays.amin(dim=-1) / rays.amax(dim=-1))
