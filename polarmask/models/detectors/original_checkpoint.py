"""Conversion of the original PolarMask checkpoints (xieenze/PolarMask) to this package.

The original's ``backbone.*``, ``neck.*`` and tower / scale keys already match ours, those of its
deformable-convolution models included (``backbone.layer*.*.conv2_offset.*``; the DCN head's flat
towers ``bbox_head.{cls,reg,mask}_convs.{i}.{weight,bias}`` and ``.conv_offset_mask.*``,
``docs/original_polarmask.md#deformable-convolutions``). Its two
generations differ in the predictor names and the ray angles
(``docs/original_polarmask.md#two-generations-of-the-code``):
released checkpoints use ``bbox_head.fcos_{cls,reg,mask,centerness}`` and the legacy angles
(ray 0 points left), HEAD code uses ``bbox_head.polar_*`` and the current angles (ray 0 points
down). Legacy ray channels are rolled by a quarter turn, ``new[k] = old[(k + R/4) mod R]``, so
the converted model decodes with the default ``angle_convention='current'``.
"""

from __future__ import annotations

import os.path as osp
import re
from collections import OrderedDict

from torch import Tensor

from polarmask.engine.checkpoint import load_local_checkpoint, save_checkpoint_atomically
from polarmask.models.backbones.pretrained import extract_state_dict
from polarmask.structures.polar import legacy_rays_to_current

SOURCE_CONVENTIONS = ('auto', 'legacy', 'current')

_PREDICTOR = re.compile(r'^bbox_head\.(fcos|polar)_(cls|reg|mask|centerness)\.(weight|bias)$')
_UNCHANGED = [
    re.compile(pattern)
    for pattern in (
        r'^backbone\.(conv1|bn1)\.\w+$',
        r'^backbone\.layer\d+\.\d+\.(conv\d|conv2_offset|bn\d|downsample\.\d)\.\w+$',
        r'^neck\.(lateral_convs|fpn_convs)\.\d+\.conv\.(weight|bias)$',
        r'^bbox_head\.(cls|reg|mask)_convs\.\d+\.(conv\.|gn\.|conv_offset_mask\.)?(weight|bias)$',
        r'^bbox_head\.scales_(bbox|mask)\.\d+\.scale$',
    )
]


def resolve_convention(state_dict: dict[str, Tensor], convention: str = 'auto') -> str:
    """The angle convention of a state dict's rays: 'auto' -> 'legacy' iff ``fcos_*`` keys."""
    if convention not in SOURCE_CONVENTIONS:
        raise ValueError(f'unknown convention {convention!r}: use one of {SOURCE_CONVENTIONS}')
    if convention != 'auto':
        return convention
    legacy = any((m := _PREDICTOR.match(key)) and m[1] == 'fcos' for key in state_dict)
    return 'legacy' if legacy else 'current'


def convert_original_state_dict(
    state_dict: dict[str, Tensor], convention: str = 'auto'
) -> tuple[OrderedDict[str, Tensor], list[str]]:
    """Map an original state dict to this package's names and angle convention.

    Args:
        state_dict: the original model's state dict (``backbone.``, ``neck.``, ``bbox_head.``).
        convention: angle convention of the input's ray channels; 'auto' means 'legacy' when the
            predictors are named ``fcos_*`` and 'current' otherwise. 'legacy' ray channels
            (``polar_mask`` weight and bias) are rolled to the current convention.

    Returns:
        tuple: the converted state dict, and the input keys that were not mapped (dropped).
    """
    convention = resolve_convention(state_dict, convention)
    converted: OrderedDict[str, Tensor] = OrderedDict()
    unmapped = []
    for key, value in state_dict.items():
        match = _PREDICTOR.match(key)
        if match:
            _, branch, param = match.groups()
            if branch == 'mask' and convention == 'legacy':
                value = legacy_rays_to_current(value)
            converted[f'bbox_head.polar_{branch}.{param}'] = value
        elif any(pattern.match(key) for pattern in _UNCHANGED):
            converted[key] = value
        else:
            unmapped.append(key)
    return converted, unmapped


def convert_original_checkpoint(
    in_path: str, out_path: str, convention: str = 'auto'
) -> tuple[int, list[str], str]:
    """Convert an original checkpoint file; the output is written atomically.

    The input is read with ``torch.load(weights_only=True)``; the output holds
    ``dict(state_dict=..., meta=dict(converted_from=..., source_convention=...))``.

    Args:
        in_path: original ``.pth`` (a state dict or a dict with ``state_dict``).
        out_path: where to write the converted checkpoint.
        convention: see :func:`convert_original_state_dict`.

    Returns:
        tuple: number of converted keys, the unmapped input keys, the source convention used.
    """
    state_dict = extract_state_dict(load_local_checkpoint(in_path, map_location='cpu'))
    convention = resolve_convention(state_dict, convention)
    converted, unmapped = convert_original_state_dict(state_dict, convention)
    meta = dict(converted_from=osp.basename(in_path), source_convention=convention)
    save_checkpoint_atomically(dict(state_dict=converted, meta=meta), out_path)
    return len(converted), unmapped, convention
