"""COCO ``segm`` / ``bbox`` evaluation through pycocotools (or faster-coco-eval).

Reproduces the original's evaluation path
(``docs/original_polarmask.md#rasterising-and-evaluation``): each predicted polygon is rasterised
at the original image size by truncating its vertices and filling it, encoded as RLE with ``str``
counts; labels map back to the json's category ids; boxes are written as
[x, y, x2 - x1 + 1, y2 - y1 + 1]. Segm results carry no ``bbox`` key, so pycocotools takes each
mask's own box and area for the small/medium/large split.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import os.path as osp
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
from mmengine.dist import is_main_process
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from terminaltables import AsciiTable

from polarmask.evaluation.functional import xyxy_to_coco_xywh
from polarmask.evaluation.ground_truth import load_ground_truth
from polarmask.registry import METRICS
from polarmask.structures import pred_instances_to_numpy

METRIC_TYPES = ('segm', 'bbox')
BACKENDS = ('pycocotools', 'faster-coco-eval')
STAT_NAMES = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')
"""Names of COCO stats 0..5, returned as ``{metric}_{name}`` (the mmdet names)."""
_TABLE_COLUMNS = ((None, 0), (0, 0), (5, 0), (None, 1), (None, 2), (None, 3))
"""(IoU threshold index or None for all, area range index) of each per-class table column."""


_SUMMARY_ROWS = (
    ('Precision', None, 'all', 2),
    ('Precision', 0.5, 'all', 2),
    ('Precision', 0.75, 'all', 2),
    ('Precision', None, 'small', 2),
    ('Precision', None, 'medium', 2),
    ('Precision', None, 'large', 2),
    ('Recall', None, 'all', 0),
    ('Recall', None, 'all', 1),
    ('Recall', None, 'all', 2),
    ('Recall', None, 'small', 2),
    ('Recall', None, 'medium', 2),
    ('Recall', None, 'large', 2),
)
"""What each of COCO stats 0..11 averages, as pycocotools: precision or recall, the IoU threshold
(None: all of them), the area range and the index into ``params.maxDets``."""


def _summary(stats: Sequence[float], params: Any) -> str:
    """The 12 lines pycocotools' ``COCOeval.summarize`` prints, from any backend's ``stats``.

    faster-coco-eval logs its own summary at debug level, with more lines, so the summary of
    both backends is written here.

    Args:
        stats: COCO stats 0..11.
        params: the evaluation's ``params`` (``iouThrs``, ``maxDets``).
    """
    all_ious = f'{params.iouThrs[0]:0.2f}:{params.iouThrs[-1]:0.2f}'
    lines = []
    for value, (kind, iou, area, max_dets) in zip(stats, _SUMMARY_ROWS, strict=True):
        title, short = f'Average {kind}', f'(A{kind[0]})'
        ious = all_ious if iou is None else f'{iou:0.2f}'
        lines.append(
            f' {title:<18} {short} @[ IoU={ious:<9} | area={area:>6s} | '
            f'maxDets={params.maxDets[max_dets]:>3d} ] = {value:0.3f}'
        )
    return '\n'.join(lines)


def _quiet(func: Any, *args: Any, **kwargs: Any) -> tuple[Any, str]:
    """Call a pycocotools function, returning its result and what it printed."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        result = func(*args, **kwargs)
    return result, buffer.getvalue()


def _coco_api(backend: str) -> tuple[type, type]:
    if backend == 'pycocotools':
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    from faster_coco_eval import COCO, COCOeval_faster

    return COCO, COCOeval_faster


