"""ResNet backbones with torchvision's parameter names and mmdetection's constructor arguments.

Parameter names equal torchvision's (``conv1``, ``bn1``, ``layer{1-4}.{i}.conv{1,2,3}``,
``bn{1,2,3}``, ``downsample.{0,1}``), so torchvision and open-mmlab ImageNet weights, and the
original PolarMask checkpoints' ``backbone.*`` keys, load by name. With deformable convolutions
(``dcn``) a bottleneck's ``conv2`` is deformable and its offsets come from a sibling
``conv2_offset``, as in mmdet v1 (``docs/original_polarmask.md#deformable-convolutions``).
"""

from __future__ import annotations

from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule, constant_init
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from polarmask.models.layers import DeformConv2d, split_offset_mask
from polarmask.registry import MODELS

from .pretrained import load_pretrained

STYLES = ('pytorch', 'caffe')
DCN_KEYS = ('modulated', 'deformable_groups', 'fallback_on_stride', 'groups')


def check_dcn_cfg(dcn: dict | None) -> None:
    """Refuse keys that mmdet v1's ``dcn`` dict does not have (mmdetection 2.x/3.x's are named).

    Raises:
        ValueError: an unknown key, e.g. mmdetection 2.x's ``type='DCN'`` or ``deform_groups``.
    """
    unknown = sorted(set(dcn or {}) - set(DCN_KEYS))
    if unknown:
        raise ValueError(
            f"unknown dcn keys {unknown}: the dcn dict takes mmdet v1's keys {list(DCN_KEYS)} "
            f"(mmdetection 2.x's deform_groups is deformable_groups; type='DCN' is "
            f"modulated=False, type='DCNv2' modulated=True)"
        )


def _conv3x3(in_channels: int, out_channels: int, stride: int, dilation: int, groups: int = 1):
    return nn.Conv2d(
        in_channels,
        out_channels,
        3,
        stride=stride,
        padding=dilation,
        dilation=dilation,
        groups=groups,
        bias=False,
    )


class _Block(nn.Module):
    """Shared residual plumbing: optional checkpointing, shortcut, final ReLU."""

    def __init__(self, downsample: nn.Module | None, with_cp: bool) -> None:
        super().__init__()
        self.downsample = downsample
        self.with_cp = with_cp
        self.relu = nn.ReLU(inplace=True)

    def _residual(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _inner_forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self._residual(x) + identity

    def forward(self, x: Tensor) -> Tensor:
        if self.with_cp and x.requires_grad:
            out = checkpoint(self._inner_forward, x, use_reentrant=False)
        else:
            out = self._inner_forward(x)
        return self.relu(out)


class BasicBlock(_Block):
    """Two 3x3 convolutions (ResNet-18/34); the stride sits on the first one in both styles."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        style: str = 'pytorch',
        with_cp: bool = False,
        norm_cfg: dict | None = None,
        groups: int = 1,
        width: int | None = None,
        dcn: dict | None = None,
    ) -> None:
        super().__init__(downsample, with_cp)
        if groups != 1 or (width is not None and width != planes):
            raise ValueError('BasicBlock supports neither groups nor widths (use depth >= 50)')
        if dcn is not None:
            raise ValueError('BasicBlock has no deformable conv, as in mmdet v1 (use depth >= 50)')
        norm_cfg = norm_cfg or dict(type='BN')
        self.conv1 = _conv3x3(in_channels, planes, stride, dilation)
        self.bn1 = build_norm_layer(norm_cfg, planes)[1]
        self.conv2 = _conv3x3(planes, planes, 1, 1)
        self.bn2 = build_norm_layer(norm_cfg, planes)[1]

    @property
    def last_norm(self) -> nn.Module:
        return self.bn2

    def _residual(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class Bottleneck(_Block):
    """1x1 -> 3x3 -> 1x1 bottleneck; 'pytorch' style strides the 3x3, 'caffe' style the first 1x1.

    Args:
        width: channels of the 3x3 conv (``planes`` for ResNet; wider and grouped for ResNeXt).
        dcn: make the 3x3 conv ``conv2`` deformable, as mmdet v1: ``modulated`` (DCNv2, default
            False), ``deformable_groups`` (default 1), ``groups`` of the deformable conv (default
            and only allowed value: the block's ``groups``; mmdet v1 reads them from here and
            defaults to 1, which its ResNeXt configs override), ``fallback_on_stride`` (True keeps
            every ``conv2`` plain, as in mmdetection). The offsets (and mask) come from a sibling
            3x3 conv ``conv2_offset`` with bias and ``conv2``'s stride and dilation.
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        style: str = 'pytorch',
        with_cp: bool = False,
        norm_cfg: dict | None = None,
        groups: int = 1,
        width: int | None = None,
        dcn: dict | None = None,
    ) -> None:
        super().__init__(downsample, with_cp)
        norm_cfg = norm_cfg or dict(type='BN')
        width = planes if width is None else width
        conv1_stride, conv2_stride = (stride, 1) if style == 'caffe' else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, width, 1, stride=conv1_stride, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, width)[1]
        self.modulated = False
        self.conv2_offset: nn.Conv2d | None = None
        if dcn is None or dcn.get('fallback_on_stride', False):
            self.conv2 = _conv3x3(width, width, conv2_stride, dilation, groups)
        else:
            if dcn.get('groups', groups) != groups:
                raise ValueError(
                    f"dcn groups={dcn['groups']} differ from the block's groups={groups}: set "
                    f'dcn groups to {groups} (or leave it out) so the deformable conv keeps the '
                    f'shape of the convolution it replaces'
                )
            self.modulated = dcn.get('modulated', False)
            self.conv2 = DeformConv2d(
                width,
                width,
                3,
                stride=conv2_stride,
                padding=dilation,
                dilation=dilation,
                groups=groups,
                deform_groups=dcn.get('deformable_groups', 1),
            )
            self.conv2_offset = nn.Conv2d(
                width,
                self.conv2.offset_channels(self.modulated),
                3,
                stride=conv2_stride,
                padding=dilation,
                dilation=dilation,
            )
        self.bn2 = build_norm_layer(norm_cfg, width)[1]
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = build_norm_layer(norm_cfg, planes * self.expansion)[1]

    @property
    def last_norm(self) -> nn.Module:
        return self.bn3

    def _conv2(self, x: Tensor) -> Tensor:
        if self.conv2_offset is None:
            return self.conv2(x)
        return self.conv2(x, *split_offset_mask(self.conv2_offset(x), self.modulated))

    def _residual(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self._conv2(out)))
        return self.bn3(self.conv3(out))


