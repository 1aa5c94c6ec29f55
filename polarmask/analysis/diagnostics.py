"""Where the AP goes: detection against localisation, per object size and pyramid level.

A trained model runs once over a split with its annotations (the test pipeline plus
``LoadAnnotations`` and ``PolarContours``); its dense outputs are kept, so post-processing
settings can be swept without running the model again. Per ground-truth instance it records:

* how the targets treat it: its positives (points assigned to it) per level and their summed
  polar-centerness targets, the weight its box and ray losses carry;
* the ceiling: the mask IoU of its ideal ray polygon (ray targets from its mass centre);
* the best mask IoU of any point inside its box (what the rays can do, whatever the score);
* whether a candidate of its class with IoU >= 0.5 survives ``nms_pre`` and ``score_thr``
  (recall before NMS), and the best IoU among the final detections of its class and of any
  class (recall and localisation after NMS).

Mask IoUs are computed in network-input pixels, polygons rasterised as the head's test config
says (vertices truncated as the original, or rounded with ``round_vertices``).
Naming convention for shapes: P points, C classes, R rays, G instances of one image.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner
from mmengine.structures import InstanceData
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import nn
from torch.utils.data import DataLoader

from polarmask.evaluation.functional import xyxy_to_coco_xywh
from polarmask.evaluation.ground_truth import load_ground_truth
from polarmask.structures import pred_instances_to_numpy
from polarmask.structures.mask import masks_to_rles, polygons_to_rles
from polarmask.structures.polar import (
    polar_centerness,
    polygons_to_bboxes,
    ray_targets,
    rays_to_polygons,
)

SIZE_BINS: tuple[tuple[str, float, float], ...] = (
    ('<16 px', 0, 16),
    ('16-32 px', 16, 32),
    ('32-64 px', 32, 64),
    ('>=64 px', 64, math.inf),
)
"""Instance size bins by sqrt(mask area) in network-input pixels."""


def diagnostic_pipeline(test_pipeline: Sequence[dict], resize: bool = True) -> list[dict]:
    """The test pipeline with the annotations and contours that the diagnostics need.

    ``LoadAnnotations`` (boxes and masks) follows the image loading and
    ``PolarContours(keep_masks=True)`` precedes the packing, so the packed ``gt_instances``
    carry ``masks``, ``contours`` and ``centers`` in network-input pixels. ``resize=False``
    drops the ``Resize`` steps: the ground truth at its own resolution (scale factor 1).
    """
    pipeline = [copy.deepcopy(dict(t)) for t in test_pipeline]
    if not resize:
        pipeline = [t for t in pipeline if t['type'] != 'Resize']
    types = [t['type'] for t in pipeline]
    if 'PackPolarInputs' not in types:
        raise ValueError(f'the test pipeline has no PackPolarInputs to pack with: {types}')
    pipeline = [t for t in pipeline if t['type'] not in ('LoadAnnotations', 'PolarContours')]
    pipeline.insert(1, dict(type='LoadAnnotations', with_bbox=True, with_mask=True))
    pack = [t['type'] for t in pipeline].index('PackPolarInputs')
    pipeline.insert(pack, dict(type='PolarContours', keep_masks=True))
    return pipeline


def diagnostic_dataloader(cfg: Config, split: str = 'test', resize: bool = True) -> DataLoader:
    """The config's test loader on a split, with :func:`diagnostic_pipeline`, in this process.

    Args:
        cfg: a detector config.
        split: 'test', or 'train' for the train dataset's images and annotations read the
            test way (no augmentation).
        resize: False: images and annotations at their own resolution (for the ceiling).
    """
    loader = copy.deepcopy(cfg.test_dataloader)
    loader.update(num_workers=0, persistent_workers=False)
    if split == 'train':
        train = cfg.train_dataloader.dataset
        for key in ('ann_file', 'data_prefix', 'data_root'):
            if key in train:
                loader.dataset[key] = copy.deepcopy(train[key])
    loader.dataset.pipeline = diagnostic_pipeline(cfg.test_dataloader.dataset.pipeline, resize)
    return Runner.build_dataloader(loader)


@dataclass
class ImageOutputs:
    """The dense outputs and the ground truth of one image.

    Attributes:
        dense: ``scores`` (P, C), ``centerness`` (P,), ``bboxes`` (P, 4), ``polygons``
            (P, R, 2), network-input pixels, on the CPU.
        featmap_sizes: (H_l, W_l) of each level.
        metainfo: the data sample's metainfo.
        gt: ``labels`` (G,), ``bboxes`` (G, 4), ``masks`` (G, H, W) uint8, ``contours``,
            ``centers`` (G, 2), network-input pixels.
        positives: (G, L) positives of each instance per level.
        loss_weight: (G,) summed polar-centerness targets of each instance's positives.
    """

    dense: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
    featmap_sizes: list[tuple[int, int]]
    metainfo: dict
    gt: InstanceData
    positives: np.ndarray
    loss_weight: np.ndarray

    @property
    def level_sizes(self) -> list[int]:
        """Points of each level."""
        return [h * w for h, w in self.featmap_sizes]


@torch.no_grad()
def collect(model: nn.Module, dataloader: Iterable) -> list[ImageOutputs]:
    """Run ``model`` (eval mode) over ``dataloader`` and keep what the diagnostics need.

    Args:
        model: a PolarMask detector.
        dataloader: batches of the :func:`diagnostic_pipeline`.

    Returns:
        list[ImageOutputs]: one per image, in loader order.
    """
    model.eval()
    head = model.bbox_head
    outputs: list[ImageOutputs] = []
    for batch in dataloader:
        data = model.data_preprocessor(batch, False)
        maps = head(model.extract_feat(data['inputs']))
        featmap_sizes = [tuple(m.shape[-2:]) for m in maps[0]]
        level_sizes = [h * w for h, w in featmap_sizes]
        dense = [d.cpu() for d in head.decode_by_feat(*maps)]
        samples = data['data_samples']
        gts = [sample.gt_instances.cpu() for sample in samples]
        images, points, instances = head.target_generator.positives(featmap_sizes, gts)
        _, _, rays = head.target_generator.get_targets(featmap_sizes, gts, head.num_classes)
        levels = torch.bucketize(points, torch.tensor(level_sizes).cumsum(0), right=True)
        weights = polar_centerness(rays[images, points])
        for index, (sample, gt) in enumerate(zip(samples, gts, strict=True)):
            mine = images == index
            num_gts = len(gt.labels)
            positives = np.zeros((num_gts, len(level_sizes)), dtype=np.int64)
            np.add.at(positives, (instances[mine].numpy(), levels[mine].numpy()), 1)
            loss_weight = np.zeros(num_gts)
            np.add.at(loss_weight, instances[mine].numpy(), weights[mine].numpy())
            outputs.append(
                ImageOutputs(
                    dense=tuple(d[index] for d in dense),
                    featmap_sizes=featmap_sizes,
                    metainfo=dict(sample.metainfo),
                    gt=gt,
                    positives=positives,
                    loss_weight=loss_weight,
                )
            )
    return outputs


def ceiling_polygons(
    gt: InstanceData, num_rays: int, fill_missing_rays: bool = False
) -> torch.Tensor:
    """Ideal ray polygons: the ray targets measured from each instance's mass centre.

    ``fill_missing_rays`` as the targets' (``PolarTarget``): the ceiling of what the model is
    trained towards.

    Returns:
        Tensor: (G, R, 2) polygons in network-input pixels.
    """
    if len(gt.labels) == 0:
        return torch.zeros(0, num_rays, 2)
    rays = torch.cat(
        [
            ray_targets(center[None], contour, num_rays, fill_missing_rays)
            for center, contour in zip(gt.centers, gt.contours, strict=True)
        ]
    )
    return rays_to_polygons(gt.centers, rays)


def _touching(masks: np.ndarray) -> np.ndarray:
    """(G,) bool: the instance's mask, grown by one pixel, meets another instance's mask."""
    if len(masks) < 2:
        return np.zeros(len(masks), dtype=bool)
    kernel = np.ones((3, 3), np.uint8)
    union = masks.sum(axis=0)
    return np.array(
        [((cv2.dilate(m, kernel) > 0) & (union - m > 0)).any() for m in masks], dtype=bool
    )


def _best_ious(polygons: torch.Tensor, gt_rles: list[dict], shape: tuple[int, int]) -> np.ndarray:
    """(n, G) mask IoUs of polygons (n, R, 2) against the ground truth."""
    if len(polygons) == 0 or not gt_rles:
        return np.zeros((len(polygons), len(gt_rles)))
    ious = mask_utils.iou(polygons_to_rles(polygons, shape), gt_rles, [0] * len(gt_rles))
    return np.asarray(ious).reshape(len(polygons), len(gt_rles))


def instance_records(
    images: Sequence[ImageOutputs], head: nn.Module, test_cfg: dict | None = None
) -> list[dict[str, Any]]:
    """One record per ground-truth instance (see the module docstring).

    Args:
        images: :func:`collect`'s outputs.
        head: the model's ``bbox_head`` (its ``postprocess`` and ``num_rays``).
        test_cfg: post-processing settings; the head's own by default.

    Returns:
        list[dict]: ``size`` (sqrt of the mask area, px), ``touching``, ``positives`` (total),
        ``level`` (the level with most positives, -1 without), ``loss_weight``,
        ``ceiling_iou``, ``oracle_iou``, ``pre_nms_recall`` (bool), ``final_iou`` (same
        class) and ``final_iou_any_class``.
    """
    cfg = ConfigDict(head.test_cfg if test_cfg is None else test_cfg)
    score_thr = cfg.get('score_thr', 0.05)
    # Every polygon is rasterised as the head returns its own (``round_vertices``).
    as_output = functools.partial(head.output_vertices, cfg=cfg)
    records: list[dict[str, Any]] = []
    for image in images:
        gt = image.gt
        shape = tuple(image.metainfo['img_shape'][:2])
        masks = gt.masks.numpy().astype(np.uint8)[:, : shape[0], : shape[1]]
        gt_rles = masks_to_rles(masks)
        labels = gt.labels.numpy()
        ideal = ceiling_polygons(gt, head.num_rays, head.target_generator.fill_missing_rays)
        ceiling = np.diag(_best_ious(as_output(ideal), gt_rles, shape))
        scores, centerness, bboxes, polygons = image.dense
        points_xy = torch.cat(head.prior_points(image.featmap_sizes, torch.float32, 'cpu'))
        # Candidates before NMS: the per-level nms_pre ranking and the score threshold.
        candidates = head.pre_nms_indices(
            scores, centerness, image.level_sizes, cfg.get('nms_pre', -1)
        )
        kept = scores[candidates] > score_thr  # (n, C)
        pre_ious = _best_ious(as_output(polygons[candidates]), gt_rles, shape)  # (n, G)
        final = head.postprocess(
            tuple(d[None] for d in image.dense), image.level_sizes, [image.metainfo], cfg
        )[0]
        final_ious = _best_ious(final.polygons, gt_rles, shape)
        final_labels = final.labels.numpy()
        touching = _touching(masks)
        for g in range(len(labels)):
            x1, y1, x2, y2 = gt.bboxes[g].tolist()
            inside = (
                (
                    (points_xy[:, 0] >= x1)
                    & (points_xy[:, 0] <= x2)
                    & (points_xy[:, 1] >= y1)
                    & (points_xy[:, 1] <= y2)
                )
                .nonzero()
                .squeeze(1)
            )
            oracle = _best_ious(as_output(polygons[inside]), [gt_rles[g]], shape)
            same_class = final_labels == labels[g]
            records.append(
                dict(
                    size=float(math.sqrt(masks[g].sum())),
                    touching=bool(touching[g]),
                    positives=int(image.positives[g].sum()),
                    level=int(image.positives[g].argmax()) if image.positives[g].any() else -1,
                    loss_weight=float(image.loss_weight[g]),
                    ceiling_iou=float(ceiling[g]),
                    oracle_iou=float(oracle.max(initial=0.0)),
                    pre_nms_recall=bool(
                        ((pre_ious[:, g] >= 0.5) & kept[:, labels[g]].numpy()).any()
                    ),
                    final_iou=float(final_ious[same_class, g].max(initial=0.0)),
                    final_iou_any_class=float(final_ious[:, g].max(initial=0.0)),
                )
            )
    return records


def summarize(records: Sequence[dict[str, Any]], groups: str = 'size') -> list[dict[str, Any]]:
    """Mean figures of the records by ``groups``: 'size' (:data:`SIZE_BINS`), 'level' or 'touching'.

    Returns:
        list[dict]: per group ``group``, ``instances``, ``positives`` (mean), ``loss_weight``
        (mean), ``ceiling_iou``, ``oracle_iou``, ``final_iou`` (means), and the recalls at IoU 0.5
        ``pre_nms_recall``, ``final_recall``, ``final_recall_any_class``.
    """
    if groups == 'size':
        keyed = [(name, [r for r in records if lo <= r['size'] < hi]) for name, lo, hi in SIZE_BINS]
    elif groups == 'level':
        levels = sorted({r['level'] for r in records})
        keyed = [
            (f'level {lv}' if lv >= 0 else 'no positive', [r for r in records if r['level'] == lv])
            for lv in levels
        ]
    elif groups == 'touching':
        keyed = [
            (name, [r for r in records if r['touching'] == flag])
            for name, flag in (('touching', True), ('apart', False))
        ]
    else:
        raise ValueError(f"groups must be 'size', 'level' or 'touching' (got {groups!r})")
    keyed.append(('all', list(records)))
    rows = []
    for name, members in keyed:
        if not members:
            continue
        means = {
            key: float(np.mean([r[key] for r in members]))
            for key in (
                'positives',
                'loss_weight',
                'ceiling_iou',
                'oracle_iou',
                'final_iou',
                'pre_nms_recall',
            )
        }
        rows.append(
            dict(
                group=name,
                instances=len(members),
                **means,
                final_recall=float(np.mean([r['final_iou'] >= 0.5 for r in members])),
                final_recall_any_class=float(
                    np.mean([r['final_iou_any_class'] >= 0.5 for r in members])
                ),
            )
        )
    return rows


def _quiet_segm_eval(coco_gt: COCO, detections: list[dict]) -> dict[str, float]:
    """pycocotools' segm AP, AP50, AP75 and AR@100 of ``detections`` (its printing silenced)."""
    if not detections:
        return dict(AP=0.0, AP50=0.0, AP75=0.0, AR100=0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(detections)
        evaluation = COCOeval(coco_gt, coco_dt, 'segm')
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    return dict(
        AP=float(stats[0]), AP50=float(stats[1]), AP75=float(stats[2]), AR100=float(stats[8])
    )


class SegmEvaluator:
    """COCO segm AP of post-processed outputs or of ideal polygons, against one json.

    Args:
        ann_file: the COCO json of the split (the evaluator's ``ann_file``).
        cat_ids: the category id of each label 0..C-1.
    """

    def __init__(self, ann_file: str, cat_ids: Sequence[int]) -> None:
        self.coco = load_ground_truth(ann_file, COCO)
        self.cat_ids = list(cat_ids)

    def _detections(self, img_id: int, pred: dict[str, Any]) -> list[dict]:
        return [
            dict(
                image_id=img_id,
                category_id=self.cat_ids[int(label)],
                bbox=box,
                score=float(score),
                segmentation=rle,
            )
            for label, box, score, rle in zip(
                pred['labels'],
                xyxy_to_coco_xywh(pred['bboxes']),
                pred['scores'],
                pred['masks'],
                strict=True,
            )
        ]

    def model_ap(
        self, images: Sequence[ImageOutputs], head: nn.Module, test_cfg: dict | None = None
    ) -> dict[str, float]:
        """AP of the model's outputs post-processed with ``test_cfg`` (the head's by default)."""
        detections = []
        for image in images:
            pred = head.postprocess(
                tuple(d[None] for d in image.dense),
                image.level_sizes,
                [image.metainfo],
                test_cfg,
                rescale=True,
            )[0]
            pred = pred_instances_to_numpy(pred, tuple(image.metainfo['ori_shape'][:2]))
            detections += self._detections(image.metainfo['img_id'], pred)
        return _quiet_segm_eval(self.coco, detections)

    def ceiling_ap(
        self, images: Iterable[tuple[InstanceData, dict]], head: nn.Module
    ) -> dict[str, float]:
        """AP of the ideal ray polygons of the ground truth (:func:`ceiling_polygons`), score 1.

        Class-correct, one detection per instance: the ceiling of what R rays from the mass
        centre can score. The rays, their targets and the rasterisation are the head's
        (``num_rays``, the targets' ``fill_missing_rays``, ``test_cfg.round_vertices``).

        Args:
            images: per image its ``gt_instances`` (with ``contours``, ``centers``, ``labels``)
                and metainfo, e.g. of :func:`ground_truth`; best at the ground truth's own
                resolution (``diagnostic_dataloader(cfg, resize=False)``), since contours
                traced on resized masks carry the resize's rounding.
            head: the model's ``bbox_head``.
        """
        fill_missing_rays = head.target_generator.fill_missing_rays
        detections = []
        for gt, metainfo in images:
            w_scale, h_scale = metainfo.get('scale_factor', (1.0, 1.0))[:2]
            polygons = ceiling_polygons(gt, head.num_rays, fill_missing_rays)
            polygons = polygons / torch.tensor([w_scale, h_scale])
            polygons = head.output_vertices(polygons)
            pred = pred_instances_to_numpy(
                dict(
                    bboxes=polygons_to_bboxes(polygons),
                    scores=torch.ones(len(polygons)),
                    labels=gt.labels,
                    polygons=polygons,
                ),
                tuple(metainfo['ori_shape'][:2]),
            )
            detections += self._detections(metainfo['img_id'], pred)
        return _quiet_segm_eval(self.coco, detections)


def ground_truth(dataloader: Iterable) -> list[tuple[InstanceData, dict]]:
    """``(gt_instances, metainfo)`` of every image of a :func:`diagnostic_pipeline` loader."""
    return [
        (sample.gt_instances, dict(sample.metainfo))
        for batch in dataloader
        for sample in batch['data_samples']
    ]


@torch.no_grad()
def mean_losses(
    model: nn.Module, dataloader: Iterable, max_batches: int | None = None
) -> dict[str, float]:
    """The model's losses (eval mode, no augmentation) averaged over batches of ``dataloader``.

    Compare a train subset with the val split: a gap that grows with training is overfitting,
    equal and flat losses are a capacity or optimisation limit.
    """
    model.eval()
    totals: dict[str, float] = {}
    batches = 0
    for batch in dataloader:
        data = model.data_preprocessor(batch, False)
        losses = model(**data, mode='loss')
        for key, value in losses.items():
            totals[key] = totals.get(key, 0.0) + float(value)
        batches += 1
        if max_batches is not None and batches >= max_batches:
            break
    return {key: value / max(batches, 1) for key, value in totals.items()}
