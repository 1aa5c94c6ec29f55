"""Checks that a checkpoint fits a model and its optimizer: one clear error naming the fix.

Used wherever weights meet a model built from a config: ``init_detector``, and through
``PolarRunner.load_checkpoint`` ``tools/test.py``, ``load_from`` and ``--resume``.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from mmengine.runner import CheckpointLoader
from torch import Tensor, nn
from torch.optim import Optimizer

from polarmask.engine.checkpoint import weights_only_uri

_ORIGINAL_PREDICTOR = re.compile(r'^bbox_head\.fcos_(cls|reg|mask|centerness)\.')
_CLASSIFIER = 'bbox_head.polar_cls.'
_NUM_EXAMPLES = 3
MODULE_PREFIX = [(r'^module\.', '')]
"""``revise_keys`` that strip the ``module.`` prefix of weights saved from a DDP-wrapped model."""


def checkpoint_weights(
    loaded: Any, checkpoint: str, revise_keys: Sequence[tuple[str, str]] = MODULE_PREFIX
) -> OrderedDict:
    """The state dict of a loaded checkpoint, with its keys revised.

    Args:
        loaded: what the checkpoint file holds: a dict with ``state_dict``, or a state dict.
        checkpoint: the checkpoint's name for the message.
        revise_keys: (pattern, replacement) pairs applied to every key with ``re.sub``.

    Returns:
        OrderedDict: name -> tensor, with the ``_metadata`` (module versions) of the original.

    Raises:
        ValueError: the file holds no state dict of tensors.
    """
    state_dict = loaded.get('state_dict', loaded) if isinstance(loaded, dict) else None
    if not isinstance(state_dict, dict) or not all(
        isinstance(value, Tensor) for value in state_dict.values()
    ):
        raise ValueError(
            f"checkpoint '{checkpoint}' holds no state dict of tensors (a dict with 'state_dict', "
            'or the state dict itself): pass a checkpoint written by tools/train.py'
        )
    revised = OrderedDict()
    for key, value in state_dict.items():
        for pattern, replacement in revise_keys:
            key = re.sub(pattern, replacement, key)
        revised[key] = value
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        revised._metadata = metadata
    return revised


def read_state_dict(checkpoint: str | os.PathLike) -> tuple[dict[str, Tensor], dict]:
    """(state dict without a ``module.`` prefix, meta) of a checkpoint file or URL."""
    path = os.fspath(checkpoint)
    if '://' not in path and not os.path.isfile(path):
        raise FileNotFoundError(
            f"checkpoint '{path}' does not exist: pass a .pth written by tools/train.py, e.g. "
            'work_dirs/polar_shapes_r18/latest.pth'
        )
    loaded = CheckpointLoader.load_checkpoint(weights_only_uri(path), map_location='cpu')
    state_dict = checkpoint_weights(loaded, path)
    meta = loaded.get('meta') if 'state_dict' in loaded else None
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
    head = getattr(model, 'bbox_head', None)
    for key, attribute, what in (
        ('bbox_head.polar_cls.weight', 'num_classes', 'classes'),
        ('bbox_head.polar_mask.weight', 'num_rays', 'rays'),
    ):
        expected = getattr(head, attribute, None)
        if expected is not None and key in state_dict and state_dict[key].shape[0] != expected:
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


def keep_own_classifier(model: nn.Module, state_dict: dict[str, Tensor]) -> list[str]:
    """For fine-tuning: replace a classifier trained for another number of classes in place.

    Each ``bbox_head.polar_cls.*`` weight of the state dict whose shape differs from the model's
    becomes the model's own (initialised) tensor, as mmdetection's ``load_from`` leaves a
    classifier of another size to its initialisation.

    Args:
        model: the detector built from the config, weights initialised.
        state_dict: the checkpoint's weights, changed in place.

    Returns:
        list[str]: ``'<key> <checkpoint shape>'`` of each replaced weight (empty when the
        classifier fits).
    """
    own = model.state_dict()
    replaced = []
    for key, value in state_dict.items():
        if key.startswith(_CLASSIFIER) and key in own and value.shape != own[key].shape:
            replaced.append(f'{key} {tuple(value.shape)}')
            state_dict[key] = own[key].detach().clone()
    return replaced


def check_optimizer_state(
    optimizer: Optimizer, model: nn.Module, saved: Any, checkpoint: str, config: str
) -> None:
    """Raise one clear error when a checkpoint's optimizer state does not fit an optimizer.

    Compares the number of parameter groups, the number of parameters of each group and the
    shape of every per-parameter state tensor (momentum, Adam moments) with its parameter, so
    that a resumed run fails here instead of inside the optimizer's first step.

    Args:
        optimizer: the optimizer built from the config, over ``model``'s parameters.
        model: the model, to name the parameters.
        saved: the checkpoint's ``optimizer`` entry (``optimizer.state_dict()``).
        checkpoint: the checkpoint's name for the message.
        config: the config's name for the message.

    Raises:
        ValueError: the optimizer state was written for other parameters; the message names
            the fix.
    """
    fix = (
        'Resume with the config and settings it was trained with, or start from its weights '
        'without the optimizer state: --cfg-options load_from=<checkpoint> and no --resume'
    )
    if not isinstance(saved, dict) or not isinstance(saved.get('param_groups'), list):
        raise ValueError(
            f"checkpoint '{checkpoint}' holds no optimizer state (optimizer.param_groups) to "
            f'resume from. {fix}'
        )
    groups, saved_groups = optimizer.param_groups, saved['param_groups']
    if len(saved_groups) != len(groups):
        raise ValueError(
            f"checkpoint '{checkpoint}': its optimizer state has {len(saved_groups)} parameter "
            f'groups but the optimizer of config {config} has {len(groups)}: it was written '
            'with another optim_wrapper.constructor or paramwise_cfg (checkpoints from before '
            'GroupedOptimWrapperConstructor have one group per parameter; e.g. --cfg-options '
            f'optim_wrapper.constructor=DefaultOptimWrapperConstructor). {fix}'
        )
    sizes = [len(group['params']) for group in groups]
    saved_sizes = [len(group.get('params', [])) for group in saved_groups]
    if saved_sizes != sizes:
        raise ValueError(
            f"checkpoint '{checkpoint}': the parameter groups of its optimizer state hold "
            f'{saved_sizes} parameters but those of config {config} hold {sizes}: it was '
            f'written for another model or with other frozen layers. {fix}'
        )
    names = {id(param): name for name, param in model.named_parameters()}
    params = [param for group in groups for param in group['params']]
    mismatched = []
    for index, state in saved.get('state', {}).items():
        param = params[int(index)] if 0 <= int(index) < len(params) else None
        for key, value in state.items() if isinstance(state, dict) else ():
            if not isinstance(value, Tensor) or value.dim() == 0:
                continue
            if param is None or value.shape != param.shape:
                shape = 'no parameter' if param is None else tuple(param.shape)
                name = names.get(id(param), f'parameter {index}')
                mismatched.append(f"{name} {shape} (state '{key}': {tuple(value.shape)})")
    if mismatched:
        raise ValueError(
            f"checkpoint '{checkpoint}': its optimizer state does not fit the parameters of "
            f'config {config}: {len(mismatched)} state tensors of another shape (e.g. '
            f'{_examples(mismatched)}). {fix}'
        )
