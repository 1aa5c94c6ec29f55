# COCO 2017 instances, multi-scale training: long side 1333, short side uniform in [640, 800], still
# warped (the original's 'range' mode with resize_keep_ratio=False); test at 1333x800.
_base_ = './coco_instance_800.py'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=[(1333, 640), (1333, 800)], keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PolarContours'),
    dict(type='PackPolarInputs'),
]
train_dataloader = dict(batch_size=1, num_workers=5, dataset=dict(pipeline=train_pipeline))
