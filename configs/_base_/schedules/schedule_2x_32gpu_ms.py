# The seed's 32-GPU multi-scale 2x schedule: 32 GPUs x 1 image, lr 0.02 (lr_ratio 2), warmup 2000
# iterations from 0.01/3, x0.1 at epochs 18 and 24, 26 epochs
# (docs/original_polarmask.md#configs-and-schedules).
_base_ = './schedule_1x_4gpu.py'

base_lr = 0.02
max_epochs = 26

train_cfg = dict(max_epochs=max_epochs)
param_scheduler = _base_.param_scheduler
# Full lr at iteration 2000, as the original.
param_scheduler[0].update(start_factor=_base_.warmup_start_lr / base_lr, end=2001)
param_scheduler[1].update(end=max_epochs, milestones=[18, 24])
optim_wrapper = dict(optimizer=dict(lr=base_lr))
auto_scale_lr = dict(base_batch_size=32)
