_base_ = [
    '../../_base_/models/polarmask_r50_fpn.py',
    '../../_base_/datasets/coco_instance_768.py',
    '../../_base_/schedules/schedule_1x_4gpu.py',
    '../../_base_/default_runtime.py',
]
