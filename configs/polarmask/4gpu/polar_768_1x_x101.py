# ResNeXt-101 64x4d, 2 images per GPU; lr stays 0.01 as in the original (not rescaled for 8 images
# per iteration).
_base_ = [
    '../../_base_/models/polarmask_x101_64x4d_fpn.py',
    '../../_base_/datasets/coco_instance_768.py',
    '../../_base_/schedules/schedule_1x_4gpu.py',
    '../../_base_/default_runtime.py',
]

train_dataloader = dict(batch_size=2)
