"""Loading pretrained backbone weights from mmengine's model zoo names, URLs or local files.

mmengine resolves ``open-mmlab://NAME`` and ``torchvision://NAME`` to download URLs; the download
itself goes through ``torch.hub`` (same cache directory as mmengine). Without network access the
failure is one error that names the URL and how to pass a local copy instead.
"""

from __future__ import annotations

import os.path as osp
from collections import OrderedDict

import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import (
    get_deprecated_model_names,
    get_external_models,
    get_torchvision_models,
    load_state_dict,
)
from torch import Tensor, nn

from polarmask.engine.checkpoint import load_local_checkpoint

_ZOO_PREFIXES = {
    'open-mmlab://': 'openmmlab',
    'openmmlab://': 'openmmlab',
    'torchvision://': 'torchvision',
    'modelzoo://': 'torchvision',
}


def resolve_checkpoint_url(checkpoint: str) -> str | None:
    """The download URL of a model-zoo name or URL; None for a local path.

    Args:
        checkpoint: ``open-mmlab://resnet50_caffe``, ``torchvision://resnet50``, an http(s)
            URL or a local file path.

    Returns:
        str | None: the URL to download, or None when ``checkpoint`` is a local path.
    """
    if checkpoint.startswith(('http://', 'https://')):
        return checkpoint
    for prefix, zoo in _ZOO_PREFIXES.items():
        if not checkpoint.startswith(prefix):
            continue
        name = checkpoint[len(prefix) :]
        if zoo == 'openmmlab':
            name = get_deprecated_model_names().get(name, name)
            urls = get_external_models()
        else:
            urls = get_torchvision_models()
        if name not in urls:
            raise KeyError(
                f'unknown pretrained model {checkpoint!r}: mmengine knows no {zoo} model named '
                f'{name!r}; pass a local file path as init_cfg.checkpoint instead'
            )
        return urls[name]
    return None


def _download(url: str) -> object:
    """Fetch ``url`` into the torch hub cache (or read the cached copy) and load it."""
    return torch.hub.load_state_dict_from_url(
        url, map_location='cpu', progress=False, weights_only=True
    )


def extract_state_dict(checkpoint: object, prefix: str | None = None) -> OrderedDict[str, Tensor]:
    """The state dict inside a loaded checkpoint, without ``module.`` wrappers.

    Args:
        checkpoint: a state dict, or a dict holding one under ``state_dict`` or ``model``.
        prefix: keep only keys starting with ``prefix`` (e.g. ``'backbone.'``), stripped of it.

    Returns:
        OrderedDict[str, Tensor]: parameter and buffer tensors by name.
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f'a checkpoint must be a dict of tensors, got {type(checkpoint).__name__}')
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    state_dict = OrderedDict()
    for key, value in checkpoint.items():
        if key.startswith('module.'):
            key = key[len('module.') :]
        if prefix is not None:
            if not key.startswith(prefix):
                continue
            key = key[len(prefix) :]
        state_dict[key] = value
    if prefix is not None and not state_dict:
        raise KeyError(f'no key of the checkpoint starts with prefix {prefix!r}')
    return state_dict


def load_pretrained(module: nn.Module, checkpoint: str, prefix: str | None = None) -> None:
    """Load pretrained weights into ``module`` by name (non-strict, mismatches logged).

    Args:
        module: the module to fill (e.g. a backbone).
        checkpoint: model-zoo name (``open-mmlab://...``, ``torchvision://...``), URL or path.
        prefix: only load the keys under this prefix (e.g. ``'backbone.'`` of a detector).

    Raises:
        RuntimeError: the URL could not be fetched; the message names it and the fix.
    """
    url = resolve_checkpoint_url(checkpoint)
    if url is None:
        loaded = load_local_checkpoint(checkpoint, map_location='cpu')
    else:
        hub_dir = osp.join(torch.hub.get_dir(), 'checkpoints')
        try:
            loaded = _download(url)
        except OSError as error:
            raise RuntimeError(
                f'could not fetch pretrained weights {checkpoint!r} from {url} ({error}). '
                f'Without network access, download that file on another machine and either put '
                f'it in {hub_dir}/ or pass it directly, e.g. '
                f'--cfg-options model.backbone.init_cfg.checkpoint=/path/to/{osp.basename(url)}'
            ) from error
    print_log(f'load pretrained weights from {checkpoint}', logger='current')
    load_state_dict(module, extract_state_dict(loaded, prefix), strict=False, logger='current')
