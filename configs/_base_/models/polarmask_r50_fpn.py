# PolarMask R-50-FPN as the original's configs/polarmask/4gpu/polar_768_1x_r50.py
# (docs/original_polarmask.md#model).
model = dict(
    type='PolarMask',
    data_preprocessor=dict(
        type='PolarDataPreprocessor',
        mean=[102.9801, 115.9465, 122.7717],
        std=[1.0, 1.0, 1.0],
        bgr_to_rgb=False,
        pad_size_divisor=32,
    ),
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='caffe',
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnet50_caffe'),
    ),
    neck=dict(
        type='FPN',
        in_channels=[256, 512, 1024, 2048],
        out_channels=256,
        start_level=1,
        add_extra_convs='on_output',
        num_outs=5,
        relu_before_extra_convs=True,
    ),
    bbox_head=dict(
        type='PolarMaskHead',
        num_classes=80,
        in_channels=256,
        stacked_convs=4,
        feat_channels=256,
        strides=[8, 16, 32, 64, 128],
        regress_ranges=((-1, 64), (64, 128), (128, 256), (256, 512), (512, 1e8)),
        num_rays=36,
        angle_convention='current',
        center_sample_radius=1.5,
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
        centerness_factor=0.5,
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='IoULoss', loss_weight=1.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_mask=dict(type='PolarIoULoss', loss_weight=1.0),
    ),
    test_cfg=dict(
        nms_pre=1000,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.5, offset=1),
        max_per_img=100,
        mask_nms=False,
    ),
)

# Test-time augmentation (tools/test.py --tta): the views of the dataset's tta_pipeline, mapped
# back and merged by class-wise NMS on the box branch's boxes.
tta_model = dict(
    type='PolarTTAModel',
    tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5, offset=1), max_per_img=100),
)
