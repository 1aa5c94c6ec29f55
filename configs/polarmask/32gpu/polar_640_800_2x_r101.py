_base_ = './polar_640_800_2x_r50.py'

model = dict(
    backbone=dict(
        depth=101, init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnet101_caffe')
    )
)
