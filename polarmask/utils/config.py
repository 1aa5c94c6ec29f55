"""Reading detector configs: the one loader of the tools and the API, and what they read from it."""

from __future__ import annotations

import copy
import json
import os

from mmengine.config import Config

from polarmask.registry import DATASETS


def config_name(config: str | os.PathLike | Config) -> str:
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
        raise KeyError(f'config {config_name(config)} has no model: it is not a detector config')
    return config


def config_classes(cfg: Config) -> tuple[str, ...] | None:
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


def test_pipeline_cfg(cfg: Config) -> list[dict] | None:
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
    for transform in test_pipeline_cfg(cfg) or []:
        scale = transform.get('scale')
        if transform.get('type') == 'Resize' and scale is not None:
            if isinstance(scale, int):
                return scale, scale
            width, height = scale
            return int(height), int(width)
    return None
