_base_ = ['./polar_640_800_2x_r50.py', '../../_base_/models/polarmask_dcn.py']

model = _base_.dcn_model
optim_wrapper = _base_.dcn_optim_wrapper
