_base_ = './polar_768_1x_r50.py'

model = dict(
    backbone=dict(
        depth=101, init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnet101_caffe')
    )
)
train_dataloader = dict(num_workers=4)
