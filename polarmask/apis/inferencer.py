"""A one-line inferencer in the spirit of mmdetection 3.x's ``DetInferencer``.

::

    inferencer = PolarMaskInferencer('configs/polarmask/demo/polar_shapes_r18.py', 'latest.pth')
    inferencer = PolarMaskInferencer('polar_shapes_r18-1a2b3c4d.pth')  # carries its config
    results = inferencer('images/', out_dir='outputs', no_save_pred=False)
    results['predictions'][0].polygons  # (n, R, 2) in pixels of the first image

Naming convention for shapes: n detections of one image, R rays, H x W the original image.
"""

from __future__ import annotations

import json
import logging
import os
import os.path as osp
from collections.abc import Sequence
from dataclasses import dataclass

import mmcv
import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from rich.progress import Progress

from polarmask.apis.det_result import DetectionResult, draw_result
from polarmask.apis.inference import ImageInput, inference_detector, init_detector, read_image
from polarmask.apis.sliced import inference_sliced

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')

InputsType = ImageInput | Sequence[ImageInput]
"""An image file, a folder (searched recursively), an (H, W, 3) uint8 BGR array, or a list."""


@dataclass
class _Item:
    """One input image and the name of its outputs (``vis/<name>.png``, ``preds/<name>.json``)."""

    image: ImageInput
    name: str


def list_images(folder: str) -> list[tuple[str, str]]:
    """``(path, name)`` of every image in a folder and its sub-folders, sorted by path.

    ``name`` is the path relative to the folder, extension included, so ``a.jpg`` and ``a.png``
    get different outputs.

    Raises:
        FileNotFoundError: the folder holds no image file.
    """
    images = []
    for root, _, files in os.walk(folder):
        for file in files:
            if file.lower().endswith(IMAGE_EXTENSIONS):
                path = osp.join(root, file)
                images.append((path, osp.relpath(path, folder)))
    if not images:
        raise FileNotFoundError(
            f"folder '{folder}' has no image files ({', '.join(IMAGE_EXTENSIONS)})"
        )
    return sorted(images)


