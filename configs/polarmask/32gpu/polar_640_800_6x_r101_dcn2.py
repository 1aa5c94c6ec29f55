# The 2x R-101 DCN model with a modulated (DCNv2) backbone, trained 6x: x0.1 at epochs 50 and 68
# of 74. The original's file names its backbone type 'PolarMask' and cannot be built; this is the
# ResNet-101 it intends (docs/original_polarmask.md#deformable-convolutions).
_base_ = './polar_640_800_2x_r101_dcn2.py'

max_epochs = 74

model = dict(backbone=dict(dcn=dict(modulated=True)))
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = _base_.param_scheduler
param_scheduler[1].update(end=max_epochs, milestones=[50, 68])
