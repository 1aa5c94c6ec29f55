"""Every config in configs/ loads, and its model builds and runs on the CPU."""

from inspect import signature
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from polarmask.models.heads import PolarMaskHead
from polarmask.models.layers import DeformConv2d, ModulatedDeformConv2dPack
from polarmask.registry import MODELS
from polarmask.utils import register_all_modules
from tests.tiny_model import shrink_model_cfg, tiny_batch

CONFIG_ROOT = Path(__file__).resolve().parents[2] / 'configs'
LEAF_CONFIGS = sorted(p for p in (CONFIG_ROOT / 'polarmask').rglob('*.py'))
# The original's deformable-convolution configs and the non-DCN config each one extends.
DCN_CONFIGS = {
    '32gpu/polar_768_1x_r50_dcn2.py': '32gpu/polar_768_1x_r50.py',
    '32gpu/polar_768_1x_r101_dcn2.py': '32gpu/polar_768_1x_r101.py',
    '32gpu/polar_768_1x_x101_dcn2.py': '32gpu/polar_768_1x_x101.py',
    '32gpu/polar_640_800_2x_r50_dcn2.py': '32gpu/polar_640_800_2x_r50.py',
    '32gpu/polar_640_800_2x_r101_dcn2.py': '32gpu/polar_640_800_2x_r101.py',
    '32gpu/polar_640_800_2x_x101_dcn2.py': '32gpu/polar_640_800_2x_x101.py',
    '32gpu/polar_640_800_6x_r101_dcn2.py': '32gpu/polar_640_800_2x_r101_dcn2.py',
}


@pytest.fixture(scope='module', autouse=True)
def _registered():
    register_all_modules()


def test_every_seed_config_exists():
    names = {p.relative_to(CONFIG_ROOT / 'polarmask').as_posix() for p in LEAF_CONFIGS}
    for gpus in ('4gpu', '32gpu'):
        for backbone in ('r50', 'r101', 'x101'):
            assert f'{gpus}/polar_768_1x_{backbone}.py' in names
    assert 'demo/polar_shapes_r18.py' in names
    assert set(DCN_CONFIGS) <= names


@pytest.mark.parametrize('path', LEAF_CONFIGS, ids=lambda p: p.relative_to(CONFIG_ROOT).as_posix())
def test_config_builds_model(path):
    cfg = Config.fromfile(str(path))
    model = MODELS.build(cfg.model)
    head = cfg.model.bbox_head
    assert model.bbox_head.num_classes == head.num_classes
    if 'demo' in path.parts:
        model.eval()
        with torch.no_grad():
            outputs = model(torch.rand(1, 3, 64, 96), mode='tensor')
        cls_scores = outputs[0]
        # One map per head stride, of the padded input's size divided by the stride (rounded up).
        assert [tuple(s.shape[-2:]) for s in cls_scores] == [
            (-(-64 // stride), -(-96 // stride)) for stride in head.strides
        ]


@pytest.mark.parametrize(
    ('path', 'lr', 'warmup', 'milestones', 'epochs', 'images_per_gpu'),
    [
        ('4gpu/polar_768_1x_r50.py', 0.01, 500, [8, 11], 12, 4),
        ('4gpu/polar_768_1x_x101.py', 0.01, 500, [8, 11], 12, 2),
        ('32gpu/polar_768_1x_r50.py', 0.08, 2000, [10, 13], 14, 4),
        ('32gpu/polar_768_1x_x101.py', 0.04, 2000, [10, 13], 14, 2),
        ('32gpu/polar_640_800_2x_r50.py', 0.02, 2000, [18, 24], 26, 1),
        ('32gpu/polar_768_1x_r50_dcn2.py', 0.08, 2000, [10, 13], 14, 4),
        ('32gpu/polar_768_1x_x101_dcn2.py', 0.04, 2000, [10, 13], 14, 2),
        ('32gpu/polar_640_800_2x_r101_dcn2.py', 0.02, 2000, [18, 24], 26, 1),
        ('32gpu/polar_640_800_6x_r101_dcn2.py', 0.02, 2000, [50, 68], 74, 1),
    ],
)
def test_seed_schedules(path, lr, warmup, milestones, epochs, images_per_gpu):
    cfg = Config.fromfile(str(CONFIG_ROOT / 'polarmask' / path))
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.momentum, optimizer.weight_decay) == ('SGD', 0.9, 1e-4)
    assert optimizer.lr == pytest.approx(lr)
    paramwise_cfg = dict(cfg.optim_wrapper.paramwise_cfg)
    # DCN configs add the head's GroupNorm biases as custom keys (tests/test_param_groups.py).
    assert bool(paramwise_cfg.pop('custom_keys', None)) == ('dcn2' in path)
    assert paramwise_cfg == dict(bias_lr_mult=2.0, bias_decay_mult=0.0, norm_decay_mult=1.0)
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=35, norm_type=2)
    warmup_cfg, steps_cfg = cfg.param_scheduler
    assert warmup_cfg.type == 'LinearLR' and warmup_cfg.by_epoch is False
    assert warmup_cfg.end == warmup + 1  # the lr reaches base_lr at iteration `warmup`
    assert warmup_cfg.start_factor * lr == pytest.approx(0.01 / 3)
    assert steps_cfg.type == 'MultiStepLR' and steps_cfg.milestones == milestones
    assert cfg.train_cfg.max_epochs == epochs
    assert cfg.train_dataloader.batch_size == images_per_gpu


