"""The ground truth of a COCO evaluation: every json the dataset loader accepts, made evaluable.

pycocotools needs fields that COCO files may lack and that ``CocoInsSegDataset`` does without
(``id``, ``iscrowd``, ``area`` of an annotation), and crashes on segmentations the loader
drops (empty, polygons with fewer than 3 points, NaN or far-away coordinates). The metric
reads the json through :func:`load_ground_truth` when the run starts, so what would fail at the
end of a training fails, or is repaired and logged, before it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections import defaultdict
from typing import Any

from mmengine.logging import print_log

from polarmask.structures.mask import is_rle, polygon_defect, segmentation_areas

_NUM_EXAMPLES = 3


def read_json(ann_file: str) -> dict:
    """The COCO json ``ann_file`` as a dict; errors name the file and the fix."""
    if not os.path.isfile(ann_file):
        raise FileNotFoundError(
            f"CocoMetric: ground-truth file '{ann_file}' does not exist: set the evaluator's "
            "ann_file (e.g. --cfg-options val_evaluator.ann_file=...) to the dataset's json"
        )
    try:
        with open(ann_file, encoding='utf-8') as file:
            raw = json.load(file)
    except ValueError as error:
        raise ValueError(
            f"CocoMetric: ground-truth file '{ann_file}' ({os.path.getsize(ann_file)} bytes) is "
            f'not valid JSON ({error}): write it again or point ann_file at the right file'
        ) from error
    if not isinstance(raw, dict) or not isinstance(raw.get('images'), list):
        raise ValueError(
            f"CocoMetric: '{ann_file}' is not a COCO instances json (an object with 'images', "
            "'annotations' and 'categories' lists): point the evaluator's ann_file at one"
        )
    return raw


def _segmentation(ann: dict, image: dict) -> tuple[Any, list[str]]:
    """The evaluable segmentation of an annotation (None: none) and the defects dropped."""
    segmentation = ann.get('segmentation')
    if is_rle(segmentation):
        return segmentation, []
    if not isinstance(segmentation, list) or not segmentation:
        return None, ['annotations without a segmentation']
    polygons, defects = [], []
    for polygon in segmentation:
        defect = polygon_defect(polygon, image['height'], image['width'])
        if defect is None:
            polygons.append(polygon)
        else:
            defects.append(f'{defect} dropped')
    if not polygons:
        defects.append('annotations without a valid polygon')
    return polygons or None, defects


def evaluable_ground_truth(raw: dict, ann_file: str) -> dict:
    """A copy of a COCO json that pycocotools evaluates without failing.

    Annotations get a unique ``id`` where they have none (or a repeated one) and ``iscrowd=0``
    where it is missing;
    polygons the dataset loader drops (:func:`~polarmask.structures.mask.polygon_defect`) are
    dropped, and annotations left without a segmentation are left out, as the loader leaves
    them out; a missing ``area`` becomes the mask's pixel count (what the loader filters by).
    Each repair is counted and logged once per kind with example annotations.

    Args:
        raw: the json, as :func:`read_json` returns it (not modified).
        ann_file: the json's path, for the messages.

    Returns:
        dict: the json with evaluable ``annotations``.
    """
    images = {image.get('id'): image for image in raw['images']}
    annotations = raw.get('annotations') or []
    taken = {ann['id'] for ann in annotations if isinstance(ann.get('id'), int)}
    next_id = max(taken, default=0) + 1
    counts: dict[str, list[str]] = defaultdict(list)
    evaluable, used_ids = [], set()
    for position, original in enumerate(annotations):
        ann = dict(original)
        where = f'annotation {ann.get("id", f"#{position}")} (image id {ann.get("image_id")})'
        image = images.get(ann.get('image_id'))
        if image is None or 'bbox' not in ann or 'category_id' not in ann:
            counts['annotations without a known image_id, a bbox or a category_id'].append(where)
            continue
        ann['segmentation'], defects = _segmentation(ann, image)
        for defect in defects:
            counts[defect].append(where)
        if ann['segmentation'] is None:
            continue
        if not isinstance(ann.get('id'), int) or ann['id'] in used_ids:
            ann['id'] = next_id
            next_id += 1
            counts['annotations given an id (none, or one used before)'].append(where)
        used_ids.add(ann['id'])
        ann.setdefault('iscrowd', 0)
        if 'area' not in ann:
            ann['area'] = float(
                segmentation_areas([ann['segmentation']], image['height'], image['width'])[0]
            )
            counts["annotations given their mask's area"].append(where)
        evaluable.append(ann)
    for what, examples in counts.items():
        more = ', ...' if len(examples) > _NUM_EXAMPLES else ''
        print_log(
            f"CocoMetric '{ann_file}': {what}: {len(examples)} "
            f'(e.g. {"; ".join(examples[:_NUM_EXAMPLES])}{more})',
            logger='current',
            level=logging.WARNING,
        )
    return dict(raw, annotations=evaluable)


def load_ground_truth(ann_file: str, coco_cls: type) -> Any:
    """A pycocotools-style ``COCO`` of :func:`evaluable_ground_truth` of ``ann_file``.

    Args:
        ann_file: the ground-truth json.
        coco_cls: the backend's ``COCO`` class (pycocotools or faster-coco-eval).

    Returns:
        the ``COCO`` object, indexed.
    """
    dataset = evaluable_ground_truth(read_json(ann_file), ann_file)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = coco_cls()
        coco.dataset = dataset
        coco.createIndex()
    return coco
