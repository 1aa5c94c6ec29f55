# COCO 2017 instances, multi-scale training: long side 1333, short side uniform in [640, 800], still
# warped (the original's 'range' mode with resize_keep_ratio=False); test at 1333x800. One image
# per GPU (docs/original_polarmask.md#configs-and-schedules).
_base_ = './coco_instance_800.py'

train_pipeline = _base_.train_pipeline
train_pipeline[2] = dict(type='RandomResize', scale=[(1333, 640), (1333, 800)], keep_ratio=False)

train_dataloader = dict(batch_size=1, num_workers=5, dataset=dict(pipeline=train_pipeline))
