# ResNeXt-101 64x4d on 32 GPUs x 2 images: lr 0.04 (lr_ratio 4), warmup still from 0.01/3.
_base_ = '../4gpu/polar_768_1x_x101.py'

base_lr = 0.04
train_cfg = dict(max_epochs=14)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01 / 3 / base_lr, by_epoch=False, begin=0, end=2001),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=14, milestones=[10, 13], gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr=base_lr))
train_dataloader = dict(num_workers=4)
auto_scale_lr = dict(base_batch_size=64)
