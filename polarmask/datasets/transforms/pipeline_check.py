"""Refuse, when a dataset builds its pipeline, transforms that would leave the annotations behind.

Configs can name any transform of mmcv (and of mmdetection, when installed) as well as ours. Those
that change the image's geometry without knowing instance masks and contours (mmcv's
``CenterCrop``, its own ``Resize``, ...) would crop or scale the image but not ``gt_masks``, so the
targets would silently stop matching the image. A pipeline that loads annotations may therefore
only hold transforms that declare ``keeps_annotations_aligned = True`` (all of polarmask's do:
they move ``gt_bboxes``, ``gt_masks`` and ``gt_contours`` with the image, or leave the geometry
alone), mmcv's transforms that change pixel values only, and mmcv's wrappers of such transforms
(``Compose``, ``RandomApply``, ``RandomChoice``, ``RandomChoiceResize``, ``RandomResize``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mmcv.transforms import (
    Compose,
    ImageToTensor,
    Normalize,
    RandomApply,
    RandomChoice,
    RandomChoiceResize,
    RandomGrayscale,
    ToTensor,
)
from mmcv.transforms import RandomResize as MMCVRandomResize

from polarmask.datasets.transforms.loading import LoadAnnotations

PIXEL_ONLY_TRANSFORMS = (ImageToTensor, Normalize, RandomGrayscale, ToTensor)
"""mmcv's transforms that change pixel values only: nothing to keep aligned."""


def _wrapped(transform: Callable) -> list[Callable] | None:
    """The transforms an mmcv wrapper applies, or None when ``transform`` is no wrapper."""
    if isinstance(transform, (Compose, RandomApply)):
        return list(transform)
    if isinstance(transform, RandomChoice):
        return [inner for choice in transform for inner in choice]
    if isinstance(transform, (RandomChoiceResize, MMCVRandomResize)):
        return [transform.resize]
    return None


def _misaligning(transform: Callable) -> list[str]:
    """Names of the transforms in ``transform`` (itself or wrapped) that leave masks behind."""
    if getattr(transform, 'keeps_annotations_aligned', False):
        return []
    if isinstance(transform, PIXEL_ONLY_TRANSFORMS):
        return []
    wrapped = _wrapped(transform)
    if wrapped is None:
        named = transform if hasattr(transform, '__qualname__') else type(transform)
        return [f'{named.__module__}.{named.__qualname__}']
    return [name for inner in wrapped for name in _misaligning(inner)]


def check_pipeline(transforms: Sequence[Callable], where: str) -> None:
    """Raise when a pipeline that loads annotations holds a transform that would misalign them.

    Args:
        transforms: the built transforms of a dataset's pipeline.
        where: names the dataset in the message, e.g. ``"CocoInsSegDataset 'ann.json'"``.

    Raises:
        ValueError: naming each such transform and the fix.
    """
    if not any(isinstance(transform, LoadAnnotations) for transform in transforms):
        return
    names = [name for transform in transforms for name in _misaligning(transform)]
    if names:
        raise ValueError(
            f'{where}: the pipeline loads instance masks, but {", ".join(names)} would change '
            'the image without moving the masks, boxes and contours with it, so the targets '
            "would no longer match the image. Use polarmask's Resize, RandomResize, RandomFlip "
            "and Pad (also through mmcv's RandomChoiceResize); a transform of your own that moves "
            'gt_bboxes and gt_masks with the image, or changes pixel values only, says so with '
            'the class attribute keeps_annotations_aligned = True'
        )
