default_scope = 'polarmask'
runner_type = 'PolarRunner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # mmengine's CheckpointHook, crash-safe and with the random states for exact resumption.
    checkpoint=dict(type='SafeCheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'),
)
custom_hooks = [
    # Checkpoints in plain types, loadable with torch.load(weights_only=True).
    dict(type='PlainCheckpointHook'),
    # Stops at the first NaN/inf loss, naming the iteration, the losses and the images.
    dict(type='CheckInvalidLossHook'),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl', timeout=1800),
)

log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='PolarVisualizer', vis_backends=vis_backends, name='visualizer')
