"""OpenCV drawing of polygons, boxes, labels and centres on BGR images.

Polygons are filled the way they are evaluated (vertices truncated to int by
``polarmask.structures.mask.truncate_vertices``), so what is drawn is what the metric scores.

Naming convention for shapes: n instances, R rays (polygon vertices), K contour points.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from polarmask.structures.mask import to_numpy, truncate_vertices

Color = tuple[int, int, int]

_GOLDEN_RATIO = 0.618033988749895
_TAG_FONT = cv2.FONT_HERSHEY_SIMPLEX

TAG_FONT_SCALES = (0.3, 0.6)
"""Smallest (still legible, text 8 px high) and largest font scale of the label tags."""


def get_palette(num_classes: int) -> list[Color]:
    """Distinct, deterministic BGR colours, one per class (golden-ratio hues)."""
    colors = []
    for index in range(num_classes):
        hue = int(((index * _GOLDEN_RATIO) % 1.0) * 180)
        hsv = np.array([[[hue, 200, 255]]], dtype=np.uint8)
        colors.append(tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]))
    return colors


def draw_polygons(
    img: np.ndarray,
    polygons: Sequence[np.ndarray],
    colors: Sequence[Color],
    alpha: float = 0.5,
    thickness: int = 2,
) -> np.ndarray:
    """Fill polygons translucently and outline them.

    Args:
        img: (H, W, 3) uint8 BGR image; not modified.
        polygons: n arrays (R, 2) of xy vertices in ``img`` pixels.
        colors: n BGR colours.
        alpha: Opacity of the fill (0 draws outlines only).
        thickness: Outline thickness in pixels (0 for none).

    Returns:
        np.ndarray: (H, W, 3) uint8 drawn copy.
    """
    canvas = img.copy()
    points = [truncate_vertices(p) for p in polygons if len(p) >= 3]
    point_colors = [c for p, c in zip(polygons, colors, strict=True) if len(p) >= 3]
    if alpha > 0 and points:
        overlay = canvas.copy()
        for pts, color in zip(points, point_colors, strict=True):
            cv2.fillPoly(overlay, [pts], color)
        canvas = cv2.addWeighted(overlay, alpha, canvas, 1 - alpha, 0)
    if thickness > 0:
        for pts, color in zip(points, point_colors, strict=True):
            cv2.polylines(canvas, [pts], True, color, thickness, cv2.LINE_AA)
    return canvas


def draw_boxes(
    img: np.ndarray, bboxes: np.ndarray, colors: Sequence[Color], thickness: int = 1
) -> np.ndarray:
    """Draw (n, 4) x1y1x2y2 boxes in place and return ``img``."""
    for box, color in zip(to_numpy(bboxes).reshape(-1, 4), colors, strict=True):
        x1, y1, x2, y2 = (int(v) for v in box)
        cv2.rectangle(img, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
    return img


def _tag_font_scales(boxes: np.ndarray, img_shape: tuple[int, ...]) -> np.ndarray:
    """(n,) font scales: the square root of each box's area / 150, within ``TAG_FONT_SCALES``
    and at most the image's shorter side / 1000 (0.3 for a 160 px image, 0.6 from 600 px)."""
    low, high = TAG_FONT_SCALES
    image_high = float(np.clip(min(img_shape[:2]) / 1000, low, high))
    sides = np.clip(boxes[:, 2:] - boxes[:, :2], 1, None)  # (n, 2)
    return np.clip(np.sqrt(sides.prod(axis=1)) / 150, low, image_high)


