# COCO 2017 instances, every image warped to 1280x768 (the seed's 768 configs,
# docs/original_polarmask.md#resizing-and-flipping).
dataset_type = 'CocoInsSegDataset'
data_root = 'data/coco/'
img_scale = (1280, 768)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PolarContours'),
    dict(type='PackPolarInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='PackPolarInputs'),
]

# tools/test.py --tta: every combination of the scales and flips below (mmdetection's TestTimeAug),
# merged by the config's tta_model. Add scales to the first list for multi-scale testing.
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=img_scale, keep_ratio=False)],
            [dict(type='RandomFlip', prob=1.0), dict(type='RandomFlip', prob=0.0)],
            [dict(type='PackPolarInputs')],
        ],
    ),
]

train_dataloader = dict(
    batch_size=4,
    num_workers=5,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(
            filter_empty_gt=True, min_size=32, min_ann_area=15, min_ann_side=10, min_mask_pixels=15
        ),
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric='segm',
    classwise=True,
    format_only=False,
)
test_evaluator = val_evaluator
