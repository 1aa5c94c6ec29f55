# The embedded demo: PolarMask with a quarter-width ResNet-18 (base_channels 16, first three
# stages) and a two-level FPN, trained from scratch on the synthetic shapes dataset that the
# project generates itself (tools/misc/make_shapes_dataset.py --image-size 160 160; generated into
# data/shapes/ the first time this config runs) at its native 160x160, tested at 176x176. Sized
# for a 2-core CPU laptop: 15 epochs in 5.5-8 minutes (measured figures in the README; what
# limits its AP and what each setting below gave: docs/demo_accuracy.md).
# Measured on 2 cores: a half-width backbone adds 3 points at equal epochs but nothing at equal
# time (0.641 in 7 min against 0.644 for this quarter width trained 19 epochs in 6 min), and a
# 64-channel head beats a 32-channel one with more epochs.
# The data settings are the 768 base's with the shapes dataset and its size.
_base_ = [
    '../../_base_/models/polarmask_r50_fpn.py',
    '../../_base_/datasets/coco_instance_768.py',
    '../../_base_/default_runtime.py',
]

dataset_type = 'ShapesDataset'
data_root = 'data/shapes/'
img_scale = (160, 160)
max_epochs = 15
# Fixed-size images, drawn at the training size: no warp, no resampling of small shapes.
generator_cfg = dict(image_size=img_scale[::-1])  # (H, W) from (W, H)

model = dict(
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
    ),
    # Two pyramid levels: every demo object is at most ~80 px, so max(l, t, r, b) of its positive
    # points stays under 128 and the original's P5-P7 (ranges 128-INF) never get a positive;
    # dropping them and the backbone stage that only fed them makes a step ~25% faster.
    backbone=dict(
        depth=18,
        base_channels=16,
        num_stages=3,
        out_indices=(0, 1, 2),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None,
    ),
    neck=dict(in_channels=[16, 32, 64], out_channels=64, num_outs=2, add_extra_convs=False),
    bbox_head=dict(
        num_classes=6,
        in_channels=64,
        feat_channels=64,
        stacked_convs=2,
        strides=[8, 16],
        regress_ranges=((-1, 64), (64, 1e8)),
        norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
        # No box tower: each point's box is its polygon's tight box (the paper's ablation found
        # the same mask AP). A step takes 16% less time, and at equal time more steps of 4
        # images are what this model gains most from (measurements: docs/demo_accuracy.md).
        bbox_branch=False,
        # A ray that finds no contour point within +-3 degrees (most rays of points within a
        # few pixels of their contour, so most of a small shape's) is trained towards its exact
        # crossing with the contour instead of the original's 1e-6, which also zeroed the
        # polar-centerness target weighting the shape's ray loss. Seed 0: segm AP 0.563 -> 0.611;
        # the small-shapes variant 0.245 -> 0.383 (docs/demo_accuracy.md).
        fill_missing_rays=True,
    ),
    # Vertices rounded to the nearest pixel, not truncated when rasterised as the original
    # (which shifts masks up and left by half a pixel on average): seed 0, same checkpoints,
    # segm AP 0.611 -> 0.636, small-shapes variant 0.485 -> 0.573 (docs/demo_accuracy.md).
    test_cfg=dict(nms_pre=300, max_per_img=30, round_vertices=True),
)

train_pipeline = _base_.train_pipeline
train_pipeline[2].scale = img_scale  # Resize
# Tested 1.1x enlarged: small shapes (16-32 px) span more stride-8 points and are outlined
# better, while the largest (~86 px) still fit P3's range. Measured on the two checkpoints of
# benchmarks/demo_accuracy.py (segm AP at test size 160 / 176 / 192 / 208, seed 0: - / 0.656 /
# 0.636 / 0.588, seed 1: 0.675 / 0.688 / 0.675 / -; beyond 192 more shapes pass 64 px from
# their points and go to P4, which learned few).
test_scale = (176, 176)
test_pipeline = _base_.test_pipeline
test_pipeline[1].scale = test_scale  # Resize
# --tta: both sizes, each flipped and not.
tta_pipeline = _base_.tta_pipeline
tta_pipeline[1].transforms[0] = [
    dict(type='Resize', scale=scale, keep_ratio=False) for scale in (img_scale, test_scale)
]

# Loading takes ~3 ms per image here; a worker process would compete with the two compute
# threads for the two cores (measured: 0.41 s/iteration with one worker, 0.34 s without).
train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(_delete_=True, filter_empty_gt=True, min_size=32),
        generator_cfg=generator_cfg,
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        generator_cfg=generator_cfg,
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

train_cfg = dict(
    type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs
)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    # Two optimizer groups (with and without decay) instead of one per parameter, and fused
    # AdamW: one kernel per group. A step with gradient clipping is about 2.6-2.9x faster than
    # with mmengine's one group per parameter (benchmarks/optimizer_step.py; figures in README).
    constructor='GroupedOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=0.002, weight_decay=0.05, fused=True),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=35, norm_type=2),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5),
]
auto_scale_lr = dict(enable=False, base_batch_size=4)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=2),
)
randomness = dict(seed=0)