def tag_layout(
    boxes: np.ndarray, texts: Sequence[str], img_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the label tags of instances go and how large they are, in image pixels.

    The font scales with the instance and the image (``TAG_FONT_SCALES``; a 160 px image gets
    the smallest). Each tag, in the order given (e.g. by decreasing score), takes the first of
    these places, kept inside the image, that overlaps no tag placed before it (else the one
    that overlaps least): above its box, inside its top, below it, inside its bottom.

    Args:
        boxes: (n, 4) x1y1x2y2 boxes of the instances.
        texts: n tag texts.
        img_shape: (H, W, ...) of the image.

    Returns:
        tuple: ``corners`` (n, 2) int xy top-left corners, ``sizes`` (n, 2) int tag width and
        height (text plus a 1 px margin), ``scales`` (n,) font scales.
    """
    boxes = to_numpy(boxes).astype(np.float64).reshape(-1, 4)
    height, width = img_shape[:2]
    scales = _tag_font_scales(boxes, img_shape)
    sizes = np.zeros((len(boxes), 2), np.int64)
    for index, (text, scale) in enumerate(zip(texts, scales.tolist(), strict=True)):
        (text_w, text_h), baseline = cv2.getTextSize(text, _TAG_FONT, scale, 1)
        sizes[index] = (text_w + 2, text_h + baseline + 2)
    corners = np.zeros((len(boxes), 2), np.int64)
    placed = np.zeros((0, 4), np.int64)  # x1y1x2y2 of the tags placed so far
    for index, ((x1, y1, _, y2), (tag_w, tag_h)) in enumerate(zip(boxes, sizes, strict=True)):
        candidates = np.array(
            [(x1, y1 - tag_h), (x1, y1), (x1, y2 + 1), (x1, y2 - tag_h)], dtype=np.float64
        )
        candidates[:, 0] = candidates[:, 0].clip(0, max(width - tag_w, 0))
        candidates[:, 1] = candidates[:, 1].clip(0, max(height - tag_h, 0))
        candidates = candidates.astype(np.int64)  # (4, 2)
        lows = np.maximum(candidates[:, None], placed[None, :, :2])  # (4, placed, 2)
        highs = np.minimum(candidates[:, None] + (tag_w, tag_h), placed[None, :, 2:])
        overlaps = (highs - lows).clip(0, None).prod(axis=2).sum(axis=1)  # (4,)
        corners[index] = candidates[int(np.argmin(overlaps))]  # first place of least overlap
        placed = np.concatenate((placed, [[*corners[index], *(corners[index] + (tag_w, tag_h))]]))
    return corners, sizes, scales


def draw_texts(
    img: np.ndarray,
    boxes: np.ndarray,
    texts: Sequence[str],
    colors: Sequence[Color],
) -> np.ndarray:
    """Draw texts on filled colour tags beside their instances' boxes, laid out by
    :func:`tag_layout`; modifies ``img`` and returns it.

    Args:
        img: (H, W, 3) uint8 BGR image.
        boxes: (n, 4) x1y1x2y2 boxes of the instances the tags name.
        texts: n texts.
        colors: n BGR tag colours.
    """
    corners, sizes, scales = tag_layout(boxes, texts, img.shape)
    for (x, y), (tag_w, tag_h), scale, text, color in zip(
        corners.tolist(), sizes.tolist(), scales.tolist(), texts, colors, strict=True
    ):
        _, baseline = cv2.getTextSize(text, _TAG_FONT, scale, 1)
        cv2.rectangle(img, (x, y), (x + tag_w - 1, y + tag_h - 1), color, -1)
        cv2.putText(
            img,
            text,
            (x + 1, y + tag_h - 1 - baseline),
            _TAG_FONT,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return img


def draw_points(
    img: np.ndarray, points: np.ndarray, colors: Sequence[Color], radius: int = 3
) -> np.ndarray:
    """Draw (n, 2) xy points as filled circles in place and return ``img``."""
    for (x, y), color in zip(to_numpy(points).reshape(-1, 2), colors, strict=True):
        cv2.circle(img, (int(x), int(y)), radius, color, -1, cv2.LINE_AA)
    return img


def _label_texts(
    labels: np.ndarray, class_names: Sequence[str] | None, scores: np.ndarray | None
) -> list[str]:
    texts = []
    for index, label in enumerate(labels.tolist()):
        name = (
            class_names[label]
            if class_names is not None and label < len(class_names)
            else (f'class {label}')
        )
        texts.append(name if scores is None else f'{name} {float(scores[index]):.2f}')
    return texts


def draw_det_instances(
    img: np.ndarray,
    polygons: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    scores: torch.Tensor | np.ndarray | None = None,
    bboxes: torch.Tensor | np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    palette: Sequence[Color] | None = None,
    score_thr: float = 0.0,
    alpha: float = 0.5,
) -> np.ndarray:
    """Draw predicted instances: translucent polygons, outlines, optional boxes, class + score.

    Args:
        img: (H, W, 3) uint8 BGR image; not modified.
        polygons: (n, R, 2) xy vertices in ``img`` pixels.
        labels: (n,) labels in 0..C-1.
        scores: (n,) scores; instances below ``score_thr`` are not drawn.
        bboxes: (n, 4) x1y1x2y2 boxes to draw as well.
        class_names: C names for the tags (``'class i'`` otherwise).
        palette: C BGR colours (:func:`get_palette` otherwise).
        score_thr: Minimum score to draw.
        alpha: Fill opacity.

    Returns:
        np.ndarray: (H, W, 3) uint8 drawn copy.
    """
    polygons = to_numpy(polygons)
    labels = to_numpy(labels).astype(np.int64).reshape(-1)
    keep = np.ones(len(labels), dtype=bool)
    if scores is not None:
        scores = to_numpy(scores).reshape(-1)
        keep = scores >= score_thr
        scores = scores[keep]
    polygons, labels = polygons[keep], labels[keep]
    num_classes = max(len(class_names or ()), int(labels.max(initial=-1)) + 1)
    palette = list(palette) if palette is not None else get_palette(num_classes)
    colors = [tuple(int(c) for c in palette[label % len(palette)]) for label in labels]
    canvas = draw_polygons(img, list(polygons), colors, alpha=alpha)
    if bboxes is not None:
        draw_boxes(canvas, to_numpy(bboxes).reshape(-1, 4)[keep], colors)
    if len(labels):
        boxes = np.concatenate((polygons.min(axis=1), polygons.max(axis=1)), axis=1)
        draw_texts(canvas, boxes, _label_texts(labels, class_names, scores), colors)
    return canvas


def draw_gt_instances(
    img: np.ndarray,
    contours: Sequence[torch.Tensor | np.ndarray],
    labels: torch.Tensor | np.ndarray,
    centers: torch.Tensor | np.ndarray | None = None,
    bboxes: torch.Tensor | np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    palette: Sequence[Color] | None = None,
) -> np.ndarray:
    """Draw ground truth: contour outlines, optional boxes, mass centres and class names.

    Args:
        img: (H, W, 3) uint8 BGR image in the coordinates of the annotations; not modified.
        contours: n arrays (K, 2) of xy contour points.
        labels: (n,) labels in 0..C-1.
        centers: (n, 2) xy mass centres.
        bboxes: (n, 4) x1y1x2y2 boxes.
        class_names: C names.
        palette: C BGR colours.

    Returns:
        np.ndarray: (H, W, 3) uint8 drawn copy.
    """
    labels = to_numpy(labels).astype(np.int64).reshape(-1)
    contours = [to_numpy(c).reshape(-1, 2) for c in contours]
    num_classes = max(len(class_names or ()), int(labels.max(initial=-1)) + 1)
    palette = list(palette) if palette is not None else get_palette(num_classes)
    colors = [tuple(int(c) for c in palette[label % len(palette)]) for label in labels]
    canvas = draw_polygons(img, contours, colors, alpha=0.0)
    if bboxes is not None:
        draw_boxes(canvas, bboxes, colors)
    if centers is not None:
        draw_points(canvas, centers, colors)
    boxes = np.array(
        [
            np.concatenate((c.min(axis=0), c.max(axis=0))) if len(c) else (0.0,) * 4
            for c in contours
        ],
        dtype=np.float32,
    ).reshape(-1, 4)
    draw_texts(canvas, boxes, _label_texts(labels, class_names, None), colors)
    return canvas


def draw_rays(
    img: np.ndarray,
    points: torch.Tensor | np.ndarray,
    polygons: torch.Tensor | np.ndarray,
    colors: Sequence[Color],
    alpha: float = 0.5,
    thickness: int = 1,
) -> np.ndarray:
    """Draw the rays of points: a line from each point to each vertex of its polygon.

    Args:
        img: (H, W, 3) uint8 BGR image; not modified.
        points: (P, 2) xy ray origins in ``img`` pixels.
        polygons: (P, R, 2) xy ray ends (e.g. from ``rays_to_polygons``).
        colors: P BGR colours.
        alpha: Opacity of the lines.
        thickness: Line thickness in pixels.

    Returns:
        np.ndarray: (H, W, 3) uint8 drawn copy.
    """
    points = truncate_vertices(to_numpy(points).reshape(-1, 2))  # (P, 1, 2)
    if not len(points):
        return img.copy()
    ends = truncate_vertices(to_numpy(polygons).reshape(-1, 2)).reshape(len(points), -1, 1, 2)
    segments = np.concatenate(
        (np.broadcast_to(points[:, None], ends.shape), ends), axis=2
    )  # (P, R, 2, 2): start and end of each ray
    overlay = img.copy()
    for point_segments, color in zip(segments, colors, strict=True):
        cv2.polylines(overlay, list(point_segments), False, color, thickness, cv2.LINE_AA)
    return cv2.addWeighted(overlay, alpha, img, 1 - alpha, 0)


def draw_polar_targets(
    img: np.ndarray,
    contours: Sequence[torch.Tensor | np.ndarray],
    centers: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    pos_points: torch.Tensor | np.ndarray,
    pos_polygons: torch.Tensor | np.ndarray,
    pos_instances: torch.Tensor | np.ndarray,
    class_names: Sequence[str] | None = None,
    ray_alpha: float = 0.6,
    fade: float = 0.65,
) -> np.ndarray:
    """Draw the polar targets of an image: what each positive point learns to predict.

    The image is faded towards white; each instance gets its own colour: its contour, mass
    centre (large dot) and class name, its positive points (small dots) and their target rays
    to the contour. An instance without positive points, which nothing learns, is drawn all the
    same, its name followed by ``: no positive point``.

    Args:
        img: (H, W, 3) uint8 BGR network input; not modified.
        contours: G arrays (K, 2) of xy contour points.
        centers: (G, 2) xy mass centres.
        labels: (G,) labels in 0..C-1.
        pos_points: (P, 2) xy positive points.
        pos_polygons: (P, R, 2) xy ends of their target rays.
        pos_instances: (P,) index in 0..G-1 of the instance each positive is assigned to.
        class_names: C names (``'class i'`` otherwise).
        ray_alpha: Opacity of the rays.
        fade: How far the image is faded towards white (0 keeps it, 1 gives a white canvas).

    Returns:
        np.ndarray: (H, W, 3) uint8 drawn copy.
    """
    labels = to_numpy(labels).astype(np.int64).reshape(-1)
    palette = get_palette(len(labels))
    pos_instances = to_numpy(pos_instances).astype(np.int64).reshape(-1)
    learned = np.bincount(pos_instances, minlength=len(labels)) > 0  # (G,)
    names = [
        name if is_learned else f'{name}: no positive point'
        for name, is_learned in zip(
            _label_texts(labels, class_names, None), learned.tolist(), strict=True
        )
    ]
    pos_colors = [palette[index] for index in pos_instances.tolist()]
    faded = cv2.addWeighted(img, 1 - fade, np.full_like(img, 255), fade, 0)
    canvas = draw_rays(faded, pos_points, pos_polygons, pos_colors, alpha=ray_alpha)
    canvas = draw_gt_instances(
        canvas,
        contours,
        np.arange(len(labels)),
        centers=centers,
        class_names=names,
        palette=palette,
    )
    return draw_points(canvas, pos_points, pos_colors, radius=2)
