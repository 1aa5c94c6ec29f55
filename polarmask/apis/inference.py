"""Build a detector from a config and a checkpoint and run it on images.

Naming convention for shapes: n detections of one image, R rays, C classes, H x W the original
image.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.logging import print_log
from mmengine.runner import CheckpointLoader
from torch import Tensor, nn

from polarmask.engine.checkpoint import weights_only_uri
from polarmask.registry import DATASETS, MODELS, TRANSFORMS
from polarmask.structures import pred_instances_to_numpy
from polarmask.utils import register_all_modules
from polarmask.visualization.draw import Color, draw_det_instances

ImageInput = str | os.PathLike | np.ndarray
"""An image file path or an (H, W, 3) uint8 BGR array (as ``cv2.imread`` returns)."""

_ANNOTATION_TRANSFORMS = ('LoadAnnotations', 'PolarContours')
_ORIGINAL_PREDICTOR = re.compile(r'^bbox_head\.fcos_(cls|reg|mask|centerness)\.')
_NUM_EXAMPLES = 3


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

    def select(self, score_thr: float) -> DetectionResult:
        """The detections whose score is at least ``score_thr``."""
        keep = self.scores >= score_thr
        return DetectionResult(
            bboxes=self.bboxes[keep],
            scores=self.scores[keep],
            labels=self.labels[keep],
            polygons=self.polygons[keep],
            masks=[mask for mask, kept in zip(self.masks, keep.tolist(), strict=True) if kept],
            classes=self.classes,
            ori_shape=self.ori_shape,
            img_path=self.img_path,
        )

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


class _LoadImageFromArray(BaseTransform):
    """Stands in for ``LoadImageFromFile`` when ``results['img']`` already holds the image."""

    def transform(self, results: dict) -> dict:
        results['img_shape'] = results['img'].shape[:2]
        results['ori_shape'] = results['img'].shape[:2]
        return results


def _config_name(config: str | os.PathLike | Config) -> str:
    if isinstance(config, Config):
        return f"'{config.filename}'" if config.filename else 'the given Config'
    return f"'{os.fspath(config)}'"


def load_config(config: str | os.PathLike | Config, cfg_options: dict | None = None) -> Config:
    """Read a detector config and merge ``--cfg-options`` overrides into it.

    Args:
        config: config file or :class:`mmengine.config.Config` (copied, not modified).
        cfg_options: overrides merged into the config, e.g. ``{'model.test_cfg.score_thr': 0.3}``.

    Returns:
        Config: the config with the overrides.

    Raises:
        FileNotFoundError: the config file does not exist.
        TypeError: ``config`` is neither a path nor a Config.
        KeyError: the config has no ``model``.
    """
    if isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"config '{path}' does not exist: pass a config file such as "
                'configs/polarmask/demo/polar_shapes_r18.py'
            )
        config = Config.fromfile(path)
    elif isinstance(config, Config):
        config = copy.deepcopy(config)
    else:
        raise TypeError(f'config must be a file path or a Config, not {type(config).__name__}')
    if cfg_options:
        config.merge_from_dict(cfg_options)
    if 'model' not in config:
        raise KeyError(f'config {_config_name(config)} has no model: it is not a detector config')
    return config


def _read_checkpoint(checkpoint: str | os.PathLike) -> tuple[dict[str, Tensor], dict]:
    """(state dict without a ``module.`` prefix, meta) of a checkpoint file or URL."""
    path = os.fspath(checkpoint)
    if '://' not in path and not os.path.isfile(path):
        raise FileNotFoundError(
            f"checkpoint '{path}' does not exist: pass a .pth written by tools/train.py, e.g. "
            'work_dirs/polar_shapes_r18/latest.pth'
        )
    loaded = CheckpointLoader.load_checkpoint(weights_only_uri(path), map_location='cpu')
    state_dict = loaded.get('state_dict', loaded) if isinstance(loaded, dict) else None
    if not isinstance(state_dict, dict) or not all(
        isinstance(value, Tensor) for value in state_dict.values()
    ):
        raise ValueError(
            f"checkpoint '{path}' holds no state dict of tensors (a dict with 'state_dict', or "
            'the state dict itself): pass a checkpoint written by tools/train.py'
        )
    meta = loaded.get('meta') if 'state_dict' in loaded else None
    state_dict = {re.sub(r'^module\.', '', key): value for key, value in state_dict.items()}
    return state_dict, meta if isinstance(meta, dict) else {}


def _examples(items: Sequence[str]) -> str:
    more = f', ... ({len(items)} in all)' if len(items) > _NUM_EXAMPLES else ''
    return ', '.join(items[:_NUM_EXAMPLES]) + more


def check_state_dict(
    model: nn.Module, state_dict: dict[str, Tensor], checkpoint: str, config: str
) -> None:
    """Raise one clear error when a state dict does not fit the model built from a config.

    Checks, in order: weights of the original PolarMask code (``fcos_*`` keys), the number of
    classes (``bbox_head.polar_cls``) and of rays (``bbox_head.polar_mask``), then every key
    and shape.

    Args:
        model: the detector built from the config.
        state_dict: the checkpoint's weights.
        checkpoint: the checkpoint's name for the message.
        config: the config's name for the message.

    Raises:
        ValueError: the checkpoint was made for another model; the message names the fix.
    """
    if any(_ORIGINAL_PREDICTOR.match(key) for key in state_dict):
        raise ValueError(
            f"checkpoint '{checkpoint}' comes from the original PolarMask code (bbox_head.fcos_* "
            'keys): convert it first with python tools/model_converters/'
            'polarmask_original_to_ours.py IN.pth OUT.pth and load OUT.pth'
        )
    head = model.bbox_head
    for key, attribute, what in (
        ('bbox_head.polar_cls.weight', 'num_classes', 'classes'),
        ('bbox_head.polar_mask.weight', 'num_rays', 'rays'),
    ):
        expected = getattr(head, attribute)
        if key in state_dict and state_dict[key].shape[0] != expected:
            found = state_dict[key].shape[0]
            raise ValueError(
                f"checkpoint '{checkpoint}' was trained for {found} {what} ({key} has {found} "
                f'output channels) but config {config} builds a head for {expected} '
                f'(model.bbox_head.{attribute}): use the config the checkpoint was trained with, '
                f'or set --cfg-options model.bbox_head.{attribute}={found} '
                f"(cfg_options={{'model.bbox_head.{attribute}': {found}}})"
                + (' and the class names of its dataset' if attribute == 'num_classes' else '')
            )
    expected_shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    missing = [key for key in expected_shapes if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected_shapes]
    mismatched = [
        f'{key} {tuple(value.shape)} (model: {expected_shapes[key]})'
        for key, value in state_dict.items()
        if key in expected_shapes and tuple(value.shape) != expected_shapes[key]
    ]
    if missing or unexpected or mismatched:
        problems = [
            f'{len(items)} {what} (e.g. {_examples(items)})'
            for items, what in (
                (mismatched, 'weights of another shape'),
                (missing, 'weights of the model missing from the checkpoint'),
                (unexpected, 'weights the model does not have'),
            )
            if items
        ]
        raise ValueError(
            f"checkpoint '{checkpoint}' does not fit the model of config {config}: "
            f'{"; ".join(problems)}. Use the config the checkpoint was trained with (tools/'
            "train.py copies it into the work dir and stores it in the checkpoint's "
            "meta['cfg']), or a checkpoint trained with this config"
        )


def _config_classes(cfg: Config) -> tuple[str, ...] | None:
    """Class names of the config's test / val / train dataset, without loading its data."""
    for loader in ('test_dataloader', 'val_dataloader', 'train_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset') or {}
        classes = (dataset.get('metainfo') or {}).get('classes')
        if classes:
            return tuple(classes)
        dataset_type = dataset.get('type')
        dataset_cls = DATASETS.get(dataset_type) if isinstance(dataset_type, str) else None
        classes = getattr(dataset_cls, 'METAINFO', {}).get('classes')
        if classes:
            return tuple(classes)
        ann_file = os.path.join(dataset.get('data_root', ''), dataset.get('ann_file', ''))
        if dataset.get('ann_file') and os.path.isfile(ann_file):
            with open(ann_file, encoding='utf-8') as file:
                categories = json.load(file).get('categories', [])
            if categories:
                return tuple(category['name'] for category in categories)
    return None


