"""Confusion matrix of instance predictions, with a background row and column.

Rows are the ground-truth classes plus ``background`` (last), columns the predicted classes plus
``background``. In each image, detections with a score of at least ``score_thr`` are matched
one-to-one to non-crowd ground truth by mask IoU >= ``tp_iou_thr``, best score first, each
taking the ground truth it overlaps most: first among the ground truth of its own class (a
correct detection), then among the rest (a confusion, off the diagonal). A detection left
unmatched counts in the background row, unless it lies on a crowd region (ignored); a ground
truth left unmatched counts in the background column. So row c sums to the number of non-crowd
instances of class c, and a duplicate detection is a background false positive.

mmdetection's ``confusion_matrix.py`` matches boxes and lets one detection count against every
ground truth it overlaps; here masks are matched and every instance is counted once.

Naming convention for shapes: n detections and G ground-truth instances of one image, C classes.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from polarmask.analysis.ground_truth import CocoGroundTruth


def image_confusion(
    ious: np.ndarray,
    dt_labels: np.ndarray,
    dt_scores: np.ndarray,
    gt_labels: np.ndarray,
    gt_crowd: np.ndarray,
    num_classes: int,
    score_thr: float = 0.3,
    tp_iou_thr: float = 0.5,
) -> np.ndarray:
    """The confusion matrix of one image (see the module docstring).

    Args:
        ious: (n, G) mask IoUs of the detections and the ground truth (``mask_ious``).
        dt_labels: (n,) labels of the detections in 0..C-1.
        dt_scores: (n,) their scores.
        gt_labels: (G,) labels of the ground truth in 0..C-1.
        gt_crowd: (G,) bool, crowd regions.
        num_classes: C.
        score_thr: detections scoring less are left out.
        tp_iou_thr: the mask IoU a match needs.

    Returns:
        np.ndarray: (C + 1, C + 1) int64 counts, ground truth by row, prediction by column.
    """
    dt_labels, dt_scores = np.asarray(dt_labels), np.asarray(dt_scores)
    gt_labels, gt_crowd = np.asarray(gt_labels), np.asarray(gt_crowd, dtype=bool)
    background = num_classes
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    kept = np.flatnonzero(dt_scores >= score_thr)
    order = kept[np.argsort(-dt_scores[kept], kind='mergesort')]
    overlaps = ious[order] >= tp_iou_thr  # (n', G)
    free = ~gt_crowd  # (G,) ground truth not matched yet
    unmatched = np.ones(len(order), dtype=bool)
    for own_class_only in (True, False):
        for row, det in enumerate(order):
            candidates = overlaps[row] & free
            if own_class_only:
                candidates &= gt_labels == dt_labels[det]
            if unmatched[row] and candidates.any():
                gt = np.flatnonzero(candidates)[np.argmax(ious[det][candidates])]
                matrix[gt_labels[gt], dt_labels[det]] += 1
                free[gt], unmatched[row] = False, False
    on_crowd = (overlaps & gt_crowd).any(axis=1)  # (n',)
    np.add.at(matrix[background], dt_labels[order[unmatched & ~on_crowd]], 1)
    np.add.at(matrix[:, background], gt_labels[free], 1)
    return matrix


def confusion_matrix(
    results: Sequence[dict[str, Any]],
    ground_truth: CocoGroundTruth,
    source: str,
    score_thr: float = 0.3,
    tp_iou_thr: float = 0.5,
) -> np.ndarray:
    """The confusion matrix (:func:`image_confusion`) summed over result records.

    Args:
        results: records with ``img_id``, ``labels``, ``scores`` and ``masks``.
        ground_truth: the json the results are analysed against.
        source: the results file, for messages.
        score_thr: detections scoring less are left out.
        tp_iou_thr: the mask IoU a match needs.

    Returns:
        np.ndarray: (C + 1, C + 1) int64, C = ``len(ground_truth.classes)``.
    """
    num_classes = len(ground_truth.classes)
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for record, gt, ious in ground_truth.match(results, source):
        matrix += image_confusion(
            ious,
            record['labels'],
            record['scores'],
            gt.labels,
            gt.crowd,
            num_classes,
            score_thr=score_thr,
            tp_iou_thr=tp_iou_thr,
        )
    return matrix


def row_percentages(matrix: np.ndarray) -> np.ndarray:
    """Each row as percentages of its sum (NaN for an empty row), as mmdetection plots it."""
    sums = matrix.sum(axis=1, keepdims=True)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(sums > 0, matrix / sums * 100, np.nan)


def save_confusion_matrix(
    matrix: np.ndarray, labels: Sequence[str], save_dir: str, settings: dict[str, Any]
) -> list[str]:
    """Write the counts as ``confusion_matrix.csv`` and ``confusion_matrix.json``.

    Args:
        matrix: (C + 1, C + 1) counts.
        labels: C + 1 names, the classes and ``'background'``.
        save_dir: folder to write to (created).
        settings: what the matrix was computed with (``score_thr``, ``tp_iou_thr``), kept in
            the json.

    Returns:
        list[str]: the written files.
    """
    os.makedirs(save_dir, exist_ok=True)
    csv_path = os.path.join(save_dir, 'confusion_matrix.csv')
    with open(csv_path, 'w', newline='') as file:
        writer = csv.writer(file)
        writer.writerow(['ground truth \\ prediction', *labels])
        for label, row in zip(labels, matrix.tolist(), strict=True):
            writer.writerow([label, *row])
    json_path = os.path.join(save_dir, 'confusion_matrix.json')
    with open(json_path, 'w') as file:
        json.dump(dict(labels=list(labels), counts=matrix.tolist(), **settings), file, indent=1)
    return [csv_path, json_path]


def plot_confusion_matrix(
    plt: ModuleType,
    matrix: np.ndarray,
    labels: Sequence[str],
    color_theme: str = 'plasma',
    title: str = 'Normalized Confusion Matrix',
) -> Any:
    """Draw the row percentages of the matrix as mmdetection's ``confusion_matrix.py`` does.

    Args:
        plt: ``matplotlib.pyplot``.
        matrix: (C + 1, C + 1) counts.
        labels: C + 1 names, the classes and ``'background'``.
        color_theme: a matplotlib colour map.
        title: figure title.

    Returns:
        matplotlib.figure.Figure: the figure (the caller saves, shows and closes it).
    """
    percentages = row_percentages(matrix)
    size = len(labels)
    figure, ax = plt.subplots(figsize=(max(0.5 * size, 6), max(0.4 * size, 4.8)), dpi=180)
    image = ax.imshow(percentages, cmap=plt.get_cmap(color_theme), vmin=0, vmax=100)
    plt.colorbar(mappable=image, ax=ax)
    ax.set_title(title, fontdict=dict(weight='bold', size=12))
    ax.set_ylabel('Ground Truth Label', fontdict=dict(size=10))
    ax.set_xlabel('Prediction Label', fontdict=dict(size=10))
    ax.set_xticks(np.arange(size), labels=labels)
    ax.set_yticks(np.arange(size), labels=labels)
    ax.set_xticks(np.arange(size + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(size + 1) - 0.5, minor=True)
    ax.grid(True, which='minor', linestyle='-')
    ax.tick_params(axis='x', bottom=False, top=True, labelbottom=False, labeltop=True)
    plt.setp(ax.get_xticklabels(), rotation=45, ha='left', rotation_mode='anchor')
    for row in range(size):
        for column in range(size):
            value = percentages[row, column]
            text = '-' if np.isnan(value) else f'{int(value)}%'
            ax.text(column, row, text, ha='center', va='center', color='w', size=7)
    ax.set_ylim(size - 0.5, -0.5)
    figure.tight_layout()
    return figure
