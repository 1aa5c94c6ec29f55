"""The seed configs give every parameter the original PolarMask's lr and weight decay."""

import re
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from torch import nn

from polarmask.registry import MODELS
from polarmask.utils import register_all_modules

register_all_modules()

CONFIG_ROOT = Path(__file__).resolve().parents[2] / 'configs' / 'polarmask'

# Norm layers by name, as mmdet v1's build_optimizer (``paramwise_options``) finds them.
ORIGINAL_NORM_PARAMETER = re.compile(r'(bn|gn)(\d+)?.(weight|bias)')


def original_options(name: str, base_lr: float, base_wd: float) -> tuple[float, float]:
    """(lr, weight decay) the original gives parameter ``name`` with bias_lr_mult=2,
    bias_decay_mult=0 and the default norm_decay_mult=1."""
    if ORIGINAL_NORM_PARAMETER.search(name):
        return base_lr, base_wd
    if name.endswith('.bias'):
        return base_lr * 2, 0.0
    return base_lr, base_wd


@pytest.mark.parametrize(
    ('path', 'head_norm_bias'),
    [
        ('4gpu/polar_768_1x_r50.py', 'bbox_head.cls_convs.0.gn.bias'),
        ('32gpu/polar_768_1x_r50.py', 'bbox_head.reg_convs.3.gn.bias'),
        ('32gpu/polar_640_800_2x_r50.py', 'bbox_head.mask_convs.1.gn.bias'),
        # Under DCN the head's GroupNorms are tower entries 1, 4, 7, 10: no 'gn' in the name.
        ('32gpu/polar_768_1x_r50_dcn2.py', 'bbox_head.cls_convs.10.bias'),
    ],
)
def test_every_trainable_parameter_gets_the_original_lr_and_decay(path, head_norm_bias):
    cfg = Config.fromfile(str(CONFIG_ROOT / path))
    model = MODELS.build(cfg.model)
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    options = {
        id(param): (group['lr'], group['weight_decay'])
        for group in optimizer.param_groups
        for param in group['params']
    }
    base_lr, base_wd = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    assert len(options) == len(trainable)
    wrong = [
        name
        for name, param in trainable
        if options[id(param)] != pytest.approx(original_options(name, base_lr, base_wd))
    ]
    assert not wrong, f'{len(wrong)} parameters differ from the original: {wrong}'
    # The rule is not vacuous here: a GroupNorm bias of the head is a norm parameter by name
    # (base lr, decayed) without DCN, and a bias like any other (lr x2, no decay) with DCN.
    assert isinstance(model.get_submodule(head_norm_bias.rsplit('.', 1)[0]), nn.GroupNorm)
    expected = (base_lr * 2, 0.0) if 'dcn' in path else (base_lr, base_wd)
    assert options[id(dict(trainable)[head_norm_bias])] == pytest.approx(expected)