@pytest.mark.parametrize(
    ('path', 'train_resize', 'test_scale'),
    [
        ('4gpu/polar_768_1x_r50.py', dict(type='Resize', scale=(1280, 768)), (1280, 768)),
        ('32gpu/polar_800_1x_r50.py', dict(type='Resize', scale=(1333, 800)), (1333, 800)),
        (
            '32gpu/polar_640_800_2x_r50.py',
            dict(type='RandomResize', scale=[(1333, 640), (1333, 800)]),
            (1333, 800),
        ),
        ('demo/polar_shapes_r18.py', dict(type='Resize', scale=(160, 160)), (176, 176)),
        ('demo/polar_small_shapes_r18.py', dict(type='Resize', scale=(160, 160)), (192, 192)),
    ],
)
def test_data_configs_change_only_the_resize_of_the_768_base(path, train_resize, test_scale):
    base = Config.fromfile(str(CONFIG_ROOT / '_base_' / 'datasets' / 'coco_instance_768.py'))
    cfg = Config.fromfile(str(CONFIG_ROOT / 'polarmask' / path))
    train = cfg.train_dataloader.dataset.pipeline
    assert [step.type for step in train] == [
        train_resize['type'] if step.type == 'Resize' else step.type for step in base.train_pipeline
    ]
    assert train[2] == dict(train_resize, keep_ratio=False)
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        assert [step.type for step in loader.dataset.pipeline] == [
            step.type for step in base.test_pipeline
        ]
        assert loader.dataset.pipeline[1] == dict(type='Resize', scale=test_scale, keep_ratio=False)
    assert base.train_pipeline[2].scale == (1280, 768)


@pytest.mark.parametrize('path', LEAF_CONFIGS, ids=lambda p: p.relative_to(CONFIG_ROOT).as_posix())
def test_only_the_demos_fill_missing_rays_and_round_vertices(path):
    # The seed configs reproduce the original's targets (missing rays 1e-6); the demos, whose
    # shapes are small, train every ray (docs/demo_accuracy.md).
    # Likewise their test configs round the polygons' vertices, the seed configs keep them for
    # the original's truncation when rasterised.
    model = Config.fromfile(str(path)).model
    assert model.bbox_head.get('fill_missing_rays', False) == ('demo' in path.parts)
    assert signature(PolarMaskHead).parameters['fill_missing_rays'].default is False
    assert model.test_cfg.get('round_vertices', False) == ('demo' in path.parts)


def test_demo_keeps_its_own_data_filters():
    cfg = Config.fromfile(str(CONFIG_ROOT / 'polarmask' / 'demo' / 'polar_shapes_r18.py'))
    assert cfg.train_dataloader.dataset.type == 'ShapesDataset'
    assert cfg.train_dataloader.dataset.filter_cfg == dict(filter_empty_gt=True, min_size=32)
    assert (cfg.train_dataloader.num_workers, cfg.val_dataloader.batch_size) == (0, 8)


