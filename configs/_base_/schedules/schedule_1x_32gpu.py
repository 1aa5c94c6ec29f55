# The seed's 32-GPU 1x schedule: 32 GPUs x 4 images, lr 0.08 (lr_ratio 8), warmup 2000 iterations
# from 0.01/3 absolute, x0.1 at epochs 10 and 13, 14 epochs
# (docs/original_polarmask.md#configs-and-schedules).
_base_ = './schedule_1x_4gpu.py'

base_lr = 0.08
warmup_start_lr = 0.01 / 3

train_cfg = dict(max_epochs=14)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=warmup_start_lr / base_lr,
        by_epoch=False,
        begin=0,
        end=2001,  # full lr at iteration 2000, as the original
    ),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=14, milestones=[10, 13], gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr=base_lr))
auto_scale_lr = dict(base_batch_size=128)
