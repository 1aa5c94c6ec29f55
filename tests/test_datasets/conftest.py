"""Tiny COCO datasets written into ``tmp_path``: images whose pixels show the instances."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

CATEGORIES = [dict(id=5, name='square'), dict(id=2, name='blob'), dict(id=9, name='bar')]
COLORS = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255), (255, 0, 255)]


def polygon_mask(polygon: list[float], height: int, width: int) -> np.ndarray:
    rle = mask_utils.merge(mask_utils.frPyObjects([polygon], height, width))
    return mask_utils.decode(rle)


def scene() -> dict:
    """Image 1 (96 x 128): a crowd RLE first, then three polygons and a compressed RLE.

    Image 2 (80 x 60): one polygon. Each instance is painted into its image in its own colour.
    """
    h1, w1 = 96, 128
    crowd = np.zeros((h1, w1), np.uint8)
    crowd[60:90, 5:40] = 1
    # uncompressed RLE: column-major run lengths
    flat = crowd.flatten(order='F')
    changes = np.flatnonzero(np.diff(np.concatenate(([0], flat, [2]))) != 0)
    uncompressed = dict(size=[h1, w1], counts=np.diff(np.concatenate(([0], changes))).tolist())
    assert mask_utils.area(mask_utils.frPyObjects(uncompressed, h1, w1)) == crowd.sum()
    blob = np.zeros((h1, w1), np.uint8)
    cv2.circle(blob, (95, 65), 18, 1, -1)
    blob_rle = mask_utils.encode(np.asfortranarray(blob))
    blob_rle['counts'] = blob_rle['counts'].decode()
    anns = [
        dict(
            category_id=9,
            segmentation=uncompressed,
            iscrowd=1,
            bbox=[5, 60, 35, 30],
            area=float(crowd.sum()),
        ),
        dict(
            category_id=5,
            segmentation=[[10, 10, 50, 10, 50, 40, 10, 40]],
            bbox=[10, 10, 40, 30],
            area=1200.0,
            iscrowd=0,
        ),
        dict(
            category_id=2,
            segmentation=blob_rle,
            bbox=[77, 47, 37, 37],
            area=float(blob.sum()),
            iscrowd=0,
        ),
        # two polygons, the second one degenerate (2 points)
        dict(
            category_id=9,
            segmentation=[[60, 5, 120, 5, 120, 20, 60, 20], [1, 1, 3, 3]],
            bbox=[60, 5, 60, 15],
            area=900.0,
            iscrowd=0,
        ),
    ]
    images = [
        dict(id=11, file_name='a.jpg', height=h1, width=w1),
        dict(id=12, file_name='b.png', height=80, width=60),
    ]
    anns.append(
        dict(
            category_id=2,
            image_id=12,
            segmentation=[[10, 20, 50, 25, 30, 70]],
            bbox=[10, 20, 40, 50],
            area=1000.0,
            iscrowd=0,
        )
    )
    for index, ann in enumerate(anns):
        ann.setdefault('image_id', 11)
        ann['id'] = 100 + index
    return dict(images=images, annotations=anns, categories=CATEGORIES)


def paint_images(coco: dict, img_dir: Path) -> None:
    """Write each image with a grey background and every instance in its colour."""
    img_dir.mkdir(parents=True, exist_ok=True)
    for image in coco['images']:
        h, w = image['height'], image['width']
        img = np.full((h, w, 3), 128, np.uint8)
        anns = [a for a in coco['annotations'] if a['image_id'] == image['id']]
        for index, ann in enumerate(anns):
            segm = ann['segmentation']
            if isinstance(segm, list):
                valid = [p for p in segm if len(p) >= 6]
                mask = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(valid, h, w)))
            else:
                rle = (
                    segm if isinstance(segm['counts'], str) else mask_utils.frPyObjects(segm, h, w)
                )
                mask = mask_utils.decode(rle)
            img[mask.astype(bool)] = COLORS[index % len(COLORS)]
        cv2.imwrite(str(img_dir / image['file_name']), img)


def write_coco(root: Path, coco: dict, paint: bool = True, name: str = 'ann.json') -> str:
    """Write ``coco`` to ``root/annotations/name`` and its images to ``root/images``."""
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    (root / 'annotations' / name).write_text(json.dumps(coco))
    if paint:
        paint_images(coco, root / 'images')
    return f'annotations/{name}'


@pytest.fixture
def coco_root(tmp_path: Path) -> Path:
    write_coco(tmp_path, scene())
    return tmp_path


@pytest.fixture
def coco_tools() -> SimpleNamespace:
    """``scene()``, ``write(root, coco, paint=True, name='ann.json')`` and the instance colours."""
    return SimpleNamespace(scene=scene, write=write_coco, colors=COLORS)
