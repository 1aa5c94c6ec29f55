"""Build a detector from a config and a checkpoint and run it on images.

Naming convention for shapes: C classes, H x W the original image.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Sequence
from typing import Any

import cv2
import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.logging import print_log
from torch import nn

from polarmask.apis.det_result import DetectionResult
from polarmask.engine.state_dict import check_state_dict, read_state_dict
from polarmask.registry import MODELS, TRANSFORMS
from polarmask.structures import pred_instances_to_numpy
from polarmask.utils import register_all_modules
from polarmask.utils.config import (
    config_classes,
    config_name,
    embedded_config,
    is_config_file,
    load_config,
    test_pipeline_cfg,
)

ImageInput = str | os.PathLike | np.ndarray
"""An image file path or an (H, W, 3) uint8 BGR array (as ``cv2.imread`` returns)."""

_ANNOTATION_TRANSFORMS = ('LoadAnnotations', 'PolarContours')


class _LoadImageFromArray(BaseTransform):
    """Stands in for ``LoadImageFromFile`` when ``results['img']`` already holds the image."""

    def transform(self, results: dict) -> dict:
        results['img_shape'] = results['img'].shape[:2]
        results['ori_shape'] = results['img'].shape[:2]
        return results


def _dataset_meta(meta: dict, cfg: Config, num_classes: int, config: str) -> dict:
    """``dataset_meta`` of the model: the checkpoint's, else the class names of the config."""
    dataset_meta = dict(meta.get('dataset_meta') or {})
    if not dataset_meta.get('classes'):
        classes = config_classes(cfg)
        if classes is None:
            print_log(
                f'no class names in the checkpoint or in config {config}: labels are shown as '
                "'class i'; set test_dataloader.dataset.metainfo=dict(classes=(...))",
                logger='current',
                level=logging.WARNING,
            )
            classes = ()
        dataset_meta['classes'] = classes
    classes = tuple(dataset_meta['classes'])
    if len(classes) != num_classes:
        print_log(
            f'{len(classes)} class names for a head of {num_classes} classes (config {config}); '
            'names of missing classes are shown as "class i"',
            logger='current',
            level=logging.WARNING,
        )
        classes = tuple(classes[:num_classes]) + tuple(
            f'class {label}' for label in range(len(classes), num_classes)
        )
    dataset_meta['classes'] = classes
    return dataset_meta


def init_detector(
    config: str | os.PathLike | Config | None = None,
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = 'cpu',
    cfg_options: dict | None = None,
) -> nn.Module:
    """Build a detector from a config, load its weights and prepare it for inference.

    A checkpoint that carries its config (``meta['cfg']``: every checkpoint of
    ``tools/train.py``, and files published with ``publish_model.py``) is enough alone:
    ``init_detector(None, 'model.pth')`` or ``init_detector('model.pth')`` (a file that does not
    end like a config, ``.py``/``.json``/``.yaml``/``.yml``, is taken for a checkpoint).

    The backbone's ``init_cfg`` is removed, so no pretrained weights are downloaded. The
    checkpoint is read with mmengine's ``CheckpointLoader`` (local files through the
    ``weights_only://`` scheme of :mod:`polarmask.engine.checkpoint`) and must fit the model
    exactly (:func:`check_state_dict`).

    Args:
        config: config file or :class:`mmengine.config.Config`; None, or the checkpoint's path,
            for the config embedded in the checkpoint.
        checkpoint: checkpoint file; None keeps the random initialisation.
        device: device of the model, e.g. 'cpu' or 'cuda:0'.
        cfg_options: overrides merged into the config, e.g. ``{'model.test_cfg.score_thr': 0.3}``.

    Returns:
        nn.Module: the detector in eval mode, with ``cfg`` (the config) and ``dataset_meta``
        (``classes``: the C class names, from the checkpoint's meta or else the config's
        dataset) set.

    Raises:
        FileNotFoundError: the config or checkpoint file does not exist.
        KeyError: no config was given and the checkpoint carries none.
        ValueError: the checkpoint does not fit the config's model, or two checkpoints were given.
    """
    register_all_modules()
    if isinstance(config, (str, os.PathLike)) and not is_config_file(config):
        if checkpoint is not None and os.fspath(checkpoint) != os.fspath(config):
            raise ValueError(
                f"init_detector: two checkpoints, '{os.fspath(config)}' in place of the config "
                f"and '{os.fspath(checkpoint)}': pass a config file and a checkpoint, or one "
                'checkpoint that carries its config'
            )
        config, checkpoint = None, config
    state_dict, meta = read_state_dict(checkpoint) if checkpoint is not None else (None, {})
    if config is None:
        if checkpoint is None:
            raise ValueError(
                'init_detector: no config and no checkpoint: pass a config file, a checkpoint '
                'that carries its config, or both'
            )
        config = embedded_config(meta, checkpoint)
    cfg = load_config(config, cfg_options)
    name = config_name(config)
    if cfg.model.get('backbone', {}).get('init_cfg') is not None:
        cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    if state_dict is not None:
        check_state_dict(model, state_dict, os.fspath(checkpoint), name)
        model.load_state_dict(state_dict, strict=True)
    model.cfg = cfg
    model.dataset_meta = _dataset_meta(meta, cfg, model.bbox_head.num_classes, name)
    model.to(device)
    model.eval()
    return model