@METRICS.register_module()
class CocoMetric(BaseMetric):
    """COCO mask and box AP of PolarMask predictions.

    ``process`` rasterises each image's ``pred_instances.polygons`` (original-image pixels) with
    :func:`polarmask.structures.mask.polygons_to_rles` and keeps only RLEs, so the results that
    mmengine gathers from all ranks stay small. ``compute_metrics`` writes
    ``PREFIX.bbox.json`` and ``PREFIX.segm.json``, evaluates each requested type on the images
    that have results, logs pycocotools' 12 numbers and a per-class AP table, and returns
    ``{metric}_mAP``, ``_mAP_50``, ``_mAP_75``, ``_mAP_s``, ``_mAP_m``, ``_mAP_l`` (prefixed
    ``coco/`` by mmengine). With no detections at all the numbers are 0.

    Labels map to category ids through the dataset's ``classes`` names (``dataset_meta``, set by
    the runner), or to every category of ``ann_file`` in json order without a dataset.

    The ground truth is read when the runner sets ``dataset_meta`` (as it builds the val or test
    loop), so an unreadable json or classes it does not name stop the run before it trains or
    tests; what the dataset loader accepts is made evaluable and logged
    (:func:`~polarmask.evaluation.ground_truth.evaluable_ground_truth`: missing ``id``,
    ``iscrowd`` or ``area``; empty, degenerate or non-finite polygons).

    Args:
        ann_file: Ground-truth COCO json. ``None``: the dataset's ``ann_file`` (from
            ``dataset_meta``).
        metric: ``'segm'``, ``'bbox'`` or a list of both.
        classwise: Log the per-class AP table.
        format_only: Only write the result jsons (e.g. for test-dev) and return ``{}``; needs
            ``outfile_prefix``.
        outfile_prefix: Path prefix of the result jsons; ``None`` uses a temporary directory.
        backend: ``'pycocotools'`` or ``'faster-coco-eval'`` (same numbers, faster).
        collect_device: ``'cpu'`` or ``'gpu'``, how mmengine gathers results across ranks.
        prefix: Prefix of the returned metric names (default ``'coco'``).
    """

    default_prefix = 'coco'

    def __init__(
        self,
        ann_file: str | None = None,
        metric: str | Sequence[str] = 'segm',
        classwise: bool = True,
        format_only: bool = False,
        outfile_prefix: str | None = None,
        backend: str = 'pycocotools',
        collect_device: str = 'cpu',
        prefix: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.metrics = [metric] if isinstance(metric, str) else list(metric)
        for name in self.metrics:
            if name not in METRIC_TYPES:
                raise KeyError(f'CocoMetric: metric {name!r} is not supported; use {METRIC_TYPES}')
        if backend not in BACKENDS:
            raise ValueError(f'CocoMetric: backend {backend!r} is not one of {BACKENDS}')
        if format_only and outfile_prefix is None:
            raise ValueError(
                'CocoMetric: format_only=True writes PREFIX.segm.json / PREFIX.bbox.json: set '
                "outfile_prefix (e.g. outfile_prefix='work_dirs/test-dev/results')"
            )
        self.ann_file = ann_file
        self.classwise = classwise
        self.format_only = format_only
        self.outfile_prefix = outfile_prefix
        self.backend = backend
        self._coco_gt = None
        self._coco_gt_file: str | None = None

    @property
    def dataset_meta(self) -> dict | None:
        """The dataset's metainfo (``classes``, ``ann_file``), set by the runner's loops."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict | None) -> None:
        """Set the metainfo and, in the process that evaluates, read the ground truth now.

        The runner sets it when it builds the val or test loop, so a json that cannot be
        evaluated, or classes it does not name, stop the run before training or testing
        instead of at its end.
        """
        BaseMetric.dataset_meta.fset(self, dataset_meta)
        if is_main_process() and (self.ann_file or (dataset_meta or {}).get('ann_file')):
            self._cat_ids(self._load_gt())

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep each image's boxes, scores, labels and RLE masks (original-image pixels)."""
        for sample in data_samples:
            shape = tuple(int(v) for v in sample['ori_shape'])
            result = pred_instances_to_numpy(sample['pred_instances'], shape)
            result.pop('polygons', None)  # the RLEs are what is evaluated; keep results small
            self.results.append(dict(img_id=int(sample['img_id']), **result))

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Write the result jsons and evaluate them with COCOeval."""
        coco_gt = self._load_gt()
        cat_ids = self._cat_ids(coco_gt)
        with tempfile.TemporaryDirectory() as tmp_dir:
            prefix = self.outfile_prefix or osp.join(tmp_dir, 'results')
            files = self.results2json(results, prefix, cat_ids)
            if self.format_only:
                print_log(
                    f'CocoMetric: results written to {sorted(files.values())}', logger='current'
                )
                return {}
            img_ids = sorted({r['img_id'] for r in results})
            unknown = sorted(set(img_ids) - set(coco_gt.getImgIds()))
            if unknown:
                raise KeyError(
                    f"CocoMetric: image ids {unknown[:5]} are not in '{self._coco_gt_file}'; "
                    'evaluate against the json the dataset was built from'
                )
            if 'segm' in self.metrics and 'segm' not in files:
                raise KeyError(
                    "CocoMetric: metric 'segm' needs pred_instances.polygons, which the "
                    "predictions lack; use metric='bbox' or a model that predicts polygons"
                )
            eval_results: dict[str, float] = {}
            for metric in self.metrics:
                eval_results.update(
                    self._evaluate(coco_gt, files[metric], metric, cat_ids, img_ids)
                )
        return eval_results

    def results2json(
        self, results: list[dict], outfile_prefix: str, cat_ids: Sequence[int]
    ) -> dict[str, str]:
        """Write ``PREFIX.bbox.json`` and, when every result has masks, ``PREFIX.segm.json``.

        Returns:
            dict: Metric type -> written file.
        """
        bbox_json, segm_json = [], []
        for result in results:
            labels = result['labels']
            if len(labels) and labels.max() >= len(cat_ids):
                raise ValueError(
                    f'CocoMetric: image {result["img_id"]} has a prediction of label '
                    f'{int(labels.max())} but the dataset has {len(cat_ids)} classes; set the '
                    "head's num_classes to the number of classes"
                )
            boxes = xyxy_to_coco_xywh(result['bboxes'])
            for index, (label, score) in enumerate(
                zip(labels.tolist(), result['scores'].tolist(), strict=True)
            ):
                record = dict(image_id=result['img_id'], category_id=cat_ids[label], score=score)
                bbox_json.append(dict(record, bbox=boxes[index]))
                if 'masks' in result:
                    segm_json.append(dict(record, segmentation=result['masks'][index]))
        directory = osp.dirname(outfile_prefix)
        if directory:
            os.makedirs(directory, exist_ok=True)
        files = dict(bbox=f'{outfile_prefix}.bbox.json')
        if all('masks' in result for result in results):
            files['segm'] = f'{outfile_prefix}.segm.json'
        for metric, records in (('bbox', bbox_json), ('segm', segm_json)):
            if metric in files:
                with open(files[metric], 'w') as f:
                    json.dump(records, f)
        return files

    def _load_gt(self) -> Any:
        ann_file = self.ann_file or (self.dataset_meta or {}).get('ann_file')
        if not ann_file:
            raise ValueError(
                'CocoMetric: no ground truth: set ann_file in the evaluator config (or evaluate '
                'a CocoInsSegDataset, whose ann_file is used)'
            )
        if self._coco_gt is None or self._coco_gt_file != ann_file:
            coco_cls, _ = _coco_api(self.backend)
            self._coco_gt = load_ground_truth(ann_file, coco_cls)
            self._coco_gt_file = ann_file
        return self._coco_gt

    def _cat_ids(self, coco_gt: Any) -> list[int]:
        """The category id of each label: the dataset's class names looked up in the json."""
        categories = coco_gt.dataset['categories']
        classes = (self.dataset_meta or {}).get('classes')
        if classes is None:
            return [cat['id'] for cat in categories]
        name_to_id = {cat['name']: cat['id'] for cat in categories}
        missing = [name for name in classes if name not in name_to_id]
        if missing:
            raise KeyError(
                f'CocoMetric: classes {missing} of the dataset are not category names of '
                f"'{self._coco_gt_file}' ({list(name_to_id)}); evaluate against the json the "
                'dataset was built from'
            )
        return [name_to_id[name] for name in classes]

    def _evaluate(
        self, coco_gt: Any, result_file: str, metric: str, cat_ids: list[int], img_ids: list[int]
    ) -> dict[str, float]:
        with open(result_file) as f:
            num_dets = len(json.load(f))
        if num_dets == 0:
            print_log(
                f'CocoMetric: no {metric} detections to evaluate; reporting 0 AP',
                logger='current',
                level=logging.WARNING,
            )
            return {f'{metric}_{name}': 0.0 for name in STAT_NAMES}
        _, eval_cls = _coco_api(self.backend)
        coco_dt, _ = _quiet(coco_gt.loadRes, result_file)
        coco_eval = eval_cls(coco_gt, coco_dt, metric)
        coco_eval.params.catIds = cat_ids
        coco_eval.params.imgIds = img_ids
        _quiet(coco_eval.evaluate)
        _quiet(coco_eval.accumulate)
        _quiet(coco_eval.summarize)
        stats = [float(v) for v in coco_eval.stats[:12]]
        summary = _summary(stats, coco_eval.params)
        print_log(f'CocoMetric {metric} ({self.backend}):\n{summary}', logger='current')
        if self.classwise:
            print_log('\n' + self._classwise_table(coco_eval, coco_gt, cat_ids), logger='current')
        results = {f'{metric}_{name}': stats[i] for i, name in enumerate(STAT_NAMES)}
        copypaste = ' '.join(f'{v:.3f}' for v in stats[:6])
        print_log(f'{metric}_mAP_copypaste: {copypaste}', logger='current')
        return results

    @staticmethod
    def _classwise_table(coco_eval: Any, coco_gt: Any, cat_ids: list[int]) -> str:
        """Per-class AP, AP50, AP75, APs, APm, APl from ``eval['precision']`` (T, R, K, A, M)."""
        precision = coco_eval.eval['precision']
        rows = [['category', 'mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l']]
        for k, cat_id in enumerate(cat_ids):
            name = coco_gt.loadCats(cat_id)[0]['name']
            cells = []
            for iou_index, area_index in _TABLE_COLUMNS:
                values = precision[:, :, k, area_index, -1]
                if iou_index is not None:
                    values = values[iou_index]
                values = values[values > -1]
                cells.append(f'{np.mean(values):.3f}' if values.size else 'nan')
            rows.append([name, *cells])
        return AsciiTable(rows).table
