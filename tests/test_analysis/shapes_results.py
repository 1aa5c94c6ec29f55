"""Generated inputs of the analysis tests: shapes images whose ground truth polygons reproduce
exactly, and result records (as ``DumpDetResults`` writes them) built from those polygons.

Naming convention for shapes: n instances of one image, K contour points.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from polarmask.datasets.shapes_generator import SHAPE_CATEGORIES, make_shapes_dataset
from polarmask.structures.mask import masks_to_rles, polygon_to_mask, segmentations_to_masks
from polarmask.structures.polar import mask_contour

IMAGE_SIZE = (96, 128)  # (H, W)
LABELS = {category['id']: label for label, category in enumerate(SHAPE_CATEGORIES)}


def make_exact_shapes(root: Path, num_val: int = 8) -> Path:
    """A shapes val split whose every annotation is the filled largest contour of its mask.

    The contour (K, 2) is kept in the annotation as ``contour``, so a prediction with that
    polygon has mask IoU 1 with the ground truth.

    Returns:
        Path: the annotation json.
    """
    make_shapes_dataset(root, num_train=0, num_val=num_val, image_size=IMAGE_SIZE)
    ann_file = root / 'annotations' / 'instances_val.json'
    coco = json.loads(ann_file.read_text())
    for ann in coco['annotations']:
        mask = segmentations_to_masks([ann['segmentation']], *IMAGE_SIZE)[0]
        contour, _ = mask_contour(mask)
        exact = polygon_to_mask(contour, IMAGE_SIZE)
        (rle,) = masks_to_rles(exact[None])
        ann.update(
            segmentation=rle,
            area=int(exact.sum()),
            bbox=[float(v) for v in mask_utils.toBbox(rle)],
            contour=contour.tolist(),
        )
    ann_file.write_text(json.dumps(coco))
    return ann_file


def ground_truth_instances(root: Path) -> list[dict[str, Any]]:
    """Per image of :func:`make_exact_shapes`'s json, in json order: ``img_id``, ``img_path``,
    ``shape`` (H, W), ``polygons`` (n arrays (K, 2)) and ``labels`` (n ints)."""
    coco = json.loads((root / 'annotations' / 'instances_val.json').read_text())
    images = []
    for image in coco['images']:
        anns = [a for a in coco['annotations'] if a['image_id'] == image['id']]
        images.append(
            dict(
                img_id=image['id'],
                img_path=str(root / 'val' / image['file_name']),
                shape=(image['height'], image['width']),
                polygons=[np.array(a['contour'], dtype=np.float32) for a in anns],
                labels=[LABELS[a['category_id']] for a in anns],
            )
        )
    return images


def make_record(
    img_id: int,
    img_path: str,
    shape: tuple[int, int],
    polygons: list[np.ndarray],
    labels: list[int],
    scores: list[float] | None = None,
) -> dict[str, Any]:
    """A result record as ``DumpDetResults`` writes it; polygons of different lengths are
    padded with their last vertex (which fills the same pixels). Scores default to 0.9."""
    length = max([len(p) for p in polygons], default=36)
    padded = np.zeros((len(polygons), length, 2), dtype=np.float32)  # (n, K, 2)
    for index, polygon in enumerate(polygons):
        padded[index] = np.concatenate((polygon, np.repeat(polygon[-1:], length - len(polygon), 0)))
    masks = [polygon_to_mask(p, shape) for p in padded]
    return dict(
        img_id=img_id,
        img_path=img_path,
        ori_shape=tuple(shape),
        bboxes=np.array([[*p.min(axis=0), *p.max(axis=0)] for p in padded], np.float32).reshape(
            -1, 4
        ),
        scores=np.array([0.9] * len(polygons) if scores is None else scores, dtype=np.float32),
        labels=np.array(labels, dtype=np.int64),
        polygons=padded,
        masks=masks_to_rles(np.array(masks, dtype=np.uint8).reshape(-1, *shape)),
    )


def perfect_results(root: Path) -> list[dict[str, Any]]:
    """One record per image with exactly the ground truth, score 0.9."""
    return [
        make_record(i['img_id'], i['img_path'], i['shape'], i['polygons'], i['labels'])
        for i in ground_truth_instances(root)
    ]


def write_pkl(path: Path, results: list[dict[str, Any]]) -> Path:
    with open(path, 'wb') as file:
        pickle.dump(results, file)
    return path


def perturbed_results(root: Path, seed: int = 0) -> list[dict[str, Any]]:
    """Records with every kind of error: instances kept, scaled about their centre (IoU from
    about 0.3 to 1), dropped, relabelled or duplicated, plus a false positive per image; all
    scores distinct."""
    rng = np.random.default_rng(seed)
    num_classes = len(SHAPE_CATEGORIES)
    results = []
    for image in ground_truth_instances(root):
        polygons, labels = [], []
        for polygon, label in zip(image['polygons'], image['labels'], strict=True):
            action = rng.choice(['keep', 'scale', 'drop', 'relabel', 'duplicate'])
            if action == 'drop':
                continue
            centre = polygon.mean(axis=0)
            if action == 'scale':
                polygon = centre + (polygon - centre) * rng.uniform(0.55, 1.2)
            if action == 'relabel':
                label = int((label + rng.integers(1, num_classes)) % num_classes)
            polygons.append(polygon)
            labels.append(label)
            if action == 'duplicate':
                polygons.append(centre + (polygon - centre) * 0.9)
                labels.append(label)
        height, width = image['shape']
        corner = rng.uniform((5, 5), (width - 25, height - 25))
        polygons.append(corner + np.array([[0, 0], [20, 0], [20, 20], [0, 20]], np.float32))
        labels.append(int(rng.integers(num_classes)))
        scores = rng.permutation(len(labels)) / (len(labels) + 1) + 0.05
        results.append(
            make_record(
                image['img_id'], image['img_path'], image['shape'], polygons, labels, scores
            )
        )
    return results


def coco_json_results(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records as COCO ``segm`` result records (category ids of the shapes json)."""
    cat_ids = [category['id'] for category in SHAPE_CATEGORIES]
    return [
        dict(
            image_id=record['img_id'],
            category_id=cat_ids[label],
            segmentation=mask,
            score=float(score),
        )
        for record in results
        for label, score, mask in zip(
            record['labels'].tolist(), record['scores'], record['masks'], strict=True
        )
    ]