def _test_pipelines(cfg: Config) -> tuple[Compose, Compose]:
    """The config's test pipeline for image files and for arrays, without annotation loading."""
    pipeline = test_pipeline_cfg(cfg)
    if pipeline is None:
        raise KeyError(
            f'config {config_name(cfg)} has no test_dataloader.dataset.pipeline: add a test '
            "pipeline, e.g. [dict(type='LoadImageFromFile'), dict(type='Resize', ...), "
            "dict(type='PackPolarInputs')]"
        )
    transforms = [t for t in pipeline if t.get('type') not in _ANNOTATION_TRANSFORMS]
    loaders = [i for i, t in enumerate(transforms) if t.get('type') == 'LoadImageFromFile']
    if not loaders:
        raise KeyError(
            f'the test pipeline of config {config_name(cfg)} does not start with '
            "LoadImageFromFile: add dict(type='LoadImageFromFile') as its first transform"
        )
    built = [TRANSFORMS.build(copy.deepcopy(t)) for t in transforms]
    from_arrays = list(built)
    from_arrays[loaders[0]] = _LoadImageFromArray()
    return Compose(built), Compose(from_arrays)


def _check_array(img: np.ndarray, index: int) -> np.ndarray:
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3 or img.size == 0:
        raise ValueError(
            f'inference_detector: image {index} is an array of shape {img.shape}; pass (H, W, 3) '
            'BGR (cv2.imread), or convert with cv2.cvtColor(img, cv2.COLOR_BGRA2BGR) / '
            'COLOR_GRAY2BGR'
        )
    if img.dtype != np.uint8:
        raise ValueError(
            f'inference_detector: image {index} is an array of {img.dtype}; pass uint8 pixels '
            '0-255 as cv2.imread returns, e.g. img.clip(0, 255).astype(np.uint8)'
        )
    return img


def _image_path(img: ImageInput, index: int) -> str:
    """The path of an image given as a path, checked to exist."""
    if not isinstance(img, (str, os.PathLike)):
        raise TypeError(
            f'inference_detector: image {index} is a {type(img).__name__}; pass a file path or '
            'an (H, W, 3) uint8 BGR array'
        )
    path = os.fspath(img)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"inference_detector: image '{path}' does not exist: check the path (relative to "
            f"'{os.getcwd()}')"
        )
    return path


def _not_an_image(path: str) -> ValueError:
    return ValueError(
        f"inference_detector: '{path}' ({os.path.getsize(path)} bytes) is not an image "
        'OpenCV can decode: pass a JPEG, PNG, BMP, TIFF or WebP file'
    )


def read_image(img: ImageInput) -> np.ndarray:
    """The (H, W, 3) uint8 BGR pixels of an image file, or the array itself after its checks.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is not an image, or the array is not (H, W, 3) uint8.
    """
    if isinstance(img, np.ndarray):
        return _check_array(img, 0)
    path = _image_path(img, 0)
    try:
        pixels = mmcv.imread(path)
    except (OSError, cv2.error) as error:
        raise _not_an_image(path) from error
    if pixels is None:
        raise _not_an_image(path)
    return pixels


def _prepare(img: ImageInput, index: int, pipelines: tuple[Compose, Compose]) -> dict:
    from_files, from_arrays = pipelines
    if isinstance(img, np.ndarray):
        return from_arrays(dict(img=_check_array(img, index), img_id=index))
    path = _image_path(img, index)
    try:
        return from_files(dict(img_path=path, img_id=index))
    except (OSError, cv2.error) as error:
        raise _not_an_image(path) from error


def _to_result(data_sample: Any, classes: tuple[str, ...], img_path: str | None) -> DetectionResult:
    ori_shape = tuple(int(v) for v in data_sample.ori_shape[:2])
    return DetectionResult(
        **pred_instances_to_numpy(data_sample.pred_instances, ori_shape),
        classes=classes,
        ori_shape=ori_shape,
        img_path=img_path,
    )


@torch.no_grad()
def inference_detector(
    model: nn.Module, imgs: ImageInput | Sequence[ImageInput]
) -> DetectionResult | list[DetectionResult]:
    """Detect instances in one image or a batch of images (one forward pass).

    Each image goes through the test pipeline of ``model.cfg`` (``test_dataloader.dataset.
    pipeline``; arrays skip its ``LoadImageFromFile``) and the model's data preprocessor.

    Args:
        model: a detector from :func:`init_detector`.
        imgs: an image file path or an (H, W, 3) uint8 BGR array, or a list of them.

    Returns:
        DetectionResult | list[DetectionResult]: for one image its result, for a list one
        result per image; boxes, polygons and masks in pixels of the original image.

    Raises:
        FileNotFoundError: an image path does not exist.
        ValueError: a file is not an image, or an array is not (H, W, 3) uint8.
    """
    if not isinstance(getattr(model, 'cfg', None), Config):
        raise AttributeError(
            'inference_detector: the model has no cfg (its config, for the test pipeline): '
            'build it with init_detector(config, checkpoint)'
        )
    single = not isinstance(imgs, (list, tuple))
    items = [imgs] if single else list(imgs)
    if not items:
        return []
    pipelines = _test_pipelines(model.cfg)
    batch = pseudo_collate([_prepare(img, index, pipelines) for index, img in enumerate(items)])
    data_samples = model.test_step(batch)
    classes = tuple(model.dataset_meta['classes'])
    results = [
        _to_result(sample, classes, None if isinstance(img, np.ndarray) else os.fspath(img))
        for sample, img in zip(data_samples, items, strict=True)
    ]
    return results[0] if single else results
