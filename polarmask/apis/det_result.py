"""The inference API's result type and its drawing.

Naming convention for shapes: n detections of one image, R rays, C classes, H x W the original
image.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polarmask.visualization.draw import Color, draw_det_instances


@dataclass
class DetectionResult:
    """Detections of one image, in pixels of the original image, by decreasing score.

    Attributes:
        bboxes: (n, 4) float32 x1, y1, x2, y2 (inclusive ``+1`` convention).
        scores: (n,) float32 ``class probability x (centerness + centerness_factor)``.
        labels: (n,) int64 labels in 0..C-1.
        polygons: (n, R, 2) float32 polygon vertices (x, y), vertex k on ray k.
        masks: n COCO RLEs ``dict(size=[H, W], counts=str)`` of the rasterised polygons.
        classes: the C class names of the model.
        ori_shape: (H, W) of the image.
        img_path: the image file, or None for an array.
    """

    bboxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    polygons: np.ndarray
    masks: list[dict]
    classes: tuple[str, ...]
    ori_shape: tuple[int, int]
    img_path: str | None = None

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def class_names(self) -> list[str]:
        """The class name of each detection, (n,)."""
        return [self.classes[label] for label in self.labels.tolist()]

    def subset(self, keep: np.ndarray) -> DetectionResult:
        """The detections at ``keep``: an (n,) bool mask or integer indices, in their order."""
        keep = np.asarray(keep)
        indices = np.flatnonzero(keep) if keep.dtype == bool else keep.astype(np.int64)
        return DetectionResult(
            bboxes=self.bboxes[indices],
            scores=self.scores[indices],
            labels=self.labels[indices],
            polygons=self.polygons[indices],
            masks=[self.masks[index] for index in indices.tolist()],
            classes=self.classes,
            ori_shape=self.ori_shape,
            img_path=self.img_path,
        )

    def select(self, score_thr: float) -> DetectionResult:
        """The detections whose score is at least ``score_thr``."""
        return self.subset(self.scores >= score_thr)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of plain lists (see the attributes) plus ``class_names``."""
        height, width = self.ori_shape
        return dict(
            img_path=self.img_path,
            height=height,
            width=width,
            classes=list(self.classes),
            labels=self.labels.tolist(),
            class_names=self.class_names,
            scores=self.scores.tolist(),
            bboxes=self.bboxes.tolist(),
            polygons=self.polygons.tolist(),
            masks=copy.deepcopy(self.masks),
        )


def draw_result(
    img: np.ndarray,
    result: DetectionResult,
    score_thr: float = 0.3,
    palette: Sequence[Color] | None = None,
    alpha: float = 0.5,
) -> np.ndarray:
    """Draw a result on its image: translucent masks, outlines, class names and scores.

    Args:
        img: (H, W, 3) uint8 BGR original image; not modified.
        result: the image's :class:`DetectionResult`.
        score_thr: minimum score of the drawn detections.
        palette: one BGR colour per class (golden-ratio hues by default).
        alpha: opacity of the filled masks.

    Returns:
        np.ndarray: (H, W, 3) uint8 drawn copy.
    """
    return draw_det_instances(
        img,
        result.polygons,
        result.labels,
        scores=result.scores,
        class_names=result.classes,
        palette=palette,
        score_thr=score_thr,
        alpha=alpha,
    )