@pytest.mark.parametrize(
    ('path', 'pad'),
    [
        ('4gpu/polar_768_1x_x101.py', 32),
        ('32gpu/polar_768_1x_x101.py', 32),
        ('32gpu/polar_640_800_2x_x101.py', 128),
    ],
)
def test_x101_configs(path, pad):
    model = Config.fromfile(str(CONFIG_ROOT / 'polarmask' / path)).model
    backbone = model.backbone
    assert (backbone.type, backbone.depth, backbone.style) == ('ResNeXt', 101, 'pytorch')
    assert (backbone.groups, backbone.base_width, backbone.frozen_stages) == (64, 4, 1)
    assert backbone.init_cfg.checkpoint == 'open-mmlab://resnext101_64x4d'
    preprocessor = model.data_preprocessor
    assert preprocessor.mean == [123.675, 116.28, 103.53] and preprocessor.bgr_to_rgb is True
    assert preprocessor.pad_size_divisor == pad


def _without(cfg: Config, *keys: str) -> dict:
    """The config as plain dicts without the given dotted keys (where it has them)."""
    plain = cfg.to_dict()
    for key in keys:
        *parents, last = key.split('.')
        node = plain
        for parent in parents:
            node = node.get(parent, {})
        node.pop(last, None)
    return plain


@pytest.mark.parametrize(('path', 'base'), DCN_CONFIGS.items())
def test_dcn_configs_change_only_what_the_original_changes(path, base):
    """Each DCN config equals the config it extends but for the original's DCN settings."""
    cfg = Config.fromfile(str(CONFIG_ROOT / 'polarmask' / path))
    base_cfg = Config.fromfile(str(CONFIG_ROOT / 'polarmask' / base))
    backbone = cfg.model.backbone
    assert backbone.stage_with_dcn == (False, True, True, True)
    assert cfg.model.bbox_head.use_dcn is True
    expected_dcn = dict(modulated='6x' in path, deformable_groups=1, fallback_on_stride=False) | (
        dict(groups=64) if 'x101' in path else {}
    )
    assert backbone.dcn == expected_dcn
    assert backbone.type == ('ResNeXt' if 'x101' in path else 'ResNet')
    changed = ['model.backbone.dcn', 'model.backbone.stage_with_dcn', 'model.bbox_head.use_dcn']
    changed += ['optim_wrapper.paramwise_cfg.custom_keys', 'dcn_model', 'dcn_optim_wrapper']
    if path.endswith('2x_r101_dcn2.py'):
        assert (cfg.train_dataloader.num_workers, base_cfg.train_dataloader.num_workers) == (4, 5)
        changed.append('train_dataloader.num_workers')
    if '6x' in path:
        assert (cfg.train_cfg.max_epochs, cfg.param_scheduler[1].milestones) == (74, [50, 68])
        changed = ['model.backbone.dcn.modulated', 'train_cfg.max_epochs', 'max_epochs']
        changed.append('param_scheduler')
    assert _without(cfg, *changed) == _without(base_cfg, *changed)


@pytest.mark.parametrize('path', DCN_CONFIGS)
def test_dcn_config_model_shrunk_runs_forward_and_loss_on_cpu(path):
    cfg = Config.fromfile(str(CONFIG_ROOT / 'polarmask' / path))
    torch.manual_seed(0)
    model = MODELS.build(shrink_model_cfg(cfg.model.to_dict()))
    model.init_weights()
    block = model.backbone.layer3[0]
    assert isinstance(block.conv2, DeformConv2d) and block.modulated == ('6x' in path)
    assert block.conv2.groups == (2 if 'x101' in path else 1)
    assert block.conv2_offset.out_channels == (27 if '6x' in path else 18)
    assert isinstance(model.bbox_head.cls_convs[0], ModulatedDeformConv2dPack)
    data = model.data_preprocessor(tiny_batch(), training=True)
    losses = model(**data, mode='loss')
    assert all(torch.isfinite(value) and value > 0 for value in losses.values())
    model.parse_losses(losses)[0].backward()
