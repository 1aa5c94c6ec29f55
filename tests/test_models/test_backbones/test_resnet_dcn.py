"""ResNet / ResNeXt with deformable convs (mmdet v1's ``dcn``): names, shapes, init, equivalence."""

import math

import pytest
import torch
from torch import nn

from polarmask.models.backbones import ResNet, ResNeXt
from polarmask.models.layers import DeformConv2d
from tests.test_models.test_backbones.test_resnet import randomise_norms

DCN = dict(modulated=False, deformable_groups=1, fallback_on_stride=False)
STAGES = (False, True, True, True)


def _resnet(depth=50, dcn=None, cls=ResNet, **kwargs):
    torch.manual_seed(0)
    stages = STAGES if dcn is not None else (False,) * 4
    model = cls(depth=depth, base_channels=8, dcn=dcn, stage_with_dcn=stages, **kwargs)
    model.init_weights()
    return model


def _offset_keys(model: nn.Module) -> list[str]:
    return [key for key in model.state_dict() if 'conv2_offset' in key]


@pytest.mark.parametrize(
    ('dcn', 'channels'),
    [
        (DCN, 18),
        (dict(DCN, modulated=True), 27),
        (dict(DCN, deformable_groups=2), 36),
    ],
)
def test_stages_2_to_4_get_a_deformable_conv2_and_its_offset_conv(dcn, channels):
    model = _resnet(dcn=dcn, style='caffe')
    assert not any(name.startswith('layer1') for name in _offset_keys(model))
    for index, stage in enumerate((model.layer2, model.layer3, model.layer4)):
        width = 8 * 2 ** (index + 1)
        for block in stage:
            assert isinstance(block.conv2, DeformConv2d) and block.conv2.bias is None
            assert block.conv2.weight.shape == (width, width, 3, 3)
            assert block.conv2_offset.weight.shape == (channels, width, 3, 3)
            assert block.conv2_offset.bias.shape == (channels,)
            assert block.modulated == dcn['modulated']
    # Every bottleneck of stages 2-4 (4 + 6 + 3 for R-50) has one weight and one bias.
    assert len(_offset_keys(model)) == 2 * 13
    assert type(model.layer1[0].conv2) is nn.Conv2d


def test_fallback_on_stride_keeps_every_conv2_plain_as_mmdetection():
    model = _resnet(dcn=dict(DCN, fallback_on_stride=True))
    assert _offset_keys(model) == []
    assert all(type(m) is not DeformConv2d for m in model.modules())


@pytest.mark.parametrize(
    ('cls', 'kwargs'),
    [
        (ResNet, dict(style='caffe')),
        (ResNet, dict(style='pytorch')),
        (ResNeXt, dict(style='pytorch', groups=2, base_width=4)),
    ],
    ids=['caffe', 'pytorch', 'resnext'],
)
@torch.no_grad()
def test_zero_offsets_give_the_plain_network(cls, kwargs):
    """From scratch conv2_offset is zero, so DCNv1 equals the plain model with the same weights;
    DCNv2 samples with mask sigmoid(0) = 0.5, i.e. the plain model with conv2 halved."""
    plain = _resnet(cls=cls, **kwargs).eval()
    randomise_norms(plain)
    x = torch.randn(2, 3, 64, 80)
    expected = plain(x)
    for modulated in (False, True):
        dcn = dict(DCN, modulated=modulated, groups=kwargs.get('groups', 1))
        model = _resnet(cls=cls, dcn=dcn, **kwargs).eval()
        result = model.load_state_dict(plain.state_dict(), strict=False)
        assert sorted(result.missing_keys) == sorted(_offset_keys(model))
        assert result.unexpected_keys == []
        if modulated:
            for stage in (model.layer2, model.layer3, model.layer4):
                for block in stage:
                    block.conv2.weight.mul_(2.0)
        for out, exp in zip(model(x), expected, strict=True):
            # Sums in another order (im2col + matmul): differences of 1e-4 after 16 blocks.
            torch.testing.assert_close(out, exp, rtol=1e-3, atol=2e-4)


def test_init_from_scratch_and_from_pretrained_weights(tmp_path):
    model = _resnet(dcn=DCN)
    block = model.layer3[1]
    assert torch.count_nonzero(block.conv2_offset.weight) == 0
    assert torch.count_nonzero(block.conv2_offset.bias) == 0
    bound = 1 / math.sqrt(32 * 9)  # the deformable conv keeps its own init, not Kaiming
    assert 0.9 * bound < block.conv2.weight.abs().max() <= bound

    plain = _resnet()
    path = tmp_path / 'resnet50.pth'
    torch.save(plain.state_dict(), path)
    torch.manual_seed(1)
    pretrained = ResNet(
        depth=50,
        base_channels=8,
        dcn=DCN,
        stage_with_dcn=STAGES,
        init_cfg=dict(type='Pretrained', checkpoint=str(path)),
    )
    pretrained.init_weights()
    block = pretrained.layer3[1]
    torch.testing.assert_close(block.conv2.weight, plain.layer3[1].conv2.weight)
    # As the original with a pretrained checkpoint: PyTorch's default init, not zero.
    assert torch.count_nonzero(block.conv2_offset.weight) == block.conv2_offset.weight.numel()
    assert block.conv2_offset.weight.abs().max() <= bound


def test_gradients_reach_the_offset_convs():
    # Zeroed residual norms would stop every gradient inside the blocks.
    model = _resnet(dcn=dict(DCN, modulated=True), zero_init_residual=False).train()
    sum(out.square().mean() for out in model(torch.randn(2, 3, 64, 64))).backward()
    for stage in (model.layer2, model.layer3, model.layer4):
        grad = stage[0].conv2_offset.weight.grad
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_resnext_deformable_convs_keep_the_groups():
    model = _resnet(cls=ResNeXt, dcn=dict(DCN, groups=4), style='pytorch', groups=4, base_width=4)
    conv = model.layer2[0].conv2
    assert isinstance(conv, DeformConv2d) and conv.groups == 4
    assert conv.weight.shape == (32, 8, 3, 3)  # width floor(16 * 4 / 8) * 4, 4 groups
    assert model.layer2[0].conv2_offset.weight.shape == (18, 32, 3, 3)
    assert model.layer2[0].conv2_offset.stride == (2, 2)  # pytorch style: stride on the 3x3


def test_bad_dcn_arguments_name_the_fix():
    with pytest.raises(ValueError, match=r"unknown dcn keys \['deform_groups', 'type'\]"):
        ResNet(depth=50, dcn=dict(type='DCN', deform_groups=1), stage_with_dcn=STAGES)
    with pytest.raises(ValueError, match='dcn is None: pass dcn=dict'):
        ResNet(depth=50, stage_with_dcn=STAGES)
    with pytest.raises(ValueError, match='one entry per stage'):
        ResNet(depth=50, dcn=DCN, stage_with_dcn=(False, True))
    with pytest.raises(ValueError, match='BasicBlock has no deformable conv'):
        ResNet(depth=18, dcn=DCN, stage_with_dcn=STAGES)
    with pytest.raises(ValueError, match='set dcn groups to 4'):
        ResNeXt(depth=50, groups=4, dcn=dict(DCN, groups=64), stage_with_dcn=STAGES)
