"""The ground truth that saved results are analysed against: a COCO json read with pycocotools.

The json, its category order and the labels follow :class:`~polarmask.evaluation.CocoMetric`:
labels 0..C-1 are the config's class names looked up in the json (every category of the json in
json order when the config names none), and the file is the evaluator's ``ann_file``, else the
test dataset's. Crowd annotations are kept and flagged, as COCO's evaluation ignores them.

Naming convention for shapes: n detections and G ground-truth instances of one image.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mmengine.config import Config
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from polarmask.evaluation.ground_truth import load_ground_truth
from polarmask.structures.mask import segmentations_to_rles
from polarmask.utils.config import config_classes


@dataclass
class ImageGroundTruth:
    """The annotations of one image that belong to the classes, in json order.

    Attributes:
        labels: (G,) int64 labels in 0..C-1.
        crowd: (G,) bool, ``iscrowd`` annotations (regions whose detections are ignored).
        rles: G pycocotools RLEs of the segmentations.
        shape: (H, W) of the image in pixels.
    """

    labels: np.ndarray
    crowd: np.ndarray
    rles: list[dict]
    shape: tuple[int, int]


def mask_ious(dt_rles: Sequence[dict], gt_rles: Sequence[dict], gt_crowd: np.ndarray) -> np.ndarray:
    """Mask IoU of detections and ground truth, as COCO's ``segm`` evaluation computes it.

    Args:
        dt_rles: n RLEs of the detections.
        gt_rles: G RLEs of the ground truth.
        gt_crowd: (G,) bool; against a crowd region the IoU is the intersection over the
            detection's area.

    Returns:
        np.ndarray: (n, G) float64.
    """
    if not len(dt_rles) or not len(gt_rles):
        return np.zeros((len(dt_rles), len(gt_rles)))
    ious = mask_utils.iou(list(dt_rles), list(gt_rles), [int(c) for c in gt_crowd])
    return np.asarray(ious, dtype=np.float64).reshape(len(dt_rles), len(gt_rles))


class CocoGroundTruth:
    """Per-image ground truth of a COCO instances json, labelled by a list of class names.

    Args:
        ann_file: the COCO json.
        classes: class names in label order; None: every category of the json, in json order.

    Raises:
        FileNotFoundError: ``ann_file`` does not exist.
        KeyError: a class is not a category name of the json.
    """

    def __init__(self, ann_file: str, classes: Sequence[str] | None = None) -> None:
        if not os.path.isfile(ann_file):
            raise FileNotFoundError(
                f"annotation file '{ann_file}' does not exist: point the config at the json the "
                'results were computed on (--cfg-options test_evaluator.ann_file=...)'
            )
        # The ground truth CocoMetric evaluates against (missing fields filled, segmentations
        # the loader would drop left out), so the analyses agree with the metric.
        self.coco = load_ground_truth(ann_file, COCO)
        self.ann_file = ann_file
        name_to_id = {cat['name']: cat['id'] for cat in self.coco.dataset['categories']}
        if classes is None:
            classes = list(name_to_id)
        missing = [name for name in classes if name not in name_to_id]
        if missing:
            raise KeyError(
                f"classes {missing} are not category names of '{ann_file}' ({list(name_to_id)}); "
                'analyse against the json the dataset was built from'
            )
        self.classes = tuple(classes)
        self.cat_ids = [name_to_id[name] for name in self.classes]
        self._labels = {cat_id: label for label, cat_id in enumerate(self.cat_ids)}

    def image(self, img_id: int) -> ImageGroundTruth:
        """The ground truth of image ``img_id``.

        Raises:
            KeyError: the json has no image ``img_id``.
        """
        if img_id not in self.coco.imgs:
            raise KeyError(
                f"image id {img_id} is not in '{self.ann_file}': analyse the results against "
                'the json of the dataset they were computed on'
            )
        info = self.coco.imgs[img_id]
        anns = [a for a in self.coco.imgToAnns[img_id] if a['category_id'] in self._labels]
        height, width = int(info['height']), int(info['width'])
        return ImageGroundTruth(
            labels=np.array([self._labels[a['category_id']] for a in anns], dtype=np.int64),
            crowd=np.array([bool(a.get('iscrowd', 0)) for a in anns], dtype=bool),
            rles=segmentations_to_rles([a['segmentation'] for a in anns], height, width),
            shape=(height, width),
        )

    def match(
        self, results: Sequence[dict[str, Any]], source: str
    ) -> Iterator[tuple[dict[str, Any], ImageGroundTruth, np.ndarray]]:
        """Each result record with its image's ground truth and their mask IoUs.

        Args:
            results: records with ``img_id``, ``labels`` and ``masks`` (RLEs), see
                :func:`~polarmask.analysis.results.load_det_results`.
            source: the results file, for messages.

        Yields:
            tuple: the record, its :class:`ImageGroundTruth` and the (n, G) mask IoUs.

        Raises:
            ValueError: a record has a label outside the classes.
        """
        for index, record in enumerate(results):
            labels = np.asarray(record['labels'])
            if len(labels) and labels.max() >= len(self.classes):
                raise ValueError(
                    f"'{source}': result {index} (image id {record['img_id']}) has label "
                    f'{int(labels.max())} but there are {len(self.classes)} classes '
                    f'{self.classes}: analyse with the config the results were computed with'
                )
            gt = self.image(int(record['img_id']))
            yield record, gt, mask_ious(record['masks'], gt.rles, gt.crowd)


def config_dataset_meta(cfg: Config) -> dict[str, Any]:
    """The ``classes`` and ``ann_file`` a test run of ``cfg`` evaluates with, without its data.

    ``ann_file`` is that of the first ``CocoMetric`` of ``test_evaluator`` if it sets one, else
    the test dataset's (``data_root`` joined with ``ann_file``); ``classes`` is
    :func:`~polarmask.utils.config.config_classes` (None: the json's categories).

    Raises:
        KeyError: neither the evaluator nor the test dataset names an annotation file.
    """
    evaluators = cfg.get('test_evaluator') or []
    if isinstance(evaluators, dict):
        evaluators = [evaluators]
    ann_file = next((e.get('ann_file') for e in evaluators if e.get('type') == 'CocoMetric'), None)
    if not ann_file:
        dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
        while 'dataset' in dataset:
            dataset = dataset['dataset']
        if dataset.get('ann_file'):
            ann_file = os.path.join(dataset.get('data_root') or '', dataset['ann_file'])
    if not ann_file:
        raise KeyError(
            f"config '{cfg.filename}' names no annotation file: set test_evaluator.ann_file "
            'or test_dataloader.dataset.ann_file'
        )
    return dict(classes=config_classes(cfg), ann_file=ann_file)


def config_ground_truth(cfg: Config) -> CocoGroundTruth:
    """The :class:`CocoGroundTruth` a test run of ``cfg`` evaluates against."""
    meta = config_dataset_meta(cfg)
    return CocoGroundTruth(meta['ann_file'], meta['classes'])
