# ResNeXt-101 64x4d on 32 GPUs x 2 images: lr 0.04 (lr_ratio 4), warmup still from 0.01/3.
_base_ = [
    '../../_base_/models/polarmask_x101_64x4d_fpn.py',
    '../../_base_/datasets/coco_instance_768.py',
    '../../_base_/schedules/schedule_1x_32gpu.py',
    '../../_base_/default_runtime.py',
]

base_lr = 0.04
optim_wrapper = dict(optimizer=dict(lr=base_lr))
param_scheduler = _base_.param_scheduler
param_scheduler[0].start_factor = _base_.warmup_start_lr / base_lr
train_dataloader = dict(batch_size=2, num_workers=4)
auto_scale_lr = dict(base_batch_size=64)
