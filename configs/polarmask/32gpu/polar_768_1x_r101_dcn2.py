_base_ = ['./polar_768_1x_r101.py', '../../_base_/models/polarmask_dcn.py']

model = _base_.dcn_model
optim_wrapper = _base_.dcn_optim_wrapper
