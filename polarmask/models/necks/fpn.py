"""Feature pyramid network (Lin et al. 2017) as used by the original PolarMask (mmdet v1)."""

from __future__ import annotations

import torch.nn.functional as F  # noqa: N812
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn

from polarmask.registry import MODELS

EXTRA_CONV_SOURCES = ('on_input', 'on_lateral', 'on_output')


@MODELS.register_module()
class FPN(BaseModule):
    """FPN: 1x1 laterals, nearest top-down upsampling and addition, 3x3 output convs.

    With PolarMask's config (``start_level=1, add_extra_convs='on_output', num_outs=5,
    relu_before_extra_convs=True``) C3-C5 give P3-P5, P6 = conv3x3/2(P5 output) and
    P7 = conv3x3/2(ReLU(P6)). Parameter names: ``lateral_convs.{i}.conv`` and
    ``fpn_convs.{i}.conv`` (extra levels continue the ``fpn_convs`` indices).

    Args:
        in_channels: channels of each backbone output.
        out_channels: channels of every pyramid level.
        num_outs: number of pyramid levels returned.
        start_level: first backbone output used.
        end_level: last backbone output used (inclusive); -1 for the last one.
        add_extra_convs: False (extra levels by stride-2 max pooling), True (= 'on_input'),
            or the source of the first extra conv: 'on_input' (last used backbone output),
            'on_lateral' (its lateral) or 'on_output' (the last pyramid output).
        relu_before_extra_convs: apply ReLU before every extra conv but the first.
        conv_cfg: conv layer config of ConvModule.
        norm_cfg: norm layer config (None: no norm, as the original).
        act_cfg: activation of the lateral and output convs (None: none, as the original).
        init_cfg: defaults to xavier-uniform convs with zero bias (mmdet v1's FPN init).
    """

    def __init__(
        self,
        in_channels: list[int],
        out_channels: int,
        num_outs: int,
        start_level: int = 0,
        end_level: int = -1,
        add_extra_convs: bool | str = False,
        relu_before_extra_convs: bool = False,
        conv_cfg: dict | None = None,
        norm_cfg: dict | None = None,
        act_cfg: dict | None = None,
        init_cfg: dict | list[dict] | None = None,
    ) -> None:
        if init_cfg is None:
            init_cfg = dict(type='Xavier', layer='Conv2d', distribution='uniform', bias=0)
        super().__init__(init_cfg)
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.relu_before_extra_convs = relu_before_extra_convs
        self.start_level = start_level
        self.end_level = len(in_channels) - 1 if end_level == -1 else end_level
        if not 0 <= start_level <= self.end_level < len(in_channels):
            raise ValueError(
                f'need 0 <= start_level ({start_level}) <= end_level ({end_level}) < '
                f'{len(in_channels)} backbone outputs'
            )
        num_used = self.end_level - start_level + 1
        if num_outs < num_used:
            raise ValueError(f'num_outs ({num_outs}) < number of used backbone levels ({num_used})')
        if add_extra_convs is True:
            add_extra_convs = 'on_input'
        if add_extra_convs and add_extra_convs not in EXTRA_CONV_SOURCES:
            raise ValueError(
                f'add_extra_convs must be a bool or one of {EXTRA_CONV_SOURCES} '
                f'(got {add_extra_convs!r})'
            )
        self.add_extra_convs = add_extra_convs

        conv_kwargs = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg, inplace=False)
        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        for index in range(start_level, self.end_level + 1):
            self.lateral_convs.append(
                ConvModule(in_channels[index], out_channels, 1, **conv_kwargs)
            )
            self.fpn_convs.append(
                ConvModule(out_channels, out_channels, 3, padding=1, **conv_kwargs)
            )
        if self.add_extra_convs:
            for extra in range(num_outs - num_used):
                if extra == 0 and self.add_extra_convs == 'on_input':
                    channels = in_channels[self.end_level]
                else:
                    channels = out_channels
                self.fpn_convs.append(
                    ConvModule(channels, out_channels, 3, stride=2, padding=1, **conv_kwargs)
                )

    def forward(self, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """Args: backbone outputs (N, C_i, H_i, W_i). Returns ``num_outs`` maps (N, C_out, ., .)."""
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'FPN expects {len(self.in_channels)} inputs, got {len(inputs)}')
        laterals = [
            conv(inputs[index + self.start_level]) for index, conv in enumerate(self.lateral_convs)
        ]
        for index in range(len(laterals) - 1, 0, -1):
            laterals[index - 1] = laterals[index - 1] + F.interpolate(
                laterals[index], size=laterals[index - 1].shape[-2:], mode='nearest'
            )
        outs = [self.fpn_convs[index](lateral) for index, lateral in enumerate(laterals)]

        num_used = len(laterals)
        if self.num_outs > num_used and not self.add_extra_convs:
            for _ in range(self.num_outs - num_used):
                outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        elif self.num_outs > num_used:
            source = {
                'on_input': inputs[self.end_level],
                'on_lateral': laterals[-1],
                'on_output': outs[-1],
            }[self.add_extra_convs]
            outs.append(self.fpn_convs[num_used](source))
            for index in range(num_used + 1, self.num_outs):
                previous = F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]
                outs.append(self.fpn_convs[index](previous))
        return tuple(outs)
