_base_ = [
    '../../_base_/models/polarmask_r50_fpn.py',
    '../../_base_/datasets/coco_instance_800.py',
    '../../_base_/schedules/schedule_1x_32gpu.py',
    '../../_base_/default_runtime.py',
]

model = dict(data_preprocessor=dict(pad_size_divisor=128))
