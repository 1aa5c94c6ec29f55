"""Deformable convolutions against plain convolutions: zero offsets, masks, offset layout, init."""

import math

import pytest
import torch
from torch.nn import functional

from polarmask.models.layers import DeformConv2d, ModulatedDeformConv2dPack, split_offset_mask

# (in, out, stride, padding, dilation, groups, deform_groups)
SHAPES = [
    (4, 6, 1, 1, 1, 1, 1),
    (8, 8, 2, 1, 1, 1, 2),
    (8, 4, 1, 2, 2, 2, 1),
    (8, 8, 2, 1, 1, 4, 2),
]


def _conv(in_channels, out_channels, stride, padding, dilation, groups, deform_groups, bias):
    torch.manual_seed(0)
    conv = DeformConv2d(
        in_channels,
        out_channels,
        3,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        deform_groups=deform_groups,
        bias=bias,
    )
    if bias:
        torch.nn.init.uniform_(conv.bias, -1, 1)
    return conv


def _plain(conv: DeformConv2d, x: torch.Tensor, bias: bool = True) -> torch.Tensor:
    return functional.conv2d(
        x,
        conv.weight,
        conv.bias if bias else None,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
    )


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('bias', [False, True])
def test_zero_offsets_equal_the_plain_conv(shape, bias):
    conv = _conv(*shape, bias=bias)
    x = torch.randn(2, shape[0], 11, 13)
    expected = _plain(conv, x)
    size = expected.shape[-2:]
    offset = torch.zeros(2, conv.offset_channels(modulated=False), *size)
    torch.testing.assert_close(conv(x, offset), expected, rtol=1e-5, atol=1e-5)
    # DCNv2: a unit mask is the plain conv, a mask of m scales the taps (not the bias) by m.
    mask = torch.ones(2, conv.offset_channels(modulated=True) // 3, *size)
    torch.testing.assert_close(conv(x, offset, mask), expected, rtol=1e-5, atol=1e-5)
    half = conv(x, offset, mask * 0.5)
    without_bias = _plain(conv, x, bias=False)
    torch.testing.assert_close(half, expected - 0.5 * without_bias, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(('channel', 'shift'), [(0, (1, 0)), (1, (0, 1))])
def test_offset_channels_are_dy_then_dx_per_tap(channel, shift):
    """An integer offset of every tap samples the input shifted by it: channels 2k are y, 2k+1 x."""
    conv = _conv(3, 5, 1, 1, 1, 1, 1, bias=False)
    x = torch.randn(1, 3, 9, 10)
    offset = torch.zeros(1, 18, 9, 10)
    offset[:, channel::2] = 1.0
    # Zero-pad as the conv does (1 pixel) and past the shift, then read from the shift on.
    padded = functional.pad(x, (1, 1 + shift[1], 1, 1 + shift[0]))[..., shift[0] :, shift[1] :]
    expected = functional.conv2d(padded, conv.weight)
    torch.testing.assert_close(conv(x, offset), expected, rtol=1e-5, atol=1e-5)


def test_split_offset_mask():
    raw = torch.arange(2 * 27 * 2, dtype=torch.float32).reshape(1, 54, 1, 2)
    offset, mask = split_offset_mask(raw, modulated=True)
    torch.testing.assert_close(offset, raw[:, :36])
    torch.testing.assert_close(mask, raw[:, 36:].sigmoid())
    same, none = split_offset_mask(raw[:, :36], modulated=False)
    assert same is not None and none is None
    torch.testing.assert_close(same, raw[:, :36])


def test_pack_starts_as_the_plain_conv_at_half_weight_and_learns_offsets():
    torch.manual_seed(0)
    conv = ModulatedDeformConv2dPack(6, 4, 3, padding=1, deform_groups=2)
    assert conv.conv_offset_mask.out_channels == 3 * 2 * 9
    assert torch.count_nonzero(conv.conv_offset_mask.weight) == 0
    assert torch.count_nonzero(conv.conv_offset_mask.bias) == 0
    torch.nn.init.uniform_(conv.bias, -1, 1)
    x = torch.randn(2, 6, 8, 7, requires_grad=True)
    out = conv(x)
    expected = 0.5 * _plain(conv, x, bias=False) + conv.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    out.square().sum().backward()
    for grad in (conv.conv_offset_mask.weight.grad, conv.conv_offset_mask.bias.grad):
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert conv.weight.grad.abs().sum() > 0 and x.grad.abs().sum() > 0
    assert sorted(name for name, _ in conv.named_parameters()) == [
        'bias',
        'conv_offset_mask.bias',
        'conv_offset_mask.weight',
        'weight',
    ]


def test_init_as_mmdet_v1():
    torch.manual_seed(0)
    conv = DeformConv2d(64, 32, 3, groups=4)
    assert conv.bias is None and conv.weight.shape == (32, 16, 3, 3)
    bound = 1 / math.sqrt(64 * 9)  # every input channel counted, groups or not
    assert conv.weight.abs().max() <= bound
    assert conv.weight.abs().max() > 0.9 * bound
    pack = ModulatedDeformConv2dPack(64, 32, 3, padding=1)
    assert pack.bias is not None and torch.count_nonzero(pack.bias) == 0


def test_deform_groups_must_divide_the_input_channels():
    with pytest.raises(ValueError, match='divisible by deform_groups 3'):
        DeformConv2d(8, 8, 3, deform_groups=3)
