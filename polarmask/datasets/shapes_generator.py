"""The embedded demo data: a synthetic instance-segmentation set of shapes in COCO format.

:func:`make_shapes_dataset` draws images of solid or gradient-coloured shapes (ellipses, triangles,
rectangles, hexagons, five-point stars, crosses) on textured backgrounds and writes them with
COCO json annotations of the part of each shape that stays visible::

    out_dir/
      train/000001.jpg ...
      val/000001.jpg ...
      annotations/instances_train.json
      annotations/instances_val.json

Every shape is star-shaped around its centre, so a polygon of rays from the mass centre (PolarMask's
representation) fits it well. Later shapes occlude earlier ones; a shape is only drawn where every
shape under it keeps at least ``min_visible`` of its area, so each visible shape is annotated.
Most instances are polygons; every ``rle_every``-th annotation is a compressed RLE and the first RLE
of a split is uncompressed, so loaders meet all three COCO encodings. Category ids are not
contiguous (1, 2, 3, 5, 8, 13). Image k of a split is drawn from its own seed ``(seed, split, k)``,
so it does not depend on the size of the split and the output is byte-identical for one seed.

:class:`~polarmask.datasets.shapes.ShapesDataset` loads it, generating it on first use.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from mmengine.logging import print_log

from polarmask.structures.mask import masks_to_rles, segmentation_areas

SHAPE_CATEGORIES: tuple[dict[str, Any], ...] = (
    dict(id=1, name='ellipse', supercategory='round'),
    dict(id=2, name='triangle', supercategory='convex'),
    dict(id=3, name='rectangle', supercategory='convex'),
    dict(id=5, name='hexagon', supercategory='convex'),
    dict(id=8, name='star', supercategory='concave'),
    dict(id=13, name='cross', supercategory='concave'),
)
SHAPES_CLASSES: tuple[str, ...] = tuple(cat['name'] for cat in SHAPE_CATEGORIES)
SPLITS: tuple[str, ...] = ('train', 'val')

_ELLIPSE_VERTICES = 90
_FILL_SHIFT = 4  # sub-pixel bits for cv2.fillPoly
_MAX_PLACEMENT_TRIES = 20
_MAX_COLOR_TRIES = 12
_MIN_COLOR_DISTANCE = 70.0  # BGR L2 between a shape and its background or earlier shapes


def annotation_paths(root: str | Path) -> dict[str, Path]:
    """Annotation file of each split under a dataset root: ``{split: root/annotations/...}``."""
    return {split: Path(root) / 'annotations' / f'instances_{split}.json' for split in SPLITS}


def make_shapes_dataset(
    out_dir: str | Path,
    num_train: int = 1000,
    num_val: int = 100,
    seed: int = 0,
    image_size: tuple[int, int] | None = None,
    side_range: tuple[int, int] = (192, 320),
    object_size: tuple[float, float] = (0.2, 0.45),
    num_objects: tuple[int, int] = (1, 6),
    min_visible: float = 0.6,
    min_area: int = 100,
    rle_every: int = 4,
    img_format: str = 'jpg',
    jpeg_quality: int = 90,
    force: bool = False,
) -> dict[str, Any]:
    """Generate the shapes dataset into ``out_dir`` unless a complete one is already there.

    The dataset is written to a sibling ``<out_dir>.tmp-<pid>-<random>`` and renamed into place, so
    ``out_dir`` either does not exist or holds a complete dataset. Concurrent callers are safe: each
    generates on its own, the first rename wins and the others discard their copy.

    Args:
        out_dir: Dataset root to create.
        num_train: Images in the train split.
        num_val: Images in the val split.
        seed: Seed of the whole dataset; image k of a split uses ``(seed, split index, k)``.
        image_size: Fixed (H, W) of every image in pixels; None draws H and W from ``side_range``.
        side_range: Inclusive range in pixels of each image side when ``image_size`` is None.
        object_size: Range of a shape's outer diameter as a fraction of the shorter image side.
        num_objects: Inclusive range of shapes attempted per image; a shape that cannot be placed
            without hiding too much of another in ``_MAX_PLACEMENT_TRIES`` tries is left out.
        min_visible: Fraction of its area each shape keeps visible (occlusion and image border).
        min_area: Visible pixels each shape keeps.
        rle_every: Every ``rle_every``-th annotation id is an RLE (the split's first one
            uncompressed); 0 writes polygons only.
        img_format: 'jpg' or 'png'.
        jpeg_quality: JPEG quality (0-100) when ``img_format`` is 'jpg'.
        force: Regenerate even when a complete dataset exists (it is replaced atomically).

    Returns:
        dict: ``root``, ``generated`` (False when an existing dataset was kept), and per split
        (dicts keyed by 'train', 'val') ``ann_files``, ``img_dirs``, ``num_images`` and
        ``num_instances``.
    """
    if img_format not in ('jpg', 'png'):
        raise ValueError(f"img_format must be 'jpg' or 'png' (got {img_format!r})")
    if min(num_train, num_val) < 0:
        raise ValueError(f'num_train and num_val must be >= 0 (got {num_train}, {num_val})')
    _check_range('side_range', side_range, 16)
    _check_range('num_objects', num_objects, 0)
    if not 0 < object_size[0] <= object_size[1] <= 1:
        raise ValueError(f'object_size must satisfy 0 < low <= high <= 1 (got {object_size})')
    out_dir = Path(out_dir)
    params = dict(
        num_train=num_train,
        num_val=num_val,
        seed=seed,
        image_size=None if image_size is None else list(image_size),
        side_range=list(side_range),
        object_size=list(object_size),
        num_objects=list(num_objects),
        min_visible=min_visible,
        min_area=min_area,
        rle_every=rle_every,
        img_format=img_format,
        jpeg_quality=jpeg_quality,
    )
    if _is_complete(out_dir) and not force:
        return _summary(out_dir, generated=False, requested=params)
    if out_dir.exists() and not _is_complete(out_dir) and any(out_dir.iterdir()):
        raise FileExistsError(
            f"'{out_dir}' exists but is not a shapes dataset (no annotations/instances_train.json "
            'and instances_val.json): remove it or choose another output folder'
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(
        tempfile.mkdtemp(prefix=f'{out_dir.name}.tmp-{os.getpid()}-', dir=out_dir.parent)
    )
    try:
        for split_index, (split, num_images) in enumerate(
            zip(SPLITS, (num_train, num_val), strict=True)
        ):
            _write_split(tmp_dir, split, split_index, num_images, params)
        _move_into_place(tmp_dir, out_dir, replace=force)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return _summary(out_dir, generated=True, requested=params)


def _check_range(name: str, value: tuple[int, int], minimum: int) -> None:
    if not minimum <= value[0] <= value[1]:
        raise ValueError(f'{name} must satisfy {minimum} <= low <= high (got {tuple(value)})')


def _is_complete(root: Path) -> bool:
    return all(path.is_file() for path in annotation_paths(root).values())


def _move_into_place(tmp_dir: Path, out_dir: Path, replace: bool) -> None:
    """Rename ``tmp_dir`` to ``out_dir``; a complete ``out_dir`` won by another caller is kept."""
    old_dir = Path(f'{tmp_dir}.old')
    if replace and out_dir.exists():
        out_dir.rename(old_dir)
    elif out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
    try:
        tmp_dir.rename(out_dir)
    except OSError:
        if not _is_complete(out_dir):
            raise
    shutil.rmtree(old_dir, ignore_errors=True)


def _summary(root: Path, generated: bool, requested: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = dict(
        root=str(root),
        generated=generated,
        ann_files={},
        img_dirs={},
        num_images={},
        num_instances={},
    )
    for split, ann_file in annotation_paths(root).items():
        with open(ann_file, encoding='utf-8') as f:
            coco = json.load(f)
        summary['ann_files'][split] = str(ann_file)
        summary['img_dirs'][split] = str(root / split)
        summary['num_images'][split] = len(coco['images'])
        summary['num_instances'][split] = len(coco['annotations'])
        differences = generator_differences(coco, requested)
        if not generated and split == 'train' and differences:
            print_log(
                f"kept the shapes dataset in '{root}', made with {', '.join(differences)}: "
                'pass force=True (--force) to regenerate it',
                logger='current',
                level=logging.WARNING,
            )
    return summary


def generator_differences(coco: dict[str, Any], requested: dict[str, Any]) -> list[str]:
    """``'key=stored (asked for value)'`` for each requested generator setting that differs.

    Args:
        coco: a loaded annotation file of this generator (settings in ``info.generator``).
        requested: settings of :func:`make_shapes_dataset`; tuples compare equal to stored lists.
    """
    stored = coco.get('info', {}).get('generator') or {}
    differences = []
    for key, value in requested.items():
        value = list(value) if isinstance(value, tuple) else value
        if stored.get(key) != value:
            differences.append(f'{key}={stored.get(key)!r} (asked for {value!r})')
    return differences


def _write_split(
    root: Path, split: str, split_index: int, num_images: int, params: dict[str, Any]
) -> None:
    img_dir = root / split
    img_dir.mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for index in range(num_images):
        rng = np.random.default_rng([params['seed'], split_index, index])
        img, instances = render_image(rng, **_render_kwargs(params, rng))
        height, width = img.shape[:2]
        image_id = index + 1
        file_name = f'{image_id:06d}.{params["img_format"]}'
        _write_image(img_dir / file_name, img, params)
        images.append(dict(id=image_id, file_name=file_name, height=height, width=width))
        for category_id, mask in instances:
            ann_id = len(annotations) + 1
            rle_every = params['rle_every']
            encoding = 'polygon'
            if rle_every and ann_id % rle_every == 0:
                encoding = 'uncompressed' if ann_id == rle_every else 'rle'
            ann = encode_instance(mask, encoding)
            if ann is None:  # no part with 3 contour points: keep the pixels as an RLE
                ann = encode_instance(mask, 'rle')
            ann.update(id=ann_id, image_id=image_id, category_id=category_id, iscrowd=0)
            annotations.append(ann)
    coco = dict(
        info=dict(
            description='polarmask synthetic shapes (polarmask.datasets.shapes)',
            version='1.0',
            generator=params,
        ),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[dict(cat) for cat in SHAPE_CATEGORIES],
    )
    ann_file = annotation_paths(root)[split]
    ann_file.parent.mkdir(parents=True, exist_ok=True)
    ann_file.write_text(json.dumps(coco, separators=(',', ':')), encoding='utf-8')


def _render_kwargs(params: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    if params['image_size'] is not None:
        height, width = params['image_size']
    else:
        low, high = params['side_range']
        height, width = (int(side) for side in rng.integers(low, high + 1, size=2))
    return dict(
        height=height,
        width=width,
        object_size=tuple(params['object_size']),
        num_objects=tuple(params['num_objects']),
        min_visible=params['min_visible'],
        min_area=params['min_area'],
    )


def _write_image(path: Path, img: np.ndarray, params: dict[str, Any]) -> None:
    if params['img_format'] == 'jpg':
        options = [cv2.IMWRITE_JPEG_QUALITY, params['jpeg_quality']]
    else:
        options = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, encoded = cv2.imencode(f'.{params["img_format"]}', img, options)
    if not ok:
        raise OSError(f"OpenCV could not encode image '{path}'")
    path.write_bytes(encoded.tobytes())


def render_image(
    rng: np.random.Generator,
    height: int,
    width: int,
    object_size: tuple[float, float] = (0.2, 0.45),
    num_objects: tuple[int, int] = (1, 6),
    min_visible: float = 0.6,
    min_area: int = 100,
) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Draw one image of shapes on a textured background.

    Args:
        rng: Source of all randomness of this image.
        height: Image height in pixels.
        width: Image width in pixels.
        object_size, num_objects, min_visible, min_area: See :func:`make_shapes_dataset`.

    Returns:
        tuple: the (H, W, 3) uint8 BGR image and, bottom to top, one ``(category_id, mask)`` per
        shape, where ``mask`` is the (H, W) bool mask of its visible pixels; masks do not overlap.
    """
    canvas = _background(rng, height, width)
    shapes: list[dict[str, Any]] = []
    for _ in range(int(rng.integers(num_objects[0], num_objects[1] + 1))):
        category_index = int(rng.integers(len(SHAPE_CATEGORIES)))
        placed = _place_shape(
            rng, category_index, shapes, height, width, object_size, min_visible, min_area
        )
        if placed is None:
            continue
        for shape in shapes:
            shape['mask'] &= ~placed['mask']
        placed['color'] = _paint_shape(rng, canvas, placed['mask'], shapes)
        shapes.append(placed)
    canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * rng.uniform(2.0, 8.0)
    img = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return img, [(SHAPE_CATEGORIES[s['category']]['id'], s['mask']) for s in shapes]


