_base_ = [
    '../../_base_/models/polarmask_x101_64x4d_fpn.py',
    '../../_base_/datasets/coco_instance_ms_640_800.py',
    '../../_base_/schedules/schedule_2x_32gpu_ms.py',
    '../../_base_/default_runtime.py',
]

model = dict(data_preprocessor=dict(pad_size_divisor=128))
train_dataloader = dict(num_workers=4)