class PolarMaskInferencer:
    """Detect instances in images, folders or arrays; optionally write drawings and JSON.

    Args:
        model: a config file or ``Config``, or a checkpoint that carries its config
            (``meta['cfg']``, as ``tools/train.py`` and ``publish_model.py`` write them).
        weights: the checkpoint, when ``model`` is a config; None keeps random weights.
        device: e.g. 'cpu' or 'cuda:0'.
        cfg_options: overrides merged into the config, e.g. ``{'model.test_cfg.score_thr': 0.3}``.
        palette: one BGR colour per class for the drawings (golden-ratio hues by default).
        show_progress: show a progress bar when more than one image is processed.
    """

    def __init__(
        self,
        model: str | os.PathLike | Config | None = None,
        weights: str | os.PathLike | None = None,
        device: str | torch.device = 'cpu',
        cfg_options: dict | None = None,
        palette: Sequence[tuple[int, int, int]] | None = None,
        show_progress: bool = True,
    ) -> None:
        self.model = init_detector(model, weights, device, cfg_options)
        self.palette = palette if palette is not None else self.model.dataset_meta.get('palette')
        self.show_progress = show_progress
        self.num_arrays = 0

    def _items(self, inputs: InputsType) -> list[_Item]:
        """The images of ``inputs``; arrays are named 00000000, 00000001, ... over all calls."""
        if isinstance(inputs, (list, tuple)):
            return [item for single in inputs for item in self._items(single)]
        if isinstance(inputs, np.ndarray):
            self.num_arrays += 1
            return [_Item(inputs, f'{self.num_arrays - 1:08d}')]
        path = os.fspath(inputs)
        if osp.isdir(path):
            return [_Item(image, name) for image, name in list_images(path)]
        if not osp.isfile(path):
            raise FileNotFoundError(f"input '{path}' does not exist: pass an image or a folder")
        return [_Item(path, osp.basename(path))]

    def _predict(
        self, batch: list[_Item], patch_size: int | tuple[int, int] | None, overlap_ratio: float
    ) -> list[DetectionResult]:
        images = [item.image for item in batch]
        if patch_size is None:
            return inference_detector(self.model, images)
        return [
            inference_sliced(self.model, image, patch_size, overlap_ratio, len(batch))
            for image in images
        ]

    def _predict_or_skip(
        self,
        batch: list[_Item],
        patch_size: int | tuple[int, int] | None,
        overlap_ratio: float,
        skipped: list[tuple[str, Exception]],
    ) -> list[tuple[_Item, DetectionResult]]:
        """The results of a batch; an image file that cannot be read is reported and skipped."""
        try:
            return list(zip(batch, self._predict(batch, patch_size, overlap_ratio), strict=True))
        except (FileNotFoundError, ValueError) as error:
            if len(batch) > 1:
                return [
                    pair
                    for item in batch
                    for pair in self._predict_or_skip([item], patch_size, overlap_ratio, skipped)
                ]
            if isinstance(batch[0].image, np.ndarray):
                raise
            print_log(f'skipped: {error}', logger='current', level=logging.WARNING)
            skipped.append((os.fspath(batch[0].image), error))
            return []

    def _draw(self, item: _Item, result: DetectionResult, score_thr: float) -> np.ndarray:
        return draw_result(read_image(item.image), result, score_thr, self.palette)

    @staticmethod
    def _save_pred(result: DetectionResult, pred_file: str, score_thr: float) -> None:
        os.makedirs(osp.dirname(pred_file), exist_ok=True)
        with open(pred_file, 'w', encoding='utf-8') as file:
            json.dump(dict(result.select(score_thr).to_dict(), score_thr=score_thr), file)

    def __call__(
        self,
        inputs: InputsType,
        batch_size: int = 1,
        out_dir: str = '',
        no_save_vis: bool = False,
        no_save_pred: bool = True,
        return_vis: bool = False,
        pred_score_thr: float = 0.3,
        patch_size: int | tuple[int, int] | None = None,
        patch_overlap_ratio: float = 0.25,
    ) -> dict[str, list]:
        """Detect instances in the inputs, by batches of ``batch_size`` images.

        Outputs follow mmdetection's layout, each named after its image with the extension kept
        (arrays: ``00000000``, ``00000001``, ... over the inferencer's life):
        ``out_dir/vis/<name>.png`` (translucent masks, outlines, class names and scores) and
        ``out_dir/preds/<name>.json`` (:meth:`DetectionResult.to_dict` plus ``score_thr``), both
        for the detections scoring at least ``pred_score_thr``, in pixels of the original image.
        An image file that cannot be read is reported and skipped; when none can be read, the
        first error is raised.

        Args:
            inputs: an image file, a folder (searched recursively for
                ``IMAGE_EXTENSIONS``), an (H, W, 3) uint8 BGR array, or a list of them.
            batch_size: images per forward pass (with ``patch_size``: tiles per forward pass).
            out_dir: where to write ``vis/`` and ``preds/``; '' writes nothing.
            no_save_vis: do not write ``vis/``.
            no_save_pred: do not write ``preds/`` (mmdetection's default).
            return_vis: also return the drawings.
            pred_score_thr: minimum score of the drawn and saved detections.
            patch_size: run each image as tiles of this side, or (h, w), in pixels
                (:func:`~polarmask.apis.sliced.inference_sliced`); None runs whole images.
            patch_overlap_ratio: overlap of neighbouring tiles as a fraction of the patch.

        Returns:
            dict: ``predictions``, one :class:`DetectionResult` per image read (every detection,
            whatever its score); ``visualization``, the (H, W, 3) uint8 drawings when
            ``return_vis`` (else empty); ``skipped``, ``(path, error)`` of each unreadable file.
        """
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1 (got {batch_size})')
        items = self._items(inputs)
        save_vis = bool(out_dir) and not no_save_vis
        save_pred = bool(out_dir) and not no_save_pred
        predictions, visualization, skipped = [], [], []
        with Progress(disable=not self.show_progress or len(items) < 2) as progress:
            task = progress.add_task('Inference', total=len(items))
            for first in range(0, len(items), batch_size):
                batch = items[first : first + batch_size]
                for item, result in self._predict_or_skip(
                    batch, patch_size, patch_overlap_ratio, skipped
                ):
                    predictions.append(result)
                    if save_vis or return_vis:
                        drawn = self._draw(item, result, pred_score_thr)
                    if save_vis:
                        mmcv.imwrite(drawn, osp.join(out_dir, 'vis', f'{item.name}.png'))
                    if save_pred:
                        pred_file = osp.join(out_dir, 'preds', f'{item.name}.json')
                        self._save_pred(result, pred_file, pred_score_thr)
                    if return_vis:
                        visualization.append(drawn)
                progress.advance(task, len(batch))
        if skipped and not predictions:
            raise skipped[0][1]
        return dict(predictions=predictions, visualization=visualization, skipped=skipped)
