"""Checks that a checkpoint's weights fit a model: one clear error naming the fix.

Used wherever weights meet a model built from a config: ``init_detector``, ``tools/test.py`` and
``load_from``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from mmengine.runner import CheckpointLoader
from torch import Tensor, nn

from polarmask.engine.checkpoint import weights_only_uri

_ORIGINAL_PREDICTOR = re.compile(r'^bbox_head\.fcos_(cls|reg|mask|centerness)\.')
_NUM_EXAMPLES = 3


def read_state_dict(checkpoint: str | os.PathLike) -> tuple[dict[str, Tensor], dict]:
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
