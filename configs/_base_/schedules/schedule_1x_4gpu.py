# The seed's 4-GPU 1x schedule: 4 GPUs x 4 images, lr 0.01, linear warmup over 500 iterations from
# 0.01/3, x0.1 at epochs 8 and 11, 12 epochs
# (docs/original_polarmask.md#configs-and-schedules).
base_lr = 0.01
warmup_start_lr = 0.01 / 3

# mmengine's EpochBasedTrainLoop, resuming mid-epoch at the batch after the checkpoint.
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=12, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=warmup_start_lr / base_lr,
        by_epoch=False,
        begin=0,
        end=501,  # mmengine reaches the full lr at step end - 1: lr/3 -> lr over 500 iterations
    ),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=12, milestones=[8, 11], gamma=0.1),
]

optim_wrapper = dict(
    type='OptimWrapper',
    # One optimizer group per distinct lr / decay instead of one per parameter (same update).
    constructor='GroupedOptimWrapperConstructor',
    optimizer=dict(type='SGD', lr=base_lr, momentum=0.9, weight_decay=0.0001),
    # The original's paramwise_options: biases get 2x lr and no decay, except those of norm
    # layers, which keep the base lr and decay like the norm weights (norm_decay_mult=1.0; mmengine
    # would otherwise apply bias_decay_mult to them).
    paramwise_cfg=dict(bias_lr_mult=2.0, bias_decay_mult=0.0, norm_decay_mult=1.0),
    clip_grad=dict(max_norm=35, norm_type=2),
)

# --auto-scale-lr scales lr by (world size x images per GPU) / base_batch_size.
auto_scale_lr = dict(enable=False, base_batch_size=16)
