"""Mask AP of a single image, computed as pycocotools' COCOeval computes it for that image alone.

For each class with non-crowd ground truth in the image, the detections of that class (the 100
best by score) are matched greedily to the ground truth at each IoU threshold 0.50:0.05:0.95
(a detection that only matches a crowd region is ignored), the precision/recall curve is
interpolated at 101 recall points and averaged; the image's AP is the mean over those classes
and thresholds. Classes without ground truth in the image do not count, as in COCO, so an image
without non-crowd ground truth has no AP (NaN).

Naming convention for shapes: n detections and G ground-truth instances of one image, T IoU
thresholds, R recall thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from polarmask.analysis.ground_truth import CocoGroundTruth

COCO_IOU_THRS = np.linspace(0.5, 0.95, 10)
"""(T,) the IoU thresholds of COCO's AP."""
RECALL_THRS = np.linspace(0.0, 1.0, 101)
"""(R,) the recall points at which COCO interpolates precision."""
MAX_DETS = 100
"""Detections per class and image that COCO's AP considers."""


def match_detections(
    ious: np.ndarray, gt_crowd: np.ndarray, iou_thr: float
) -> tuple[np.ndarray, np.ndarray]:
    """COCO's greedy matching of one class's detections in one image.

    Each detection, best score first, takes the ground truth it overlaps most (IoU >=
    ``iou_thr``) among those not taken yet, non-crowd first; crowd regions can be taken again
    and the detections they take are ignored. Of equal IoUs the last one wins, as in COCOeval.

    Args:
        ious: (n, G) mask IoUs, rows by decreasing score, columns with non-crowd ground truth
            first.
        gt_crowd: (G,) bool.
        iou_thr: the IoU a match needs.

    Returns:
        tuple: ``matched`` (n,) bool and ``ignored`` (n,) bool (matched to a crowd region).
    """
    num_dets, num_gts = ious.shape
    threshold = min(iou_thr, 1 - 1e-10)
    taken = np.zeros(num_gts, dtype=bool)
    matched = np.zeros(num_dets, dtype=bool)
    ignored = np.zeros(num_dets, dtype=bool)
    for det in range(num_dets):
        candidates = (ious[det] >= threshold) & (~taken | gt_crowd)  # (G,)
        for group in (candidates & ~gt_crowd, candidates & gt_crowd):
            if group.any():
                best = np.flatnonzero(group & (ious[det] == ious[det][group].max()))[-1]
                matched[det], ignored[det] = True, gt_crowd[best]
                taken[best] = True
                break
    return matched, ignored


def average_precision(matched: np.ndarray, ignored: np.ndarray, num_gts: int) -> float:
    """COCO's 101-point interpolated AP of detections sorted by decreasing score.

    Args:
        matched: (n,) bool, the detection matched a ground truth.
        ignored: (n,) bool, the detection does not count (matched to a crowd region).
        num_gts: non-crowd ground truth of the class, > 0.

    Returns:
        float: AP in [0, 1].
    """
    counted = matched[~ignored]
    if not len(counted):
        return 0.0
    true_pos = np.cumsum(counted, dtype=np.float64)
    false_pos = np.cumsum(~counted, dtype=np.float64)
    recall = true_pos / num_gts
    precision = true_pos / (true_pos + false_pos + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the envelope from the right
    at = np.searchsorted(recall, RECALL_THRS, side='left')  # (R,)
    reached = at < len(precision)
    return float(np.where(reached, precision[np.minimum(at, len(precision) - 1)], 0.0).mean())


def image_ap(
    ious: np.ndarray,
    dt_labels: np.ndarray,
    dt_scores: np.ndarray,
    gt_labels: np.ndarray,
    gt_crowd: np.ndarray,
    iou_thrs: Sequence[float] = COCO_IOU_THRS,
    max_dets: int = MAX_DETS,
) -> float:
    """The COCO AP of one image, over the classes of its non-crowd ground truth.

    Args:
        ious: (n, G) mask IoUs of the detections and the ground truth (``mask_ious``).
        dt_labels: (n,) labels of the detections.
        dt_scores: (n,) their scores.
        gt_labels: (G,) labels of the ground truth.
        gt_crowd: (G,) bool, crowd regions.
        iou_thrs: (T,) IoU thresholds averaged over.
        max_dets: detections per class considered, best score first.

    Returns:
        float: AP in [0, 1], NaN when the image has no non-crowd ground truth.
    """
    dt_labels, dt_scores = np.asarray(dt_labels), np.asarray(dt_scores)
    gt_labels, gt_crowd = np.asarray(gt_labels), np.asarray(gt_crowd, dtype=bool)
    class_aps = []
    for label in np.unique(gt_labels[~gt_crowd]):
        dets = np.flatnonzero(dt_labels == label)
        dets = dets[np.argsort(-dt_scores[dets], kind='mergesort')][:max_dets]
        gts = np.flatnonzero(gt_labels == label)
        gts = gts[np.argsort(gt_crowd[gts], kind='mergesort')]
        class_ious, crowd = ious[np.ix_(dets, gts)], gt_crowd[gts]
        num_gts = int(np.count_nonzero(~crowd))
        class_aps.append(
            np.mean(
                [
                    average_precision(*match_detections(class_ious, crowd, thr), num_gts)
                    for thr in iou_thrs
                ]
            )
        )
    return float(np.mean(class_aps)) if class_aps else float('nan')


def images_ap(
    results: Sequence[dict[str, Any]], ground_truth: CocoGroundTruth, source: str
) -> np.ndarray:
    """The mask AP (:func:`image_ap`) of every result record against its ground truth.

    Args:
        results: records with ``img_id``, ``labels``, ``scores`` and ``masks``.
        ground_truth: the json the results are analysed against.
        source: the results file, for messages.

    Returns:
        np.ndarray: (len(results),) float64 APs, NaN for images without non-crowd ground truth.
    """
    return np.array(
        [
            image_ap(ious, record['labels'], record['scores'], gt.labels, gt.crowd)
            for record, gt, ious in ground_truth.match(results, source)
        ],
        dtype=np.float64,
    ).reshape(-1)


def top_k(aps: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best and the k worst images by AP, as mmdetection's ``analyze_results.py`` ranks
    them (the two lists overlap when there are fewer than 2k images).

    Args:
        aps: (N,) per-image APs; NaN (no ground truth) are left out.
        k: images per list.

    Returns:
        tuple: ``good`` (<= k,) indices into ``aps``, best first, and ``bad`` (<= k,), worst
        first; among equal APs the earlier image ranks lower.
    """
    ranked = np.flatnonzero(~np.isnan(aps))
    ranked = ranked[np.argsort(aps[ranked], kind='stable')]  # worst first
    return ranked[::-1][:k], ranked[:k]
