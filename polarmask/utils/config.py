"""Reading detector configs: the one loader of the tools and the API, and what they read from it."""

from __future__ import annotations

import copy
import inspect
import json
import logging
import os
from typing import Any

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

from polarmask.registry import DATASETS

_MISSING = object()
RUNNER_KEYS = frozenset(inspect.signature(Runner.__init__).parameters) - {'self', 'cfg'} | {
    'runner_type',
    'model_wrapper_cfg',
    'find_unused_parameters',
    'compile',
    'activation_checkpointing',
    'strategy',
    'gpu_ids',
    'vis_backends',
}
"""Top-level config keys that mmengine's runner (and its ``from_cfg``) reads."""
ORIGINAL_KEYS = {
    'optimizer': 'optim_wrapper.optimizer',
    'optimizer_config': 'optim_wrapper.clip_grad',
    'lr_config': 'param_scheduler',
    'total_epochs': 'train_cfg.max_epochs',
    'checkpoint_config': 'default_hooks.checkpoint',
    'log_config': 'default_hooks.logger',
    'data': 'train_dataloader / val_dataloader / test_dataloader',
    'evaluation': 'val_evaluator and train_cfg.val_interval',
    'dist_params': 'env_cfg.dist_cfg',
}
"""Top-level keys of mmdetection 1.x configs (the original's) and what replaces them."""


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
        for key, value in cfg_options.items():
            _check_option_type(config, key, value)
        config.merge_from_dict(cfg_options)
    if 'model' not in config:
        raise KeyError(f'config {config_name(config)} has no model: it is not a detector config')
    for warning in unread_key_warnings(config):
        print_log(
            f'config {config_name(config)}: {warning}', logger='current', level=logging.WARNING
        )
    return config


def _lookup(config: Any, key: str) -> Any:
    """The value at a dotted ``--cfg-options`` key (list items by index), or ``_MISSING``."""
    value = config
    for part in key.split('.'):
        if isinstance(value, (dict, Config)) and part in value:
            value = value[part]
        elif isinstance(value, (list, tuple)) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _check_option_type(config: Config, key: str, value: Any) -> None:
    """Raise when an override gives text where the config holds a number, a flag or a list."""
    old = _lookup(config, key)
    kinds = ((bool, 'True or False'), ((int, float), 'a number'), ((list, tuple), 'a list'))
    for types, kind in kinds:
        if isinstance(old, types) and isinstance(value, str):
            raise TypeError(
                f'--cfg-options {key}={value}: config {config_name(config)} holds {kind} '
                f'there ({old!r}), not text; give {kind}, e.g. {key}={old!r}'
            )


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions turning ``a`` into ``b``."""
    row = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, char_b in enumerate(b, 1):
            substitution = diagonal + (char_a != char_b)
            diagonal = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, substitution)
    return row[-1]


def unread_key_warnings(cfg: Config) -> list[str]:
    """Warnings for top-level keys that look like runner keys but are not read.

    mmengine ignores top-level keys it does not know (configs use them for helper variables
    such as ``data_root``), so a misspelt ``optim_wraper`` or a key of the original PolarMask
    configs (``optimizer``, ``lr_config``, ...) changes nothing without a word.

    Args:
        cfg: a runner config.

    Returns:
        list[str]: one warning per such key, naming what is read instead.
    """
    warnings = []
    for key in cfg.keys():
        if key in RUNNER_KEYS:
            continue
        if key in ORIGINAL_KEYS:
            warnings.append(
                f"top-level key '{key}' of the original PolarMask configs is not read here: "
                f"use {ORIGINAL_KEYS[key]} (README: From the original's config keys to ours)"
            )
            continue
        close = [known for known in sorted(RUNNER_KEYS) if _edit_distance(key, known) <= 2]
        if close and len(key) > 4:
            warnings.append(
                f"top-level key '{key}' is not read by the runner: did you mean '{close[0]}'?"
            )
    return warnings


CONFIG_SUFFIXES = ('.py', '.json', '.yaml', '.yml')
"""File name endings of configs; any other file given in place of a config is a checkpoint."""


def is_config_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a config (by its ending) rather than a checkpoint."""
    return os.fspath(path).lower().endswith(CONFIG_SUFFIXES)


def embedded_config(meta: dict, checkpoint: str | os.PathLike) -> Config:
    """The config a checkpoint carries in ``meta['cfg']``.

    ``tools/train.py`` stores it there (the whole config as text, ``Config.pretty_text``, with
    the command line's overrides), and ``tools/model_converters/publish_model.py`` keeps it or
    embeds one with ``--config``.

    Args:
        meta: the checkpoint's ``meta``.
        checkpoint: the checkpoint's path, for messages and as the config's ``filename``.

    Returns:
        Config: the config, with ``filename`` ``'<checkpoint> (embedded config)'``.

    Raises:
        KeyError: the checkpoint carries no config.
    """
    path = os.fspath(checkpoint)
    text = meta.get('cfg')
    if not isinstance(text, str) or not text.strip():
        raise KeyError(
            f"checkpoint '{path}' carries no config (meta['cfg']): pass its config file as well, "
            f'or embed it with python tools/model_converters/publish_model.py {path} OUT.pth '
            '--config CONFIG'
        )
    parsed = Config.fromstring(text, file_format='.py')
    return Config(parsed.to_dict(), cfg_text=text, filename=f'{path} (embedded config)')


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
