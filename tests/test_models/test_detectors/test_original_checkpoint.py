"""Conversion of original PolarMask checkpoints: key renaming, ray rolling, unmapped keys."""

import importlib.util
from pathlib import Path

import pytest
import torch

from polarmask.models.detectors import (
    convert_original_checkpoint,
    convert_original_state_dict,
    legacy_rays_to_current,
)
from polarmask.structures.polar import rays_to_polygons

REPO = Path(__file__).resolve().parents[3]


def _legacy_head(num_rays=36, channels=4):
    state = {}
    for branch, out in (('cls', 3), ('reg', 4), ('mask', num_rays), ('centerness', 1)):
        weight = torch.arange(out, dtype=torch.float32)[:, None, None, None]
        state[f'bbox_head.fcos_{branch}.weight'] = weight.expand(out, channels, 3, 3).clone()
        state[f'bbox_head.fcos_{branch}.bias'] = torch.arange(out, dtype=torch.float32)
    state['bbox_head.cls_convs.0.conv.weight'] = torch.ones(channels, channels, 3, 3)
    state['bbox_head.cls_convs.0.gn.weight'] = torch.ones(channels)
    state['bbox_head.scales_mask.4.scale'] = torch.tensor(1.5)
    state['backbone.layer1.0.downsample.1.running_mean'] = torch.zeros(channels)
    state['neck.fpn_convs.4.conv.bias'] = torch.zeros(channels)
    return state


def test_legacy_keys_are_renamed_and_rays_rolled():
    state = _legacy_head()
    converted, unmapped = convert_original_state_dict(state)
    assert unmapped == []
    assert not any('fcos' in key for key in converted)
    assert len(converted) == len(state)
    bias = converted['bbox_head.polar_mask.bias']
    assert bias.tolist() == [float((k + 9) % 36) for k in range(36)]
    weight = converted['bbox_head.polar_mask.weight']
    assert weight[:, 0, 0, 0].tolist() == [float((k + 9) % 36) for k in range(36)]
    torch.testing.assert_close(converted['bbox_head.polar_cls.bias'], torch.arange(3.0))
    assert converted['bbox_head.scales_mask.4.scale'].item() == 1.5


@pytest.mark.parametrize('num_rays', [36, 72, 24])
def test_rolled_rays_decode_to_the_same_polygon(num_rays):
    torch.manual_seed(0)
    points = torch.rand(5, 2) * 100
    legacy_rays = torch.rand(5, num_rays) * 30 + 1
    current_rays = legacy_rays_to_current(legacy_rays.T).T
    legacy = rays_to_polygons(points, legacy_rays, convention='legacy')
    current = rays_to_polygons(points, current_rays, convention='current')
    torch.testing.assert_close(current, legacy.roll(-(num_rays // 4), dims=1))


def test_current_checkpoint_is_unchanged_and_unknown_keys_reported():
    state = {key.replace('fcos_', 'polar_'): value for key, value in _legacy_head().items()}
    state['backbone.layer2.0.conv2.conv_offset.weight'] = torch.zeros(18, 4, 3, 3)  # mmdet 2.x
    state['bbox_head.debug_counter'] = torch.tensor(3)
    converted, unmapped = convert_original_state_dict(state)
    assert sorted(unmapped) == [
        'backbone.layer2.0.conv2.conv_offset.weight',
        'bbox_head.debug_counter',
    ]
    torch.testing.assert_close(converted['bbox_head.polar_mask.bias'], torch.arange(36.0))
    forced, _ = convert_original_state_dict(state, convention='legacy')
    assert forced['bbox_head.polar_mask.bias'][0].item() == 9


@pytest.mark.parametrize('generation', ['fcos', 'polar'])
def test_dcn_keys_are_copied(generation):
    """The original's DCN names are ours: backbone offset convs and the head's flat towers."""
    dcn_keys = {
        'backbone.layer2.0.conv2_offset.weight': (18, 4, 3, 3),
        'backbone.layer4.2.conv2_offset.bias': (27,),
        'bbox_head.cls_convs.0.weight': (4, 4, 3, 3),
        'bbox_head.cls_convs.0.bias': (4,),
        'bbox_head.reg_convs.9.conv_offset_mask.weight': (27, 4, 3, 3),
        'bbox_head.mask_convs.9.conv_offset_mask.bias': (27,),
        'bbox_head.mask_convs.10.weight': (4,),
        'bbox_head.cls_convs.1.bias': (4,),
    }
    state = {key.replace('fcos_', f'{generation}_'): v for key, v in _legacy_head().items()}
    state.update({key: torch.rand(shape) for key, shape in dcn_keys.items()})
    converted, unmapped = convert_original_state_dict(state)
    assert unmapped == []
    for key in dcn_keys:
        assert converted[key] is state[key]


def test_legacy_rays_need_a_multiple_of_four():
    with pytest.raises(ValueError, match='angle_convention="legacy"'):
        convert_original_state_dict(_legacy_head(num_rays=18))
    renamed, _ = convert_original_state_dict(_legacy_head(num_rays=18), convention='current')
    torch.testing.assert_close(renamed['bbox_head.polar_mask.bias'], torch.arange(18.0))


def test_checkpoint_file_and_command_line(tmp_path, capsys):
    source = tmp_path / 'polar_768_1x_r50.pth'
    state = _legacy_head()
    state['bbox_head.unknown.weight'] = torch.zeros(1)
    meta = dict(mmdet_version='1.0rc0+90c4798', CLASSES=('person', 'bicycle'), epoch=12)
    torch.save(dict(meta=meta, state_dict=state, optimizer=dict(state={}, param_groups=[])), source)
    target = tmp_path / 'out' / 'converted.pth'
    num_keys, unmapped, convention = convert_original_checkpoint(str(source), str(target))
    assert (num_keys, unmapped, convention) == (
        len(state) - 1,
        ['bbox_head.unknown.weight'],
        'legacy',
    )
    loaded = torch.load(target, weights_only=True)
    assert loaded['meta']['source_convention'] == 'legacy'
    assert loaded['state_dict']['bbox_head.polar_mask.bias'][0].item() == 9
    assert [p.name for p in target.parent.iterdir()] == ['converted.pth']

    spec = importlib.util.spec_from_file_location(
        'polarmask_original_to_ours',
        REPO / 'tools' / 'model_converters' / 'polarmask_original_to_ours.py',
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([str(source), str(tmp_path / 'cli.pth'), '--convention', 'auto']) == 0
    printed = capsys.readouterr().out
    assert 'bbox_head.unknown.weight' in printed
    assert 'legacy' in printed
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        convert_original_checkpoint(str(tmp_path / 'missing.pth'), str(tmp_path / 'x.pth'))
