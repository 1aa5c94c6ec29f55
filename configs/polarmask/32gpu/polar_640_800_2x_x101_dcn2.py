_base_ = ['./polar_640_800_2x_x101.py', '../../_base_/models/polarmask_dcn.py']

model = _base_.dcn_model
# The deformable 3x3 convs keep ResNeXt's 64 groups (mmdet v1 reads them from the dcn dict).
model.backbone.dcn.groups = 64
optim_wrapper = _base_.dcn_optim_wrapper
