# PolarMask X-101-64x4d-FPN as the original's x101 configs (docs/original_polarmask.md#model): the
# R-50 base with a pytorch-style ResNeXt-101 64x4d and RGB normalisation.
_base_ = './polarmask_r50_fpn.py'

model = dict(
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True
    ),
    backbone=dict(
        type='ResNeXt',
        depth=101,
        groups=64,
        base_width=4,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnext101_64x4d'),
    ),
)
