"""FPN: PolarMask's P3-P7 layout, parameter names, top-down arithmetic, xavier init."""

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from polarmask.models.necks import FPN


def _polarmask_fpn(channels=(8, 16, 32, 64), out_channels=8) -> FPN:
    return FPN(
        in_channels=list(channels),
        out_channels=out_channels,
        start_level=1,
        add_extra_convs='on_output',
        num_outs=5,
        relu_before_extra_convs=True,
    )


def _inputs(channels=(8, 16, 32, 64), size=64):
    torch.manual_seed(0)
    return tuple(torch.randn(2, c, size // 2**i, size // 2**i) for i, c in enumerate(channels))


def test_state_dict_names_match_original():
    fpn = _polarmask_fpn((256, 512, 1024, 2048), 256)
    expected = {f'lateral_convs.{i}.conv.{p}' for i in range(3) for p in ('weight', 'bias')}
    expected |= {f'fpn_convs.{i}.conv.{p}' for i in range(5) for p in ('weight', 'bias')}
    assert set(fpn.state_dict()) == expected
    assert fpn.fpn_convs[3].conv.in_channels == 256
    assert fpn.fpn_convs[3].conv.stride == (2, 2)


@torch.no_grad()
def test_forward_matches_hand_computation():
    fpn = _polarmask_fpn().eval()
    fpn.init_weights()
    for param in fpn.parameters():
        param.normal_(0, 0.1)
    inputs = _inputs()
    outs = fpn(inputs)
    assert [tuple(o.shape[-2:]) for o in outs] == [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]

    def conv(module, x, stride=1, padding=0):
        return F.conv2d(x, module.conv.weight, module.conv.bias, stride=stride, padding=padding)

    lat5 = conv(fpn.lateral_convs[2], inputs[3])
    lat4 = conv(fpn.lateral_convs[1], inputs[2]) + lat5.repeat_interleave(2, 2).repeat_interleave(
        2, 3
    )
    p5 = conv(fpn.fpn_convs[2], lat5, padding=1)
    p4 = conv(fpn.fpn_convs[1], lat4, padding=1)
    p6 = conv(fpn.fpn_convs[3], p5, stride=2, padding=1)
    p7 = conv(fpn.fpn_convs[4], p6.relu(), stride=2, padding=1)
    for out, expected in zip(outs[1:], (p4, p5, p6, p7), strict=True):
        torch.testing.assert_close(out, expected)


def test_xavier_uniform_init():
    fpn = _polarmask_fpn((256, 512, 1024, 2048), 256)
    fpn.init_weights()
    weight = fpn.fpn_convs[0].conv.weight
    fan_in = fan_out = 256 * 9
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert weight.abs().max() <= bound
    assert weight.abs().max() > 0.95 * bound
    assert all(torch.count_nonzero(m.conv.bias) == 0 for m in fpn.fpn_convs)
    assert all(torch.count_nonzero(m.conv.bias) == 0 for m in fpn.lateral_convs)


def test_extra_levels_without_convs_use_max_pool():
    fpn = FPN(in_channels=[8, 16], out_channels=4, num_outs=4)
    outs = fpn(_inputs((8, 16), 32))
    assert [o.shape[-1] for o in outs] == [32, 16, 8, 4]
    torch.testing.assert_close(outs[2], outs[1][..., ::2, ::2])


def test_bad_configuration_is_reported():
    with pytest.raises(ValueError, match='add_extra_convs'):
        FPN(in_channels=[8, 16], out_channels=4, num_outs=3, add_extra_convs='on_top')
    with pytest.raises(ValueError, match='num_outs'):
        FPN(in_channels=[8, 16, 32], out_channels=4, num_outs=2)
    with pytest.raises(ValueError, match='expects 2 inputs'):
        FPN(in_channels=[8, 16], out_channels=4, num_outs=2)(_inputs((8, 16, 32), 32))