def _place_shape(
    rng: np.random.Generator,
    category_index: int,
    shapes: list[dict[str, Any]],
    height: int,
    width: int,
    object_size: tuple[float, float],
    min_visible: float,
    min_area: int,
) -> dict[str, Any] | None:
    """Try positions until the new shape hides at most ``1 - min_visible`` of any shape below."""
    for _ in range(_MAX_PLACEMENT_TRIES):
        radius = rng.uniform(*object_size) * min(height, width) / 2
        vertices = shape_vertices(SHAPE_CATEGORIES[category_index]['name'], rng)
        angle = rng.uniform(0.0, 2 * math.pi)
        rotation = np.array(
            [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
        )
        margin = 0.7 * radius
        center = rng.uniform((margin, margin), (width - margin, height - margin))
        vertices = vertices @ rotation.T * radius + center  # (V, 2)
        area = abs(cv2.contourArea(vertices.astype(np.float32)))
        mask = np.zeros((height, width), dtype=np.uint8)
        fixed = np.rint(vertices * (1 << _FILL_SHIFT)).astype(np.int32)
        cv2.fillPoly(mask, [fixed], 1, lineType=cv2.LINE_8, shift=_FILL_SHIFT)
        mask = mask.astype(bool)
        visible = int(mask.sum())
        if visible < max(min_area, min_visible * area):
            continue
        if all(_stays_visible(s, mask, min_visible, min_area) for s in shapes):
            return dict(category=category_index, mask=mask, area=area)
    return None


def _stays_visible(
    shape: dict[str, Any], cover: np.ndarray, min_visible: float, min_area: int
) -> bool:
    """Whether ``shape`` keeps enough visible pixels, and no hole, under the (H, W) ``cover``."""
    if not np.any(shape['mask'] & cover):
        return True
    visible = shape['mask'] & ~cover
    kept = int(np.count_nonzero(visible))
    if kept < min_area or kept < min_visible * shape['area']:
        return False
    _, hierarchy = cv2.findContours(
        visible.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE
    )
    return hierarchy is None or bool(np.all(hierarchy[0, :, 3] < 0))


def shape_vertices(name: str, rng: np.random.Generator) -> np.ndarray:
    """Vertices of a random shape of one category, centred at 0 with outer radius about 1.

    Returns:
        np.ndarray: (V, 2) float64 polygon (x, y), star-shaped around the origin.
    """
    if name == 'ellipse':
        theta = np.linspace(0.0, 2 * math.pi, _ELLIPSE_VERTICES, endpoint=False)
        return np.stack((np.cos(theta), rng.uniform(0.5, 1.0) * np.sin(theta)), axis=-1)
    if name == 'triangle':
        theta = np.array([0.0, 2 * math.pi / 3, 4 * math.pi / 3])
        theta[1:] += rng.uniform(-0.25, 0.25, size=2)
        return _polar_vertices(theta, rng.uniform(0.8, 1.0, size=3))
    if name == 'rectangle':
        half_angle = math.atan(rng.uniform(0.4, 1.0))
        half_w, half_h = math.cos(half_angle), math.sin(half_angle)
        return np.array(
            [[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]]
        )
    if name == 'hexagon':
        return _polar_vertices(np.arange(6) * math.pi / 3, np.ones(6))
    if name == 'star':
        radii = np.tile([1.0, rng.uniform(0.42, 0.55)], 5)
        return _polar_vertices(np.arange(10) * math.pi / 5, radii)
    if name == 'cross':
        arm = rng.uniform(0.28, 0.4)
        arm_end = np.array(
            [[1.0, -arm], [1.0, arm], [arm, arm], [arm, 1.0]]
        )  # a quarter of the outline
        quarter_turn = np.array([[0.0, -1.0], [1.0, 0.0]])
        return np.concatenate(
            [arm_end @ np.linalg.matrix_power(quarter_turn, k).T for k in range(4)]
        )
    raise ValueError(f'unknown shape {name!r}: use one of {SHAPES_CLASSES}')


def _polar_vertices(theta: np.ndarray, radii: np.ndarray) -> np.ndarray:
    return np.stack((radii * np.cos(theta), radii * np.sin(theta)), axis=-1)


def _random_color(rng: np.random.Generator, saturation: tuple[float, float]) -> np.ndarray:
    """A BGR colour (3,) float32 in [0, 255] of random hue and value, saturation in a range."""
    hsv = [[[rng.uniform(0, 360), rng.uniform(*saturation), rng.uniform(0.35, 1.0)]]]
    return cv2.cvtColor(np.array(hsv, dtype=np.float32), cv2.COLOR_HSV2BGR)[0, 0] * 255


def _linear_ramp(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A (H, W, 1) float32 ramp from 0 to 1 along a random direction."""
    angle = rng.uniform(0.0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = xs * math.cos(angle) + ys * math.sin(angle)
    ramp -= ramp.min()
    return (ramp / max(float(ramp.max()), 1.0))[..., None]


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A (H, W, 3) float32 BGR texture: a gradient mixed with stripes, soft blobs and noise."""
    low, high = _random_color(rng, (0.0, 0.6)), _random_color(rng, (0.0, 0.6))
    canvas = low + (high - low) * _linear_ramp(rng, height, width)
    if rng.random() < 0.5:
        angle = rng.uniform(0.0, math.pi)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        phase = (xs * math.cos(angle) + ys * math.sin(angle)) * (2 * math.pi / rng.uniform(6, 40))
        wave = np.sin(phase + rng.uniform(0, 2 * math.pi))
        if rng.random() < 0.5:
            wave = np.sign(wave)
        alpha = rng.uniform(0.1, 0.4) * (0.5 + 0.5 * wave)[..., None]
        canvas = canvas * (1 - alpha) + _random_color(rng, (0.0, 0.8)) * alpha
    if rng.random() < 0.6:
        blobs = np.zeros((height, width, 3), dtype=np.float32)
        weight = np.zeros((height, width), dtype=np.float32)
        for _ in range(int(rng.integers(2, 7))):
            center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            axes = (int(rng.integers(8, width // 3)), int(rng.integers(8, height // 3)))
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(
                blobs, center, axes, angle, 0, 360, _random_color(rng, (0.0, 0.7)).tolist(), -1
            )
            cv2.ellipse(weight, center, axes, angle, 0, 360, 1.0, -1)
        sigma = rng.uniform(4.0, 12.0)
        weight = cv2.GaussianBlur(weight, (0, 0), sigma)[..., None]
        blobs = cv2.GaussianBlur(blobs, (0, 0), sigma) / np.maximum(weight, 1e-3)
        alpha = weight * rng.uniform(0.4, 0.8)
        canvas = canvas * (1 - alpha) + blobs * alpha
    if rng.random() < 0.5:
        cell = int(rng.integers(4, 17))
        coarse = rng.normal(
            0.0, rng.uniform(8, 25), size=(height // cell + 2, width // cell + 2, 3)
        )
        canvas += cv2.resize(
            coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC
        )
    return np.clip(canvas, 0, 255).astype(np.float32)


def _paint_shape(
    rng: np.random.Generator, canvas: np.ndarray, mask: np.ndarray, shapes: list[dict[str, Any]]
) -> np.ndarray:
    """Fill ``mask`` on ``canvas`` in place with a solid or gradient colour that stands out.

    The colour is redrawn until it is far from the background under the shape and from the
    colours of the shapes already drawn.

    Returns:
        np.ndarray: (3,) the shape's main BGR colour.
    """
    x0, y0, box_w, box_h = cv2.boundingRect(mask.view(np.uint8))
    y1, x1 = y0 + box_h, x0 + box_w
    region, inside = canvas[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    avoid = [region[inside].mean(axis=0)] + [s['color'] for s in shapes]
    best, best_distance = None, -1.0
    for _ in range(_MAX_COLOR_TRIES):
        color = _random_color(rng, (0.45, 1.0))
        distance = min(float(np.linalg.norm(color - other)) for other in avoid)
        if distance > best_distance:
            best, best_distance = color, distance
        if distance >= _MIN_COLOR_DISTANCE:
            break
    if rng.random() < 0.5:
        fill = np.broadcast_to(best, region.shape)
    else:
        shift = rng.uniform(-40.0, 40.0, size=3).astype(np.float32)
        fill = best + shift * (_linear_ramp(rng, y1 - y0, x1 - x0) - 0.5)
    region[inside] = fill[inside]
    return best


def encode_instance(mask: np.ndarray, encoding: str = 'polygon') -> dict[str, Any] | None:
    """COCO ``segmentation``, ``area`` and ``bbox`` of one visible-instance mask.

    Polygons are the outer contours (``cv2.CHAIN_APPROX_SIMPLE``) of every part with at least 3
    points, the largest first, their vertices at pixel centres (+0.5) so that pycocotools
    rasterises them inside the mask. ``area`` is the pixel count of the mask the segmentation
    decodes to; ``bbox`` (x, y, w, h) spans the pixels of ``mask`` (w = x_max - x_min + 1).

    Args:
        mask: (H, W) bool or uint8 mask.
        encoding: 'polygon', 'rle' (compressed, counts as str) or 'uncompressed' (counts as a
            list of run lengths, column-major, starting with a run of zeros).

    Returns:
        dict | None: ``segmentation``, ``area``, ``bbox``; None when the mask has no polygon of
        3 or more points (polygon encoding) or no pixel.
    """
    mask = np.ascontiguousarray(mask != 0, dtype=np.uint8)
    height, width = mask.shape
    num_pixels = int(np.count_nonzero(mask))
    if not num_pixels:
        return None
    bbox = [float(v) for v in cv2.boundingRect(mask)]
    if encoding == 'polygon':
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        contours = sorted((c for c in contours if len(c) >= 3), key=cv2.contourArea, reverse=True)
        if not contours:
            return None
        segmentation: Any = [(c.reshape(-1) + 0.5).tolist() for c in contours]
        (area,) = segmentation_areas([segmentation], height, width)
    elif encoding == 'rle':
        (rle,) = masks_to_rles(mask[None])
        segmentation = dict(size=[height, width], counts=rle['counts'])
        area = num_pixels
    elif encoding == 'uncompressed':
        flat = mask.ravel(order='F')
        edges = np.concatenate(([0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]))
        counts = np.diff(edges).tolist()
        if flat[0]:
            counts = [0, *counts]
        segmentation = dict(size=[height, width], counts=counts)
        area = num_pixels
    else:
        raise ValueError(f"encoding must be 'polygon', 'rle' or 'uncompressed' (got {encoding!r})")
    return dict(segmentation=segmentation, area=area, bbox=bbox)
