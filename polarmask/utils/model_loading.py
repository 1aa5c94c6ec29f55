"""Config loading and model building shared by the analysis and deployment tools."""

from __future__ import annotations

import os
import re

import torch
from mmengine.config import Config
from mmengine.runner import CheckpointLoader, load_state_dict
from torch import nn

from polarmask.registry import MODELS
from polarmask.utils.setup_env import register_all_modules


def load_config(path: str, cfg_options: dict | None = None) -> Config:
    """Read a config file and apply ``--cfg-options`` overrides.

    Raises:
        FileNotFoundError: naming the file when it does not exist.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'config file {path!r} does not exist')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def build_model(
    cfg: Config, checkpoint: str | None = None, device: str | torch.device = 'cpu'
) -> nn.Module:
    """Build ``cfg.model`` in eval mode, optionally with the weights of a checkpoint.

    The weights must match the model exactly (strict loading): a checkpoint trained with another
    number of classes or rays, or for another architecture, is an error rather than a model
    with silently random layers. Without a checkpoint the parameters keep their constructor
    values (``init_weights`` is not called, so no pretrained backbone is downloaded).
    The checkpoint's ``meta.dataset_meta`` (class names) becomes ``model.dataset_meta``.

    Args:
        cfg: a full config with a ``model`` entry.
        checkpoint: path of a checkpoint, or None.
        device: device to put the model on.

    Raises:
        RuntimeError: naming the config and the checkpoint when the weights do not fit.
    """
    register_all_modules()
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
        state_dict = loaded.get('state_dict', loaded)
        state_dict = {re.sub(r'^module\.', '', key): value for key, value in state_dict.items()}
        try:
            load_state_dict(model, state_dict, strict=True)
        except RuntimeError as error:
            raise RuntimeError(
                f'checkpoint {checkpoint!r} does not fit the model of config '
                f'{cfg.filename!r}: {str(error).strip()}\nUse the config the checkpoint was '
                f'trained with (same num_classes, num_rays, backbone and channels).'
            ) from error
        meta = loaded.get('meta')
        if isinstance(meta, dict) and 'dataset_meta' in meta:
            model.dataset_meta = meta['dataset_meta']
    return model.to(device).eval()


def config_input_shape(cfg: Config) -> tuple[int, int] | None:
    """(H, W) that the test pipeline's ``Resize`` produces, or None if it has no fixed scale.

    ``Resize.scale`` is (w, h) as in mmcv; with ``keep_ratio=True`` the image fits inside that
    box, so the result is an upper bound of the input size rather than the exact size.
    """
    dataloader = cfg.get('test_dataloader') or cfg.get('val_dataloader') or {}
    dataset = dataloader.get('dataset', {})
    while 'dataset' in dataset:  # dataset wrappers
        dataset = dataset['dataset']
    for transform in dataset.get('pipeline', []):
        scale = transform.get('scale')
        if transform.get('type') == 'Resize' and scale is not None:
            if isinstance(scale, int):
                return scale, scale
            width, height = scale
            return int(height), int(width)
    return None
