"""The tests' tiny PolarMask: the shipped R-50 base config, shrunk.

:func:`tiny_model_cfg` keeps the structure, the layer order and the parameter names of
``configs/_base_/models/polarmask_r50_fpn.py`` and everything that is not a width or a count
(strides, regress ranges, losses, data preprocessor, test settings), so the tests exercise the
shipped model at a size that runs in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

from mmengine.config import Config

R50_BASE = Path(__file__).resolve().parents[1] / 'configs/_base_/models/polarmask_r50_fpn.py'


def r50_model_cfg() -> dict:
    """A fresh copy of the ``model`` of the shipped R-50 base config, as plain dicts."""
    return Config.fromfile(str(R50_BASE)).model.to_dict()


def tiny_model_cfg(**test_cfg: object) -> dict:
    """The R-50 base model shrunk: ResNet-18 of base width 4 (stages of 4, 8, 16, 32 channels),
    an 8-channel FPN and head with two convolutions per tower and GroupNorm of 4 groups,
    3 classes, no pretrained weights.

    Args:
        test_cfg: values that replace those of the shipped ``test_cfg`` (e.g. ``max_per_img``).

    Returns:
        dict: the model config, ready for ``MODELS.build``.
    """
    cfg = r50_model_cfg()
    cfg['backbone'].update(depth=18, base_channels=4, init_cfg=None)
    cfg['neck'].update(in_channels=[4, 8, 16, 32], out_channels=8)
    cfg['bbox_head'].update(
        num_classes=3,
        in_channels=8,
        feat_channels=8,
        stacked_convs=2,
        norm_cfg=dict(type='GN', num_groups=4, requires_grad=True),
    )
    cfg['test_cfg'].update(test_cfg)
    return cfg