def _dataset_meta(meta: dict, cfg: Config, num_classes: int, config: str) -> dict:
    """``dataset_meta`` of the model: the checkpoint's, else the class names of the config."""
    dataset_meta = dict(meta.get('dataset_meta') or {})
    if not dataset_meta.get('classes'):
        classes = _config_classes(cfg)
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
    config: str | os.PathLike | Config,
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = 'cpu',
    cfg_options: dict | None = None,
) -> nn.Module:
    """Build a detector from a config, load its weights and prepare it for inference.

    The backbone's ``init_cfg`` is removed, so no pretrained weights are downloaded. The
    checkpoint is read with mmengine's ``CheckpointLoader`` (local files through the
    ``weights_only://`` scheme of :mod:`polarmask.engine.checkpoint`) and must fit the model
    exactly (:func:`check_state_dict`).

    Args:
        config: config file or :class:`mmengine.config.Config`.
        checkpoint: checkpoint file; None keeps the random initialisation.
        device: device of the model, e.g. 'cpu' or 'cuda:0'.
        cfg_options: overrides merged into the config, e.g. ``{'model.test_cfg.score_thr': 0.3}``.

    Returns:
        nn.Module: the detector in eval mode, with ``cfg`` (the config) and ``dataset_meta``
        (``classes``: the C class names, from the checkpoint's meta or else the config's
        dataset) set.

    Raises:
        FileNotFoundError: the config or checkpoint file does not exist.
        ValueError: the checkpoint does not fit the config's model.
    """
    register_all_modules()
    cfg = load_config(config, cfg_options)
    name = _config_name(config)
    if cfg.model.get('backbone', {}).get('init_cfg') is not None:
        cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    meta: dict = {}
    if checkpoint is not None:
        state_dict, meta = _read_checkpoint(checkpoint)
        check_state_dict(model, state_dict, os.fspath(checkpoint), name)
        model.load_state_dict(state_dict, strict=True)
    model.cfg = cfg
    model.dataset_meta = _dataset_meta(meta, cfg, model.bbox_head.num_classes, name)
    model.to(device)
    model.eval()
    return model


