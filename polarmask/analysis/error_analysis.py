"""COCO error analysis: the precision/recall curves of mmdetection's ``coco_error_analysis.py``.

Seven curves per class and area range, each a looser evaluation than the one before
(the Detectron / COCO error-analysis breakdown):

* ``C75``, ``C50``: precision at IoU 0.75 and 0.5;
* ``Loc``: at IoU 0.1 (localisation errors forgiven; duplicates still count as errors);
* ``Sim``: IoU 0.1, and detections on ground truth of another class of the same
  ``supercategory`` ignored;
* ``Oth``: IoU 0.1, and detections on ground truth of any other class ignored;
* ``BG``: also false positives on background forgiven (precision 1 wherever ``Oth`` is > 0);
* ``FN``: everything forgiven (precision 1): what is left is the recall never reached.

The area under each curve is its AP; the gap between two curves is what that kind of error
costs. A class's curves exist for an area range where it has ground truth; the ``allclass``
curves are the mean over those classes.

Naming convention for shapes: E = 7 error types, R recall thresholds, K categories, A area
ranges.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

ERROR_TYPES = ('C75', 'C50', 'Loc', 'Sim', 'Oth', 'BG', 'FN')
AREA_NAMES = ('allarea', 'small', 'medium', 'large')
DEFAULT_AREAS = (32**2, 96**2, 1e10)
"""Upper bounds in pixels of small, medium and large (COCO's)."""
ALL_CLASSES = 'allclass'

_COLORS = (
    (1.0, 1.0, 1.0),
    (1.0, 1.0, 1.0),
    (0.31, 0.51, 0.74),
    (0.75, 0.31, 0.30),
    (0.36, 0.90, 0.38),
    (0.50, 0.39, 0.64),
    (1.0, 0.6, 0.0),
)
"""Fill colour between each curve and the one above it, as mmdetection's figures."""


@dataclass
class ErrorBreakdown:
    """Precision curves of each error type, category and area range.

    Attributes:
        precision: (E, R, K, A) precision; -1 where category k has no ground truth in area a.
        recall_thrs: (R,) recall of each column.
        class_names: K category names, in the json's order of ``getCatIds``.
        areas: A (low, high) area ranges in pixels, named by :data:`AREA_NAMES`.
    """

    precision: np.ndarray
    recall_thrs: np.ndarray
    class_names: list[str]
    areas: list[tuple[float, float]]

    def curves(self, category: int | None, area: int) -> np.ndarray | None:
        """(E, R) curves of one category (None: the mean over categories), or None when no
        category has ground truth in that area range."""
        precision = self.precision[:, :, :, area]  # (E, R, K)
        valid = (precision[0] > -1).all(axis=0)  # (K,)
        if category is not None:
            valid = valid & (np.arange(len(valid)) == category)
        if not valid.any():
            return None
        return precision[:, :, valid].mean(axis=2)

    def to_dict(self) -> dict:
        """Per class (and ``allclass``) and area name: ``ap`` and ``precision`` of each type.

        A class without ground truth in an area range maps to None there.
        """
        classes: dict[str, dict] = {}
        for index, name in [(None, ALL_CLASSES), *enumerate(self.class_names)]:
            classes[name] = {}
            for area, area_name in enumerate(AREA_NAMES):
                curves = self.curves(index, area)
                classes[name][area_name] = None
                if curves is not None:
                    typed = list(zip(ERROR_TYPES, curves, strict=True))
                    classes[name][area_name] = dict(
                        ap={t: round(float(c.mean()), 4) for t, c in typed},
                        precision={t: np.round(c, 4).tolist() for t, c in typed},
                    )
        return dict(
            error_types=list(ERROR_TYPES),
            areas=dict(zip(AREA_NAMES, [list(a) for a in self.areas], strict=True)),
            recall=self.recall_thrs.tolist(),
            classes=classes,
        )


def load_coco(ann_file: str, result_file: str) -> tuple[COCO, COCO]:
    """The ground truth and the results of a COCO result json, read with pycocotools.

    Args:
        ann_file: the COCO instances json.
        result_file: a list of ``segm`` or ``bbox`` result records (``tools/test.py
            --json_out PREFIX`` writes ``PREFIX.segm.json``).

    Returns:
        tuple: ``coco_gt`` and ``coco_dt`` (``coco_gt.loadRes``).

    Raises:
        FileNotFoundError: a file does not exist.
        ValueError: the results are empty, not a list, or of images the json does not have.
    """
    for path, what in ((ann_file, '--ann'), (result_file, 'result json')):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{what} '{path}' does not exist")
    with open(result_file) as file:
        results = json.load(file)
    if not isinstance(results, list) or not results:
        raise ValueError(
            f"'{result_file}' holds no result records: pass the PREFIX.segm.json of "
            'tools/test.py --json_out PREFIX, from a run with detections'
        )
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(ann_file)
    unknown = sorted({r.get('image_id') for r in results} - set(coco_gt.getImgIds()), key=str)
    if unknown:
        raise ValueError(
            f"'{result_file}': image ids {unknown[:5]} are not in '{ann_file}'; pass the json "
            'the results were computed on with --ann'
        )
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(results)
    return coco_gt, coco_dt


def _quiet_coco(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _precision(
    coco_gt: COCO,
    coco_dt: COCO,
    iou_type: str,
    iou_thrs: Sequence[float],
    areas: list[tuple[float, float]],
    cat_ids: Sequence[int],
) -> np.ndarray:
    """COCOeval's accumulated precision (T, R, K, A) with 100 detections per image."""
    coco_eval = COCOeval(coco_gt, coco_dt, iou_type)
    coco_eval.params.imgIds = coco_gt.getImgIds()
    coco_eval.params.catIds = list(cat_ids)
    coco_eval.params.iouThrs = np.asarray(iou_thrs, dtype=np.float64)
    coco_eval.params.maxDets = [100]
    coco_eval.params.areaRng = [list(area) for area in areas]
    coco_eval.params.areaRngLbl = list(AREA_NAMES)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval.evaluate()
        coco_eval.accumulate()
    return coco_eval.eval['precision'][..., 0]


def error_breakdown(
    coco_gt: COCO, coco_dt: COCO, iou_type: str, areas: Sequence[float] = DEFAULT_AREAS
) -> ErrorBreakdown:
    """The seven precision curves of each category and area range (module docstring).

    For ``Sim`` and ``Oth`` of category k the detections of k are evaluated alone against the
    ground truth in which the instances of the forgiven classes become crowd regions of class k,
    so the detections on them are ignored, as mmdetection does.

    Args:
        coco_gt: the ground truth.
        coco_dt: the results, ``coco_gt.loadRes(result_json)``.
        iou_type: ``'segm'`` or ``'bbox'``.
        areas: upper bounds of small, medium and large in pixels.

    Returns:
        ErrorBreakdown: over all categories of ``coco_gt`` and all its images.
    """
    small, medium, large = areas
    area_ranges = [(0.0, large), (0.0, small), (small, medium), (medium, large)]
    categories = coco_gt.loadCats(coco_gt.getCatIds())
    cat_ids = [cat['id'] for cat in categories]
    strict = _precision(coco_gt, coco_dt, iou_type, [0.75, 0.5, 0.1], area_ranges, cat_ids)
    precision = np.zeros((len(ERROR_TYPES), *strict.shape[1:]))  # (E, R, K, A)
    precision[:3] = strict
    gt_anns, dt_anns = coco_gt.dataset['annotations'], coco_dt.dataset['annotations']
    for k, category in enumerate(categories):
        cat_id = category['id']
        coco_dt_k = _quiet_coco(
            dict(coco_dt.dataset, annotations=[a for a in dt_anns if a['category_id'] == cat_id])
        )
        supercategory = category.get('supercategory')
        similar = {
            c['id'] for c in categories if supercategory and c.get('supercategory') == supercategory
        }
        for row, forgiven in ((3, similar - {cat_id}), (4, set(cat_ids) - {cat_id})):
            annotations = [
                dict(a, category_id=cat_id, iscrowd=1) if a['category_id'] in forgiven else a
                for a in gt_anns
            ]
            coco_gt_k = _quiet_coco(dict(coco_gt.dataset, annotations=annotations))
            precision[row, :, k] = _precision(
                coco_gt_k, coco_dt_k, iou_type, [0.1], area_ranges, [cat_id]
            )[0, :, 0]
    precision[5] = np.where(precision[4] > 0, 1.0, 0.0)
    precision[6] = 1.0
    precision[:, strict[0] == -1] = -1  # (R, K, A) mask: no ground truth there
    return ErrorBreakdown(
        precision=precision,
        recall_thrs=np.linspace(0.0, 1.0, precision.shape[1]),
        class_names=[category['name'] for category in categories],
        areas=area_ranges,
    )


def save_error_breakdown(
    breakdown: ErrorBreakdown, out_dir: str, iou_type: str, plt: ModuleType | None
) -> list[str]:
    """Write ``OUT_DIR/error_analysis.json`` and, with matplotlib, mmdetection's figures
    ``OUT_DIR/<iou_type>-<class>-<area>.png`` for each class with ground truth in the area
    range and for ``allclass``.

    Args:
        breakdown: the curves.
        out_dir: folder to write to (created).
        iou_type: ``'segm'`` or ``'bbox'``, in the figure names and titles.
        plt: ``matplotlib.pyplot``, or None to write the json only.

    Returns:
        list[str]: the written files.
    """
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, 'error_analysis.json')
    with open(json_path, 'w') as file:
        json.dump(dict(iou_type=iou_type, **breakdown.to_dict()), file)
    written = [json_path]
    if plt is None:
        return written
    for index, name in [(None, ALL_CLASSES), *enumerate(breakdown.class_names)]:
        for area, area_name in enumerate(AREA_NAMES):
            curves = breakdown.curves(index, area)
            if curves is None:
                continue
            title = f'{iou_type}-{name}-{area_name}'
            figure = plot_curves(plt, breakdown.recall_thrs, curves, title)
            written.append(os.path.join(out_dir, f'{title.replace(os.sep, "_")}.png'))
            figure.savefig(written[-1])
            plt.close(figure)
    return written


def plot_curves(plt: ModuleType, recall: np.ndarray, curves: np.ndarray, title: str) -> Any:
    """Fill the area under each curve of ``curves`` (E, R) with its colour and AP, as
    mmdetection's ``makeplot``; returns the figure."""
    figure, ax = plt.subplots()
    lower = np.zeros_like(recall)
    for error_type, curve, color in zip(ERROR_TYPES, curves, _COLORS, strict=True):
        ax.plot(recall, curve, color=(0, 0, 0), linewidth=0.5)
        ax.fill_between(
            recall, lower, curve, color=color, label=f'[{curve.mean():.3f}]{error_type}'
        )
        lower = curve
    ax.set_xlabel('recall')
    ax.set_ylabel('precision')
    ax.set_xlim(0, 1.0)
    ax.set_ylim(0, 1.0)
    ax.set_title(title)
    ax.legend()
    return figure
