"""Point assignment and polar targets of PolarMask, vectorised over a batch.

Naming convention for shapes: N images, P points (all levels), L levels, G ground-truth
instances, R rays, K contour points, A candidate cells per side.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.structures import InstanceData
from torch import Tensor

from polarmask.registry import TASK_UTILS
from polarmask.structures.polar import (
    featmap_sizes_for,
    level_points,
    mask_contour,
    ray_step,
    ray_targets_packed,
)


@functools.lru_cache(maxsize=8)
def _grid_points(
    featmap_sizes: tuple[tuple[int, int], ...], strides: tuple[int, ...], device: torch.device
) -> Tensor:
    """(P, 2) points (x, y) of all levels, levels concatenated in order; cached (read-only)."""
    return torch.cat(
        [
            level_points(size, stride, device=device)
            for size, stride in zip(featmap_sizes, strides, strict=True)
        ]
    )


@TASK_UTILS.register_module()
class PolarTarget:
    """Labels, box targets and ray targets of the points of an FPN, as the original makes them.

    ``docs/original_polarmask.md#positive-assignment`` and
    ``docs/original_polarmask.md#ray-targets``.
    A point of level l (stride s) is a positive of gt g when

    * it lies strictly inside the centre-sampling region, the square of half-side
      ``center_sample_radius * s`` around g's mask centre, clipped to g's box;
    * ``max(l, t, r, b)`` to g's box lies in the level's regress range (inclusive);

    among several such gts it takes the one of smallest box area ``(x2-x1+1)(y2-y1+1)``, the
    first one among equal areas. Its ray targets are measured from the point itself to g's
    contour (:func:`~polarmask.structures.polar.ray_targets_packed`).

    Only points within the sampling square can be positive, so the assignment looks at
    ``A x A`` grid cells around each centre per level (A = ceil(2 * radius) + 4) instead of all
    points x all gts; the arithmetic on those cells is the original's float32 arithmetic, so the
    result is the same. Rays of all positives of a batch are computed at once, on the model's
    device.

    Differences from the original, all bug fixes: instances without a contour are dropped (by
    ``PolarContours`` in the pipeline, by :meth:`get_targets_single` here) instead of raising an
    IndexError; an image whose first instance has its centre at x = 0 keeps its positives (the
    original's "no gt" test returned none); box targets of negatives are 0 instead of those of
    gt 0. The background label is ``num_classes`` (mmdet 3.x).

    Args:
        strides: stride of each FPN level in input pixels.
        regress_ranges: per level (lo, hi) range of max(l, t, r, b), inclusive, in pixels.
        center_sample_radius: half-side of the sampling square, in strides.
        num_rays: rays R per positive; must divide 360.
        fill_missing_rays: rays that find no contour point within +-3 degrees take their exact
            crossing with the contour instead of 1e-6 (see
            :func:`~polarmask.structures.polar.ray_targets_packed`). Off by default, as the
            original; on, small objects' positives get real ray targets and polar-centerness
            targets.
    """

    def __init__(
        self,
        strides: Sequence[int],
        regress_ranges: Sequence[tuple[float, float]],
        center_sample_radius: float = 1.5,
        num_rays: int = 36,
        fill_missing_rays: bool = False,
    ) -> None:
        if len(strides) != len(regress_ranges):
            raise ValueError(
                f'PolarTarget: {len(strides)} strides but {len(regress_ranges)} regress ranges; '
                'give one (lo, hi) range per level'
            )
        ray_step(num_rays)
        self.strides = [int(s) for s in strides]
        self.regress_ranges = [(float(lo), float(hi)) for lo, hi in regress_ranges]
        self.center_sample_radius = float(center_sample_radius)
        self.num_rays = num_rays
        self.fill_missing_rays = fill_missing_rays

    @torch.no_grad()
    def get_targets(
        self,
        featmap_sizes: Sequence[tuple[int, int]],
        batch_gt_instances: list[InstanceData],
        num_classes: int,
        device: torch.device | str = 'cpu',
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Targets of a batch.

        Args:
            featmap_sizes: (H_l, W_l) of each level's feature map, in level order; the points
                are those of :func:`~polarmask.structures.polar.level_points` on them.
            batch_gt_instances: per image, ``bboxes`` (G, 4) x1, y1, x2, y2 (inclusive pixels),
                ``labels`` (G,) in 0..C-1, ``contours`` list of G (K_g, 2) float32 (x, y) with
                K_g >= 1, ``centers`` (G, 2) float32 (x, y) mask centres (see
                :func:`~polarmask.structures.polar.mask_contour`). Any device.
            num_classes: C; the background label.
            device: where the targets are computed and returned (the model's device).

        Returns:
            tuple: ``labels`` (N, P) int64, C for negatives; ``bbox_targets`` (N, P, 4) float32
            l, t, r, b in pixels, 0 for negatives; ``ray_targets`` (N, P, R) float32 in pixels,
            0 for negatives. P = sum of H_l * W_l, levels concatenated in order.
        """
        points, grids, gts = self._pack_batch(featmap_sizes, batch_gt_instances, device)
        return self._targets(points, grids, gts, len(batch_gt_instances), num_classes)

    @torch.no_grad()
    def positives(
        self,
        featmap_sizes: Sequence[tuple[int, int]],
        batch_gt_instances: list[InstanceData],
        device: torch.device | str = 'cpu',
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Which points are positives of which instance, as :meth:`get_targets` assigns them.

        Args:
            featmap_sizes, batch_gt_instances, device: as for :meth:`get_targets`.

        Returns:
            tuple: ``images`` (Q,) int64 image index and ``points`` (Q,) int64 point index in
            0..P-1 of each positive, ``instances`` (Q,) int64 index of its instance within
            its image's ``batch_gt_instances``; Q positives in no particular order.
        """
        points, grids, gts = self._pack_batch(featmap_sizes, batch_gt_instances, device)
        num_points = points.shape[0]
        if gts['bboxes'].shape[0] == 0:
            empty = torch.zeros(0, dtype=torch.long, device=points.device)
            return empty, empty, empty
        keys, pos_gts, _ = self._assign(points, grids, gts, len(batch_gt_instances))
        first_of_image = torch.cumsum(
            torch.bincount(gts['images'], minlength=len(batch_gt_instances)), 0
        )
        first_of_image = torch.cat((first_of_image.new_zeros(1), first_of_image[:-1]))
        images = torch.div(keys, num_points, rounding_mode='floor')
        return images, keys % num_points, pos_gts - first_of_image.index_select(0, images)

    def _pack_batch(
        self,
        featmap_sizes: Sequence[tuple[int, int]],
        batch_gt_instances: list[InstanceData],
        device: torch.device | str,
    ) -> tuple[Tensor, list[tuple[int, int]], dict[str, Tensor]]:
        """Points (P, 2), level sizes and the packed gts of a batch (see :meth:`_pack`)."""
        grids = self._check_featmap_sizes(featmap_sizes)
        points = _grid_points(tuple(grids), tuple(self.strides), torch.device(device))  # (P, 2)
        bboxes: list[Tensor] = []
        labels: list[Tensor] = []
        centers: list[Tensor] = []
        images: list[Tensor] = []
        contours: list[Tensor] = []
        for image, instances in enumerate(batch_gt_instances):
            num_gts = instances.bboxes.shape[0]
            if not len(instances.contours) == num_gts == instances.centers.shape[0]:
                raise ValueError(
                    f'PolarTarget: image {image} has {num_gts} boxes, '
                    f'{len(instances.contours)} contours and {instances.centers.shape[0]} '
                    'centres; gt_instances need one of each per instance (PolarContours)'
                )
            bboxes.append(instances.bboxes.reshape(-1, 4))
            labels.append(instances.labels.reshape(-1))
            centers.append(instances.centers.reshape(-1, 2))
            images.append(torch.full((num_gts,), image, dtype=torch.long))
            contours.extend(instances.contours)
        gts = self._pack(bboxes, labels, centers, images, contours, points.device)
        return points, grids, gts

    @torch.no_grad()
    def get_targets_single(
        self,
        gt_masks: np.ndarray,
        gt_bboxes: np.ndarray | Tensor,
        gt_labels: np.ndarray | Tensor,
        pad_shape: tuple[int, int],
        num_classes: int,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Targets of one image from its masks, contours included (the original's data path).

        Contours and centres come from :func:`~polarmask.structures.polar.mask_contour` (traced
        in the box when the whole mask lies there); instances whose mask has no contour are
        dropped and counted in the log. Points are those of ``featmap_sizes_for(pad_shape,
        strides)``. The same computation as :meth:`get_targets`, so the same targets.

        Args:
            gt_masks: (G, H, W) uint8 masks of the padded network input.
            gt_bboxes: (G, 4) x1, y1, x2, y2 in inclusive pixels.
            gt_labels: (G,) labels in 0..C-1.
            pad_shape: (H, W) of the padded input.
            num_classes: C; the background label.

        Returns:
            tuple: ``labels`` (P,) int64, ``bbox_targets`` (P, 4) float32, ``ray_targets``
            (P, R) float32, on the CPU.
        """
        gt_bboxes = torch.as_tensor(gt_bboxes, dtype=torch.float32).reshape(-1, 4)
        gt_labels = torch.as_tensor(gt_labels, dtype=torch.long).reshape(-1)
        if not len(gt_masks) == gt_bboxes.shape[0] == gt_labels.shape[0]:
            raise ValueError(
                f'PolarTarget.get_targets_single: {len(gt_masks)} masks, {gt_bboxes.shape[0]} '
                f'boxes and {gt_labels.shape[0]} labels; give one of each per instance'
            )
        keep: list[int] = []
        contours: list[Tensor] = []
        centers: list[np.ndarray] = []
        for index, (mask, bbox) in enumerate(zip(gt_masks, gt_bboxes.tolist(), strict=True)):
            found = mask_contour(mask, bbox)
            if found is not None:
                keep.append(index)
                contours.append(torch.from_numpy(found[0]))
                centers.append(found[1])
        if len(keep) < len(gt_masks):
            print_log(
                f'PolarTarget: dropped {len(gt_masks) - len(keep)} of {len(gt_masks)} instances '
                'whose mask has no contour',
                logger='current',
                level=logging.WARNING,
            )
        kept = torch.tensor(keep, dtype=torch.long)
        gts = self._pack(
            bboxes=[gt_bboxes[kept]],
            labels=[gt_labels[kept]],
            centers=[torch.from_numpy(np.array(centers, dtype=np.float32).reshape(-1, 2))],
            images=[torch.zeros(len(keep), dtype=torch.long)],
            contours=contours,
            device=torch.device('cpu'),
        )
        grids = featmap_sizes_for(pad_shape, self.strides)
        points = _grid_points(tuple(grids), tuple(self.strides), torch.device('cpu'))
        labels, bbox_targets, ray_targets = self._targets(points, grids, gts, 1, num_classes)
        return labels[0], bbox_targets[0], ray_targets[0]

    def _targets(
        self,
        points: Tensor,
        grids: list[tuple[int, int]],
        gts: dict[str, Tensor],
        num_imgs: int,
        num_classes: int,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The targets of :meth:`get_targets` from points (P, 2), level sizes and packed gts."""
        device, num_points = points.device, points.shape[0]
        labels = torch.full((num_imgs * num_points,), num_classes, dtype=torch.long, device=device)
        bbox_targets = points.new_zeros(num_imgs * num_points, 4)
        ray_targets = points.new_zeros(num_imgs * num_points, self.num_rays)
        if gts['bboxes'].shape[0] > 0:
            pos_keys, pos_gts, pos_bbox_targets = self._assign(points, grids, gts, num_imgs)
            labels[pos_keys] = gts['labels'].index_select(0, pos_gts)
            bbox_targets[pos_keys] = pos_bbox_targets
            ray_targets[pos_keys] = ray_targets_packed(
                points.index_select(0, pos_keys % num_points),
                gts['contours'],
                gts['contour_lengths'],
                pos_gts,
                self.num_rays,
                self.fill_missing_rays,
            )
        return (
            labels.view(num_imgs, num_points),
            bbox_targets.view(num_imgs, num_points, 4),
            ray_targets.view(num_imgs, num_points, self.num_rays),
        )

    @staticmethod
    def _pack(
        bboxes: list[Tensor],
        labels: list[Tensor],
        centers: list[Tensor],
        images: list[Tensor],
        contours: list[Tensor],
        device: torch.device,
    ) -> dict[str, Tensor]:
        """Concatenate the gts of all images on ``device``; contours packed as (K, 2)."""
        contours = [torch.as_tensor(c).reshape(-1, 2) for c in contours]
        lengths = torch.tensor([c.shape[0] for c in contours], dtype=torch.long)
        if (lengths == 0).any():
            raise ValueError(
                'PolarTarget: an instance has an empty contour; drop instances whose mask has '
                'no contour before the targets (PolarContours does)'
            )
        packed = torch.cat(contours) if contours else torch.zeros(0, 2)
        return dict(
            bboxes=torch.cat(bboxes).to(device=device, dtype=torch.float32),
            labels=torch.cat(labels).to(device=device, dtype=torch.long),
            centers=torch.cat(centers).to(device=device, dtype=torch.float32),
            images=torch.cat(images).to(device),
            contours=packed.to(device=device, dtype=torch.float32),
            contour_lengths=lengths.to(device),
        )

    def _check_featmap_sizes(
        self, featmap_sizes: Sequence[tuple[int, int]]
    ) -> list[tuple[int, int]]:
        """``featmap_sizes`` as a list of (H_l, W_l) int pairs, one per stride."""
        if len(featmap_sizes) != len(self.strides):
            raise ValueError(
                f'PolarTarget: {len(featmap_sizes)} feature-map sizes for {len(self.strides)} '
                'strides; give the (H, W) of every level'
            )
        return [(int(height), int(width)) for height, width in featmap_sizes]

    def _assign(
        self, points: Tensor, grids: list[tuple[int, int]], gts: dict[str, Tensor], num_imgs: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Positives of the batch, from the A x A cells around each centre on each level.

        Returns:
            tuple: ``keys`` (Q,) image * P + point index of each positive, ``gts`` (Q,) index of
            its gt in the batch, ``bbox_targets`` (Q, 4) float32 l, t, r, b.
        """
        device, num_points = points.device, points.shape[0]
        starts = np.cumsum([0] + [h * w for h, w in grids])[:-1].tolist()
        levels = torch.tensor(
            [(h, w, start) for (h, w), start in zip(grids, starts, strict=True)], device=device
        )
        heights, widths, starts = levels.T[..., None, None]  # (L, 1, 1) each
        constants = torch.tensor(
            [
                (s, s // 2, s * self.center_sample_radius, lo, hi)
                for s, (lo, hi) in zip(self.strides, self.regress_ranges, strict=True)
            ],
            dtype=torch.float32,
            device=device,
        )
        strides, offsets, reaches, lows, highs = constants.T[..., None]  # (L, 1) each

        bboxes, centers = gts['bboxes'], gts['centers']
        span = math.ceil(2 * self.center_sample_radius) + 4
        # Candidate cells, from one cell before the sampling square on, A per side.
        first_cell = torch.floor((centers[:, None] - reaches - offsets) / strides).long() - 1
        cells = first_cell[..., None] + torch.arange(span, device=device)  # (G, L, 2, A)
        cols, rows = cells[:, :, 0, None, :], cells[:, :, 1, :, None]  # (G,L,1,A), (G,L,A,1)
        on_grid = (cols >= 0) & (cols < widths) & (rows >= 0) & (rows < heights)  # (G, L, A, A)
        index = (
            starts
            + torch.clamp(rows, min=torch.zeros_like(heights), max=heights - 1) * widths
            + torch.clamp(cols, min=torch.zeros_like(widths), max=widths - 1)
        )  # (G, L, A, A) point index
        xy = points.index_select(0, index.view(-1)).view(*index.shape, 2)

        # The original's float32 arithmetic: the square around the centre clipped to the box.
        box_lo = bboxes[:, None, None, None, :2]  # (G, 1, 1, 1, 2) x1, y1
        box_hi = bboxes[:, None, None, None, 2:]
        square_lo = (centers[:, None] - reaches)[:, :, None, None]  # (G, L, 1, 1, 2)
        square_hi = (centers[:, None] + reaches)[:, :, None, None]
        region_lo = torch.where(square_lo > box_lo, square_lo, box_lo)
        region_hi = torch.where(square_hi > box_hi, box_hi, square_hi)
        inside = ((xy - region_lo > 0) & (region_hi - xy > 0)).all(dim=-1)
        distances = torch.cat((xy - box_lo, box_hi - xy), dim=-1)  # (G, L, A, A, 4) l, t, r, b
        max_distance = distances.amax(dim=-1)
        in_range = (max_distance >= lows[..., None]) & (max_distance <= highs[..., None])
        candidate = on_grid & inside & in_range  # (G, L, A, A)

        # Per point, the smallest box area wins; among equal areas the first gt (the original's
        # argmin). Candidates as flat indices into the (G, L, A, A) cells.
        flat = candidate.view(-1).nonzero().squeeze(1)  # (Q',)
        cand_gts = torch.div(flat, candidate[0].numel(), rounding_mode='floor')
        cand_keys = gts['images'].index_select(0, cand_gts) * num_points
        cand_keys += index.view(-1).index_select(0, flat)
        areas = (bboxes[:, 2] - bboxes[:, 0] + 1) * (bboxes[:, 3] - bboxes[:, 1] + 1)  # (G,)
        cand_areas = areas.index_select(0, cand_gts)
        min_areas = areas.new_full((num_imgs * num_points,), math.inf)
        min_areas.scatter_reduce_(0, cand_keys, cand_areas, reduce='amin')
        smallest = (cand_areas == min_areas.index_select(0, cand_keys)).nonzero().squeeze(1)
        first_gts = torch.full((num_imgs * num_points,), bboxes.shape[0], device=device)
        first_gts.scatter_reduce_(
            0, cand_keys.index_select(0, smallest), cand_gts.index_select(0, smallest), 'amin'
        )
        wins = (first_gts.index_select(0, cand_keys) == cand_gts).nonzero().squeeze(1)
        pos_bbox_targets = distances.view(-1, 4).index_select(0, flat.index_select(0, wins))
        return cand_keys.index_select(0, wins), cand_gts.index_select(0, wins), pos_bbox_targets
