"""The polar codec: the one home of PolarMask's geometric conventions.

Naming convention for shapes: N images, P points, G ground-truth instances, R rays,
K contour points, H x W an image or mask size in pixels.

Conventions kept from the original PolarMask (``../shared/REFERENCE.md`` §0, §2.2, §3, §5):

* Points: on an FPN level of stride ``s`` the cell (i, j) sits at (x, y) = (j*s + s//2, i*s + s//2)
  in pixels of the network input; points are flattened row-major (y outer, x inner).
* Angles ('current', the default): ray k points at ``k * 360 / R`` degrees where 0 degrees points
  down (+y) and 90 degrees points right (+x); a ray of length d from (cx, cy) ends at
  ``x = cx + d*sin(t), y = cy + d*cos(t)``. This matches the targets' ``atan2(dx, dy)``.
* Angles ('legacy', the released checkpoints of 2019-10): 0 degrees points left (-x), 90 down;
  ``x = cx - d*cos(t), y = cy + d*sin(t)``.
* Polygons are rasterised by truncating the points to integers and filling them with OpenCV.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch import Tensor

ANGLE_CONVENTIONS = ('current', 'legacy')


def _check_convention(convention: str) -> None:
    if convention not in ANGLE_CONVENTIONS:
        raise ValueError(
            f'unknown angle convention {convention!r}: use one of {ANGLE_CONVENTIONS}'
        )


def angles(
    num_rays: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Ray angles in radians, ray k at ``k * 360 / num_rays`` degrees.

    Computed as degrees then ``* pi / 180`` in ``dtype``, the original's order of operations.

    Returns:
        Tensor: (R,) angles in radians.
    """
    if num_rays <= 0 or 360 % num_rays:
        raise ValueError(f'num_rays must divide 360 (got {num_rays})')
    degrees = torch.arange(num_rays, device=device, dtype=dtype) * (360 // num_rays)
    return degrees * math.pi / 180


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
    _check_convention(convention)
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


def rays_to_polygons(
    points: Tensor,
    rays: Tensor,
    max_shape: tuple[int, int] | None = None,
    convention: str = 'current',
) -> Tensor:
    """Decode ray lengths around points into polygons.

    Args:
        points: (P, 2) ray origins (x, y) in pixels.
        rays: (P, R) ray lengths in pixels.
        max_shape: (H, W); when given, x is clamped to [0, W - 1] and y to [0, H - 1].
        convention: 'current' or 'legacy' angle convention.

    Returns:
        Tensor: (P, R, 2) polygon vertices (x, y), vertex k on ray k.
    """
    directions = ray_directions(rays.shape[-1], convention, device=rays.device, dtype=rays.dtype)
    polygons = points[:, None, :].to(rays.dtype) + rays[..., None] * directions
    if max_shape is not None:
        height, width = max_shape
        polygons = torch.stack(
            (polygons[..., 0].clamp(0, width - 1), polygons[..., 1].clamp(0, height - 1)), dim=-1
        )
    return polygons


def polygons_to_bboxes(polygons: Tensor) -> Tensor:
    """Tight boxes of polygons: (P, R, 2) -> (P, 4) as (x1, y1, x2, y2)."""
    return torch.cat((polygons.amin(dim=1), polygons.amax(dim=1)), dim=-1)


def polygon_to_mask(polygon: np.ndarray | Tensor, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise one polygon the original's way: truncate vertices to int, fill with OpenCV.

    Args:
        polygon: (R, 2) vertices (x, y) in pixels of the target canvas.
        shape: (H, W) of the canvas.

    Returns:
        np.ndarray: (H, W) uint8 mask with 1 inside.
    """
    if isinstance(polygon, Tensor):
        polygon = polygon.detach().cpu().numpy()
    vertices = np.trunc(np.asarray(polygon, dtype=np.float64)).astype(np.int32).reshape(-1, 1, 2)
    canvas = np.zeros(shape, dtype=np.uint8)
    cv2.drawContours(canvas, [vertices], -1, 1, -1)
    return canvas


def polygons_to_masks(polygons: np.ndarray | Tensor, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise polygons: (P, R, 2) -> (P, H, W) uint8 masks (see :func:`polygon_to_mask`)."""
    if isinstance(polygons, Tensor):
        polygons = polygons.detach().cpu().numpy()
    masks = np.zeros((len(polygons), *shape), dtype=np.uint8)
    for index, polygon in enumerate(polygons):
        masks[index] = polygon_to_mask(polygon, shape)
    return masks