@MODELS.register_module()
class ResNet(BaseModule):
    """ResNet (He et al. 2016) returning the outputs of the chosen stages.

    Args:
        depth: 18, 34, 50, 101 or 152.
        in_channels: input image channels.
        base_channels: channels of the stem; stage i has ``base_channels * 2**i`` planes.
        num_stages: number of residual stages (1-4).
        strides: stride of the first block of each stage.
        dilations: dilation of the 3x3 convs of each stage.
        out_indices: stages (0-based) whose outputs are returned.
        style: 'pytorch' (stride on the 3x3 conv) or 'caffe' (stride on the first 1x1 conv).
        frozen_stages: freeze the stem and stages 1..frozen_stages (-1: nothing frozen).
        norm_cfg: normalisation layers; ``requires_grad=False`` freezes their affine parameters.
        norm_eval: keep every BatchNorm in eval mode (running statistics frozen) while training.
        with_cp: recompute block activations in the backward pass to save memory.
        zero_init_residual: zero the last norm of each block when not loading pretrained weights.
        dcn: deformable 3x3 convs in the stages chosen by ``stage_with_dcn``, mmdet v1's dict
            (see :class:`Bottleneck`), e.g. ``dict(modulated=False, deformable_groups=1,
            fallback_on_stride=False)``; bottleneck depths only.
        stage_with_dcn: per stage, whether its bottlenecks get ``dcn``.
        init_cfg: mmengine init config; ``dict(type='Pretrained', checkpoint=...)`` accepts
            ``open-mmlab://NAME``, ``torchvision://NAME``, a URL or a local file. As in mmdet
            v1, ``conv2_offset`` is zeroed when initialising from scratch and keeps PyTorch's
            default init when loading pretrained weights (which do not contain it).
    """

    arch_settings = {
        18: (BasicBlock, (2, 2, 2, 2)),
        34: (BasicBlock, (3, 4, 6, 3)),
        50: (Bottleneck, (3, 4, 6, 3)),
        101: (Bottleneck, (3, 4, 23, 3)),
        152: (Bottleneck, (3, 8, 36, 3)),
    }

    def __init__(
        self,
        depth: int,
        in_channels: int = 3,
        base_channels: int = 64,
        num_stages: int = 4,
        strides: tuple[int, ...] = (1, 2, 2, 2),
        dilations: tuple[int, ...] = (1, 1, 1, 1),
        out_indices: tuple[int, ...] = (0, 1, 2, 3),
        style: str = 'pytorch',
        frozen_stages: int = -1,
        norm_cfg: dict | None = None,
        norm_eval: bool = True,
        with_cp: bool = False,
        zero_init_residual: bool = True,
        dcn: dict | None = None,
        stage_with_dcn: tuple[bool, ...] = (False, False, False, False),
        init_cfg: dict | list[dict] | None = None,
    ) -> None:
        if init_cfg is None:
            init_cfg = [
                dict(type='Kaiming', layer='Conv2d'),
                dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm']),
            ]
        super().__init__(init_cfg)
        if depth not in self.arch_settings:
            raise KeyError(
                f'invalid depth {depth} for {type(self).__name__}: use one of '
                f'{sorted(self.arch_settings)}'
            )
        if not 1 <= num_stages <= 4:
            raise ValueError(f'num_stages must be in 1..4 (got {num_stages})')
        if len(strides) < num_stages or len(dilations) < num_stages:
            raise ValueError('strides and dilations need one entry per stage')
        if not out_indices or max(out_indices) >= num_stages:
            raise ValueError(f'out_indices {out_indices} must index the {num_stages} stages')
        if style not in STYLES:
            raise ValueError(f'unknown style {style!r}: use one of {STYLES}')
        check_dcn_cfg(dcn)
        if len(stage_with_dcn) < num_stages:
            raise ValueError(f'stage_with_dcn {stage_with_dcn} needs one entry per stage')
        if dcn is None and any(stage_with_dcn[:num_stages]):
            raise ValueError(
                f'stage_with_dcn {stage_with_dcn} asks for deformable convs but dcn is None: '
                f'pass dcn=dict(modulated=False, deformable_groups=1, fallback_on_stride=False)'
            )
        self.depth = depth
        self.out_indices = tuple(out_indices)
        self.style = style
        self.frozen_stages = frozen_stages
        self.norm_cfg = norm_cfg or dict(type='BN', requires_grad=True)
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.zero_init_residual = zero_init_residual
        self.block, stage_blocks = self.arch_settings[depth]

        self.conv1 = nn.Conv2d(in_channels, base_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = build_norm_layer(self.norm_cfg, base_channels)[1]
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        self.res_layers = []
        channels = base_channels
        for index in range(num_stages):
            planes = base_channels * 2**index
            layer = self._make_stage(
                channels,
                planes,
                stage_blocks[index],
                strides[index],
                dilations[index],
                dcn if stage_with_dcn[index] else None,
            )
            channels = planes * self.block.expansion
            name = f'layer{index + 1}'
            self.add_module(name, layer)
            self.res_layers.append(name)
        self.out_channels = [
            base_channels * 2**index * self.block.expansion for index in self.out_indices
        ]
        self._freeze_stages()

    def _block_kwargs(self, planes: int) -> dict:
        """Extra block arguments per stage (ResNeXt widens and groups the 3x3 conv)."""
        return {}

    def _make_stage(
        self,
        in_channels: int,
        planes: int,
        num_blocks: int,
        stride: int,
        dilation: int,
        dcn: dict | None,
    ) -> nn.Sequential:
        out_channels = planes * self.block.expansion
        downsample = None
        if stride != 1 or in_channels != out_channels:
            downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                build_norm_layer(self.norm_cfg, out_channels)[1],
            )
        common = dict(
            dilation=dilation,
            style=self.style,
            with_cp=self.with_cp,
            norm_cfg=self.norm_cfg,
            dcn=dcn,
            **self._block_kwargs(planes),
        )
        blocks = [self.block(in_channels, planes, stride, downsample=downsample, **common)]
        blocks += [self.block(out_channels, planes, 1, **common) for _ in range(1, num_blocks)]
        return nn.Sequential(*blocks)

    def _freeze_stages(self) -> None:
        frozen = []
        if self.frozen_stages >= 0:
            frozen += [self.conv1, self.bn1]
        frozen += [getattr(self, name) for name in self.res_layers[: max(self.frozen_stages, 0)]]
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def init_weights(self) -> None:
        """Load pretrained weights, or initialise: Kaiming convs, unit norms, zeroed
        ``conv2_offset`` (deformable convs keep their own init) and zeroed residuals."""
        if self.is_init:
            return
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            load_pretrained(self, self.init_cfg['checkpoint'], self.init_cfg.get('prefix'))
            self.is_init = True
            return
        super().init_weights()
        for module in self.modules():
            if isinstance(module, Bottleneck) and module.conv2_offset is not None:
                constant_init(module.conv2_offset, 0)
            if self.zero_init_residual and isinstance(module, _Block):
                constant_init(module.last_norm, 0)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Args: x (N, C_in, H, W). Returns the outputs of ``out_indices`` (stride 4 to 32)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for index, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if index in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> ResNet:
        """Switch modes, keeping frozen stages (and all BatchNorms if ``norm_eval``) in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self
