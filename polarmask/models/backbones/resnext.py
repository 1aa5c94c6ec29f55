"""ResNeXt backbones (Xie et al. 2017): ResNet bottlenecks with wider, grouped 3x3 convs."""

from __future__ import annotations

import math

from polarmask.registry import MODELS

from .resnet import Bottleneck, ResNet


@MODELS.register_module()
class ResNeXt(ResNet):
    """ResNeXt, e.g. 101 64x4d (``groups=64, base_width=4``) or 50 32x4d.

    The 3x3 conv of a stage with ``planes`` channels has ``floor(planes * base_width /
    base_channels) * groups`` channels in ``groups`` groups (torchvision's formula), so
    torchvision's ``resnext*`` weights load by name.

    Args:
        groups: groups of the 3x3 convs (cardinality).
        base_width: width per group at the first stage.
        **kwargs: :class:`ResNet` arguments; depth must be 50, 101 or 152.
    """

    arch_settings = {
        depth: (Bottleneck, blocks)
        for depth, (block, blocks) in ResNet.arch_settings.items()
        if block is Bottleneck
    }

    def __init__(self, groups: int = 1, base_width: int = 4, **kwargs) -> None:
        self.groups = groups
        self.base_width = base_width
        self.base_channels = kwargs.get('base_channels', 64)
        super().__init__(**kwargs)

    def _block_kwargs(self, planes: int) -> dict:
        if self.groups == 1:
            return dict(groups=1, width=planes)
        width = math.floor(planes * self.base_width / self.base_channels) * self.groups
        return dict(groups=self.groups, width=width)
