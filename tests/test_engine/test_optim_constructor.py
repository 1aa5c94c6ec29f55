"""GroupedOptimWrapperConstructor: mmengine's per-parameter options in as few groups as possible."""

import copy

import pytest
import torch
from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from polarmask.engine import GroupedOptimWrapperConstructor, merge_param_groups
from polarmask.utils import register_all_modules

register_all_modules()


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, bias=False),
        nn.GroupNorm(2, 4),
        nn.Conv2d(4, 2, 1),
    )


def options_by_parameter(optimizer: torch.optim.Optimizer) -> dict[int, tuple]:
    return {
        id(param): (group['lr'], group['weight_decay'], group['momentum'])
        for group in optimizer.param_groups
        for param in group['params']
    }


def test_merge_keeps_first_appearance_order_and_parameter_order():
    a, b, c, d = (torch.zeros(1) for _ in range(4))
    groups = [
        {'params': [a]},
        {'params': [b], 'weight_decay': 0.0},
        {'params': [c]},
        {'params': [d], 'weight_decay': 0.0},
    ]
    merged = merge_param_groups(groups)
    assert [group['params'] for group in merged] == [[a, c], [b, d]]
    assert merged[0].keys() == {'params'} and merged[1]['weight_decay'] == 0.0


def test_merge_tells_apart_options_that_differ_in_any_key():
    a, b = torch.zeros(1), torch.zeros(1)
    merged = merge_param_groups([{'params': [a], 'lr': 0.02}, {'params': [b], 'lr': 0.01}])
    assert len(merged) == 2


@pytest.mark.parametrize(
    'paramwise_cfg',
    [
        dict(bias_lr_mult=2.0, bias_decay_mult=0.0),  # the seed's SGD schedule
        dict(norm_decay_mult=0.0, bias_decay_mult=0.0),  # the demo's AdamW
    ],
)
def test_same_options_per_parameter_as_mmengine_in_fewer_groups(paramwise_cfg):
    optimizer_cfg = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4)
    model = small_model()
    default = DefaultOptimWrapperConstructor(
        dict(optimizer=optimizer_cfg), copy.deepcopy(paramwise_cfg)
    )(model).optimizer
    grouped = GroupedOptimWrapperConstructor(
        dict(optimizer=optimizer_cfg), copy.deepcopy(paramwise_cfg)
    )(model).optimizer
    assert options_by_parameter(grouped) == options_by_parameter(default)
    distinct = set(options_by_parameter(default).values())
    assert len(grouped.param_groups) == len(distinct) < len(default.param_groups)


def test_training_steps_match_mmengine_constructor():
    optimizer_cfg = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-2)
    paramwise_cfg = dict(bias_lr_mult=2.0, bias_decay_mult=0.0, norm_decay_mult=0.0)
    models = [small_model(), small_model()]
    constructors = [DefaultOptimWrapperConstructor, GroupedOptimWrapperConstructor]
    wrappers = [
        constructor(dict(optimizer=optimizer_cfg), dict(paramwise_cfg))(model)
        for constructor, model in zip(constructors, models, strict=True)
    ]
    inputs = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        for model, wrapper in zip(models, wrappers, strict=True):
            wrapper.update_params(model(inputs).square().mean())
    for expected, actual in zip(
        models[0].state_dict().values(), models[1].state_dict().values(), strict=True
    ):
        torch.testing.assert_close(actual, expected)


def test_configs_build_the_grouped_constructor():
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    for path in (
        'configs/polarmask/4gpu/polar_768_1x_r50.py',
        'configs/polarmask/demo/polar_shapes_r18.py',
    ):
        cfg = Config.fromfile(path)
        assert cfg.optim_wrapper.constructor == 'GroupedOptimWrapperConstructor'
    demo = Config.fromfile('configs/polarmask/demo/polar_shapes_r18.py')
    wrapper = build_optim_wrapper(small_model(), demo.optim_wrapper)
    decays = sorted(group['weight_decay'] for group in wrapper.optimizer.param_groups)
    assert decays == [0.0, 0.05]


def test_groups_stating_the_optimizers_own_options_merge_with_those_that_do_not():
    # norm_decay_mult=1 makes mmengine state weight_decay=base_wd for norm layers only.
    optimizer_cfg = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4)
    paramwise_cfg = dict(bias_lr_mult=2.0, bias_decay_mult=0.0, norm_decay_mult=1.0)
    model = small_model()
    grouped = GroupedOptimWrapperConstructor(dict(optimizer=optimizer_cfg), paramwise_cfg)(model)
    default = DefaultOptimWrapperConstructor(
        dict(optimizer=optimizer_cfg), copy.deepcopy(paramwise_cfg)
    )(model)
    assert options_by_parameter(grouped.optimizer) == options_by_parameter(default.optimizer)
    assert len(grouped.optimizer.param_groups) == 2  # weights and norms; other biases
