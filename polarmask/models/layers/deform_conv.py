"""Deformable convolutions on ``torchvision.ops.deform_conv2d``, named and initialised as mmdet v1.

DCNv1 (Dai et al. 2017) samples each of the K = kh * kw kernel taps at a learned offset; DCNv2
(Zhu et al. 2019, "modulated") also scales each sampled value by a learned mask in [0, 1]. For
G deformable groups (each a slice of the input channels with its own offsets) the tensors are:

- offsets (N, 2 * G * K, H_out, W_out): channel ``2 * (g * K + k)`` is the y offset and the
  next one the x offset of tap k (row-major over the kernel) of group g, in input pixels;
- mask (N, G * K, H_out, W_out): channel ``g * K + k`` scales tap k of group g.

mmdet v1's (and mmcv's) kernels and torchvision's read this same layout, so weights trained with
the original's ``mmdet.ops.dcn`` run here unchanged
(``docs/original_polarmask.md#deformable-convolutions``).
"""

from __future__ import annotations

import math

import torchvision
from torch import Tensor, nn


def split_offset_mask(offset_conv_out: Tensor, modulated: bool) -> tuple[Tensor, Tensor | None]:
    """Split the output of an offset conv into offsets and, for DCNv2, the mask.

    Args:
        offset_conv_out: (N, 2 * G * K, H, W) offsets, or with ``modulated`` (N, 3 * G * K, H, W):
            the offsets in the first two thirds and the mask logits in the last third (mmdet v1
            chunks it in three and concatenates the first two).
        modulated: whether the last third holds mask logits.

    Returns:
        tuple: offsets (N, 2 * G * K, H, W) and the mask ``sigmoid(logits)`` (N, G * K, H, W),
        or None without modulation.
    """
    if not modulated:
        return offset_conv_out, None
    num_offsets = offset_conv_out.size(1) // 3 * 2
    return offset_conv_out[:, :num_offsets], offset_conv_out[:, num_offsets:].sigmoid()


class DeformConv2d(torchvision.ops.DeformConv2d):
    """A deformable convolution whose offsets (and mask) come from elsewhere.

    ``forward(x, offset, mask=None)``: DCNv1 without a mask, DCNv2 with one; the number of
    deformable groups is read from the offsets' channels. Parameters ``weight`` (out, in /
    groups, kh, kw) and ``bias`` are named as mmdet v1's ``DeformConv`` /
    ``ModulatedDeformConv``, and initialised as they are: weight uniform in +-1 / sqrt(in_channels
    * kh * kw) (every input channel counted, whatever the groups), bias 0.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: side of the square kernel.
        stride: stride, in input pixels.
        padding: zero padding on each side.
        dilation: spacing of the kernel taps before the offsets are added.
        groups: convolution groups (ResNeXt's cardinality).
        deform_groups: deformable groups G, sizing :meth:`offset_channels`.
        bias: learn a bias (mmdet v1's DCNv1 has none, its DCNv2 one).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        deform_groups: int = 1,
        bias: bool = False,
    ) -> None:
        if in_channels % deform_groups != 0:
            raise ValueError(
                f'in_channels {in_channels} must be divisible by deform_groups {deform_groups}'
            )
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
        )
        self.deform_groups = deform_groups

    def reset_parameters(self) -> None:
        """mmdet v1's init: weight uniform in +-1 / sqrt(in_channels * kh * kw), bias 0."""
        bound = 1.0 / math.sqrt(self.in_channels * math.prod(self.kernel_size))
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def offset_channels(self, modulated: bool) -> int:
        """Channels of the offset conv feeding this one: 2 * G * K, or 3 * G * K with a mask."""
        return (3 if modulated else 2) * self.deform_groups * math.prod(self.kernel_size)


class ModulatedDeformConv2dPack(DeformConv2d):
    """DCNv2 that predicts its own offsets and mask: mmdet v1's ``ModulatedDeformConvPack``.

    A 3 * G * K-channel conv ``conv_offset_mask`` (same kernel, stride, padding and dilation,
    with bias, zero-initialised so that training starts from the plain convolution at half
    weight: zero offsets, mask sigmoid(0) = 0.5) reads the input; its output is split by
    :func:`split_offset_mask`. Takes :class:`DeformConv2d`'s arguments; ``bias`` defaults to
    True as in mmdet v1.
    """

    def __init__(self, *args, bias: bool = True, **kwargs) -> None:
        super().__init__(*args, bias=bias, **kwargs)
        self.conv_offset_mask = nn.Conv2d(
            self.in_channels,
            self.offset_channels(modulated=True),
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            bias=True,
        )
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, x: Tensor) -> Tensor:
        """(N, in_channels, H, W) -> (N, out_channels, H_out, W_out)."""
        offset, mask = split_offset_mask(self.conv_offset_mask(x), modulated=True)
        return super().forward(x, offset, mask)