def _test_pipeline_cfg(cfg: Config) -> list[dict] | None:
    """Transforms of the test (else val) dataset, inside any dataset wrappers; None if absent."""
    for loader in ('test_dataloader', 'val_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset') or {}
        while 'dataset' in dataset:
            dataset = dataset['dataset']
        pipeline = dataset.get('pipeline')
        if pipeline:
            return list(pipeline)
    return None


def config_input_shape(cfg: Config) -> tuple[int, int] | None:
    """(H, W) that the test pipeline's ``Resize`` produces, or None if it has no fixed scale.

    ``Resize.scale`` is (w, h) as in mmcv; with ``keep_ratio=True`` the image fits inside that
    box, so the result is an upper bound of the input size rather than the exact size.

    Args:
        cfg: a config with a ``test_dataloader`` (or ``val_dataloader``).

    Returns:
        tuple[int, int] | None: (H, W) in pixels.
    """
    for transform in _test_pipeline_cfg(cfg) or []:
        scale = transform.get('scale')
        if transform.get('type') == 'Resize' and scale is not None:
            if isinstance(scale, int):
                return scale, scale
            width, height = scale
            return int(height), int(width)
    return None


def _test_pipelines(cfg: Config) -> tuple[Compose, Compose]:
    """The config's test pipeline for image files and for arrays, without annotation loading."""
    pipeline = _test_pipeline_cfg(cfg)
    if pipeline is None:
        raise KeyError(
            f'config {_config_name(cfg)} has no test_dataloader.dataset.pipeline: add a test '
            "pipeline, e.g. [dict(type='LoadImageFromFile'), dict(type='Resize', ...), "
            "dict(type='PackPolarInputs')]"
        )
    transforms = [t for t in pipeline if t.get('type') not in _ANNOTATION_TRANSFORMS]
    loaders = [i for i, t in enumerate(transforms) if t.get('type') == 'LoadImageFromFile']
    if not loaders:
        raise KeyError(
            f'the test pipeline of config {_config_name(cfg)} does not start with '
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


def _prepare(img: ImageInput, index: int, pipelines: tuple[Compose, Compose]) -> dict:
    from_files, from_arrays = pipelines
    if isinstance(img, np.ndarray):
        return from_arrays(dict(img=_check_array(img, index), img_id=index))
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
    try:
        return from_files(dict(img_path=path, img_id=index))
    except (OSError, cv2.error) as error:
        raise ValueError(
            f"inference_detector: '{path}' ({os.path.getsize(path)} bytes) is not an image "
            'OpenCV can decode: pass a JPEG, PNG, BMP, TIFF or WebP file'
        ) from error


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
